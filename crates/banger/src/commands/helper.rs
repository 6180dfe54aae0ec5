//! `banger helper`: run the root helper in the foreground.

use std::sync::Arc;

use anyhow::{Context, bail};
use banger_helper::{Executor, JailSetup, OwnerSource, resolve_owner, server};
use banger_paths::Layout;
use banger_system::RealRunner;

use crate::cli::HelperArgs;
use crate::outln;

pub fn run(layout: &Layout, args: HelperArgs) -> anyhow::Result<i32> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "banger helper must run as root (it creates network devices and firewall rules); in dev mode: sudo banger helper"
        );
    }
    let sudo_uid = std::env::var("SUDO_UID").ok();
    // SAFETY: getuid has no preconditions and cannot fail.
    let caller = unsafe { libc::getuid() };
    let (owner, source) = resolve_owner(
        &layout.install_toml(),
        args.owner_uid,
        sudo_uid.as_deref(),
        caller,
    )
    .context("cannot decide which uid the helper serves")?;
    let socket = args.socket.unwrap_or_else(|| layout.helper_socket());
    let listener = server::bind(&socket, owner)?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let from = match source {
        OwnerSource::InstallToml(path) => path.display().to_string(),
        OwnerSource::Flag => "--owner-uid".into(),
        OwnerSource::Sudo => "SUDO_UID".into(),
        OwnerSource::Caller => "the caller".into(),
    };
    tracing::info!(socket = %socket.display(), owner, "banger helper listening (owner from {from})");
    // Print the readiness line on stdout too: scripts and tests wait for it.
    outln!(
        "banger helper listening on {} for uid {owner}",
        socket.display()
    )?;
    let mut executor = Executor::new(owner, Arc::new(RealRunner), args.nft);
    if let (Some(jailer), Some(firecracker)) = (args.jailer, args.firecracker) {
        // Chroots are built beside the state directory, root-owned: the owner owns the
        // state directory and must not be able to redirect what root writes.
        let jail_root = banger_paths::jail_root(&layout.state_dir);
        tracing::info!(jailer = %jailer.display(), jail_root = %jail_root.display(), "jailing Firecracker");
        executor = executor.with_jail(JailSetup {
            jailer,
            firecracker,
            jail_root,
            state_dir: layout.state_dir.clone(),
        });
    }
    let executor = Arc::new(executor);
    // Under systemd (`Type=notify`): the socket listens, mode 0600, owned by the owner.
    if let Err(e) = banger_system::notify::notify_ready() {
        tracing::warn!("cannot tell systemd the helper is ready: {e}");
    }
    server::serve(listener, executor).context("the helper stopped accepting connections")?;
    Ok(0)
}
