//! `banger system install | uninstall | status`.

use std::path::Path;

use anyhow::Context;
use banger_paths::{DAEMON_SERVICE, HELPER_SERVICE, ProcessEnv, SystemRoots};
use banger_sysinstall::jail::JailRequest;
use banger_sysinstall::plan::PlanRequest;
use banger_sysinstall::{FileChange, InstallPlan, Sources, render};
use banger_system::RealRunner;
use banger_system::fsperm::FileFacts;

use crate::cli::{SystemCommand, SystemInstallArgs, SystemUninstallArgs};
use crate::outln;
use crate::output::print_json;

pub fn run(cmd: SystemCommand) -> anyhow::Result<i32> {
    match cmd {
        SystemCommand::Install(args) => install(args),
        SystemCommand::Uninstall(args) => uninstall(args),
        SystemCommand::Status { json } => super::block_on(status(json)),
    }
}

fn require_root(command: &'static str, what: &'static str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(banger_sysinstall::SysInstallError::NotRoot { command, what }.into());
    }
    Ok(())
}

fn install(args: SystemInstallArgs) -> anyhow::Result<i32> {
    let plan = InstallPlan::resolve(
        &PlanRequest {
            owner: &args.owner,
            prefix: &args.prefix,
            version: env!("CARGO_PKG_VERSION"),
            build: crate::BUILD_ID,
            jail: match (args.no_jailer, args.firecracker) {
                (true, _) => JailRequest::Off,
                (false, Some(firecracker)) => JailRequest::Explicit {
                    firecracker,
                    jailer: args.jailer,
                },
                (false, None) => JailRequest::Auto,
            },
        },
        &ProcessEnv,
    )?;
    outln!("helper posture: {}", plan.posture_why)?;
    if args.dry_run {
        return dry_run(&plan, args.out.as_deref());
    }
    require_root(
        "install",
        "/etc/banger, systemd units and root-owned binaries",
    )?;
    let banger = std::env::current_exe().context("cannot locate the running banger")?;
    let agent = banger_paths::companion_binary(banger_paths::AGENT_BINARY_NAME).ok();
    if agent.is_none() {
        crate::output::warn(
            "no banger-agent beside this banger: images built by this install will lack the guest agent",
        );
    }
    let report = banger_sysinstall::install(&plan, &Sources { banger, agent }, &RealRunner)?;
    print_changes(&report.changes)?;
    let who = format!("{} (uid {})", plan.owner_user, plan.owner_uid);
    match (report.changes.is_empty(), report.live) {
        (true, true) => outln!("banger system install for {who} is up to date; services running")?,
        (true, false) => outln!("banger system install for {who} is up to date")?,
        (false, true) => outln!(
            "banger system install for {who}: {HELPER_SERVICE} and {DAEMON_SERVICE} running, sockets 0600 owned by {}\nnext: `banger doctor` as {} checks the install",
            plan.owner_user,
            plan.owner_user
        )?,
        (false, false) => outln!(
            "banger system install for {who} written under a moved root ({}); systemd was not asked to start anything",
            plan.etc_dir.display()
        )?,
    }
    Ok(0)
}

fn dry_run(plan: &InstallPlan, out: Option<&Path>) -> anyhow::Result<i32> {
    let files = render::render_all(plan)?;
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for file in &files {
                let name = file.path.file_name().unwrap_or_default();
                let target = dir.join(name);
                std::fs::write(&target, &file.text)
                    .with_context(|| format!("cannot write {}", target.display()))?;
                outln!("{} (would be {})", target.display(), file.path.display())?;
            }
        }
        None => {
            for file in &files {
                outln!("# ==> {} <==\n{}", file.path.display(), file.text)?;
            }
        }
    }
    Ok(0)
}

