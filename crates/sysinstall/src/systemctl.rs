//! Asking systemd to act, only ever on the real system (never under a moved root).

use banger_system::CommandRunner;

use crate::SysInstallError;

pub(crate) fn systemctl(
    runner: &dyn CommandRunner,
    args: &[&str],
) -> Result<String, SysInstallError> {
    let shown = args.join(" ");
    let out = runner
        .run_str("systemctl", args)
        .map_err(|e| SysInstallError::Systemctl {
            args: shown.clone(),
            detail: format!("could not run systemctl: {e}"),
        })?;
    if !out.success() {
        return Err(SysInstallError::Systemctl {
            args: shown,
            detail: out.stderr_str().trim().to_string(),
        });
    }
    Ok(out.stdout_str())
}

/// `systemctl is-active UNIT`: the state it prints (it exits non-zero for every state
/// but active, so only the text counts).
pub fn unit_state(runner: &dyn CommandRunner, unit: &str) -> String {
    match runner.run_str("systemctl", &["is-active", unit]) {
        Ok(out) => {
            let state = out.stdout_str().trim().to_string();
            if state.is_empty() {
                "unknown".into()
            } else {
                state
            }
        }
        Err(e) => format!("unknown (systemctl could not run: {e})"),
    }
}
