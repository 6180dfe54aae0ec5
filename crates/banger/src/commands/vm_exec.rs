//! `banger vm exec NAME [-i] [-t] [--] CMD…`

use anyhow::bail;
use banger_api::ExecRequest;
use banger_paths::Layout;

use crate::cli::{ExecArgs, GuestCommandArgs};
use crate::{connect, exec_io};

pub async fn run(layout: &Layout, args: ExecArgs) -> anyhow::Result<i32> {
    let req = request(&args.io, args.command)?;
    let client = connect::connect(layout).await?;
    let status = exec_io::run(&client, &args.name, req, args.io.tty).await?;
    Ok(status.shell_code())
}

/// The request for `argv` run as `io` says, after the checks that must come before
/// anything starts (a terminal for -t, well-formed --env).
pub fn request(io: &GuestCommandArgs, argv: Vec<String>) -> anyhow::Result<ExecRequest> {
    exec_io::check_tty(io.tty)?;
    let req = ExecRequest {
        argv,
        env: parse_env(&io.env)?,
        cwd: io.workdir.clone(),
        // -t alone still types into the guest's terminal: a terminal without input is
        // of no use to anyone.
        stdin: io.interactive || io.tty,
        tty: None,
        user: io.user.clone(),
    };
    check_size(&req)?;
    Ok(req)
}

/// The command line and environment travel in one request: past the daemon's limit it
/// would answer only that "the request body" is too large.
fn check_size(req: &ExecRequest) -> anyhow::Result<()> {
    let size = serde_json::to_vec(req).map_or(0, |body| body.len());
    if size > banger_api::MAX_REQUEST_BODY {
        bail!(
            "the command's arguments and environment come to {size} bytes, over the {} a guest command takes: pass large data on stdin (-i) or copy it in with `banger vm cp`",
            banger_config::format_size(banger_api::MAX_REQUEST_BODY as u64)
        );
    }
    Ok(())
}

/// `KEY=VALUE` pairs; a bare `KEY` takes the value from this process's environment.
pub fn parse_env(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some(("", _)) => bail!("--env {pair:?}: the variable name is empty"),
            None if pair.is_empty() => bail!("--env \"\": give KEY=VALUE, or a bare KEY set here"),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => match std::env::var(pair) {
                Ok(v) => Ok((pair.clone(), v)),
                Err(_) => bail!("--env {pair}: not set here; write it as {pair}=VALUE"),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_past_the_request_limit_says_so_before_it_is_sent() {
        let big = vec!["a".repeat(100_000); 11];
        let req = |argv: Vec<String>| ExecRequest {
            argv,
            ..ExecRequest::default()
        };
        let err = check_size(&req(big)).unwrap_err().to_string();
        assert!(err.contains("stdin") && err.contains("1 MiB"), "{err}");
        check_size(&req(vec!["a".repeat(900_000)])).unwrap();
    }

    #[test]
    fn env_pairs() {
        let got = parse_env(&["A=1".into(), "B=x=y".into()]).unwrap();
        assert_eq!(
            got,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert!(parse_env(&["=1".into()]).is_err());
        assert!(parse_env(&["BANGER_SURELY_UNSET_VAR".into()]).is_err());
        // An empty one is named as such, not as an unset variable called "".
        let err = parse_env(&["".into()]).unwrap_err().to_string();
        assert!(
            err.contains("KEY=VALUE") && !err.contains("not set"),
            "{err}"
        );
    }
}