fn uninstall(args: SystemUninstallArgs) -> anyhow::Result<i32> {
    require_root("`banger system uninstall`", "/etc/banger and systemd units")?;
    let roots = SystemRoots::resolve_with(&ProcessEnv)?;
    let report = banger_sysinstall::uninstall(&roots.etc_dir, args.purge, &RealRunner)?;
    print_changes(&report.changes)?;
    outln!(
        "banger system install for {} removed{}",
        report.owner_user,
        if report.live {
            "; services stopped and disabled"
        } else {
            ""
        }
    )?;
    if let Some(state) = report.kept_state {
        outln!(
            "kept images and VMs in {} (`sudo banger system uninstall --purge` deletes them); running VMs keep running",
            state.display()
        )?;
    }
    Ok(0)
}

fn print_changes(changes: &[FileChange]) -> anyhow::Result<()> {
    for c in changes {
        outln!("{:>8} {}", c.change.to_string(), c.path.display())?;
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Status {
    installed: bool,
    owner_user: Option<String>,
    owner_uid: Option<u32>,
    version: Option<String>,
    cli_version: &'static str,
    helper_service: Option<String>,
    daemon_service: Option<String>,
    helper_socket: String,
    daemon_socket: String,
    daemon_version: Option<String>,
}

async fn status(json: bool) -> anyhow::Result<i32> {
    let layout = super::layout()?;
    let meta = banger_config::load_install_meta(&layout.install_toml())?;
    let Some(meta) = meta else {
        if json {
            print_json(&serde_json::json!({ "installed": false }))?;
        } else {
            outln!(
                "no system install ({} not found): dev mode. `sudo banger system install --owner $USER` installs one",
                layout.install_toml().display()
            )?;
        }
        return Ok(3);
    };
    let live = layout.etc_dir == Path::new("/etc/banger");
    let state = |unit| live.then(|| banger_sysinstall::unit_state(&RealRunner, unit));
    let health = banger_api::Client::new(layout.daemon_socket())
        .health()
        .await
        .ok();
    let s = Status {
        installed: true,
        owner_user: Some(meta.owner_user.clone()),
        owner_uid: Some(meta.owner_uid),
        version: meta.version.clone(),
        cli_version: env!("CARGO_PKG_VERSION"),
        helper_service: state(HELPER_SERVICE),
        daemon_service: state(DAEMON_SERVICE),
        helper_socket: socket_line(&layout.helper_socket()),
        daemon_socket: socket_line(&layout.daemon_socket()),
        daemon_version: health
            .as_ref()
            .map(|h| format!("{} (build {})", h.version, h.build)),
    };
    if json {
        print_json(&s)?;
        return Ok(0);
    }
    outln!("owner:    {} (uid {})", meta.owner_user, meta.owner_uid)?;
    outln!(
        "version:  installed {}, this CLI {}",
        meta.version.as_deref().unwrap_or("unknown"),
        s.cli_version
    )?;
    for (unit, st) in [
        (HELPER_SERVICE, &s.helper_service),
        (DAEMON_SERVICE, &s.daemon_service),
    ] {
        outln!(
            "{unit}: {}",
            st.as_deref().unwrap_or("(moved root: not asked)")
        )?;
    }
    outln!("helper socket: {}", s.helper_socket)?;
    outln!("daemon socket: {}", s.daemon_socket)?;
    match &s.daemon_version {
        Some(v) => outln!("daemon:   answering, {v}")?,
        None => outln!("daemon:   not answering (`sudo systemctl start {DAEMON_SERVICE}`)")?,
    }
    if meta.version.as_deref() != Some(s.cli_version) {
        outln!(
            "hint: this banger differs from the installed one: `sudo banger system install --owner {}` installs it",
            meta.owner_user
        )?;
    }
    Ok(0)
}

fn socket_line(path: &Path) -> String {
    match FileFacts::lstat(path) {
        Ok(f) => format!(
            "{} ({}, mode {:#o}, uid {})",
            path.display(),
            f.kind,
            f.mode,
            f.uid
        ),
        Err(e) => format!("{} ({e})", path.display()),
    }
}
