//! `banger vm run`: create, boot, optionally run a command, optionally delete.

use anyhow::bail;
use banger_paths::Layout;

use super::flags::rephrase;
use super::vm_exec::request;
use super::vm_inspect::print_timings;
use crate::cli::RunArgs;
use crate::output::print_json;
use crate::progress::Renderer;
use crate::{connect, exec_io, outln};

/// `--json` prints the booted VM, which only a run without a command prints: with one, the
/// output is the command's, and --json would be silently ignored.
fn json_needs_no_command(args: &RunArgs) -> anyhow::Result<()> {
    if args.json && !args.command.is_empty() {
        bail!(
            "--json prints the booted VM, and applies only without a command (the command's output is its own); drop --json, or boot with `banger run -d --json` and run the command with `banger exec`"
        );
    }
    Ok(())
}

pub async fn run(layout: &Layout, mut args: RunArgs) -> anyhow::Result<i32> {
    if args.detach && !args.command.is_empty() {
        bail!(
            "-d boots the VM in the background and cannot run a command; drop -d, or run it afterwards with `banger exec`"
        );
    }
    json_needs_no_command(&args)?;
    // Before anything boots: a VM must not be created only to fail on the terminal.
    exec_io::check_tty(args.io.tty)?;
    let client = connect::connect(layout).await?;
    // An imported image's Entrypoint/Cmd, Env, WorkingDir and User stand in for a missing
    // command, as `docker run IMAGE` would run them; -e, -w and -u still win.
    let mut image_env = Vec::new();
    if args.command.is_empty()
        && !args.detach
        && let Some(image) = &args.spec.image
        && let Ok(view) = client.get_image(image).await
        && let Some(run) = view.run
    {
        args.command = run.entrypoint.iter().chain(&run.cmd).cloned().collect();
        image_env = run
            .env
            .iter()
            .filter_map(|e| {
                e.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        if args.io.workdir.is_none() {
            args.io.workdir = run.working_dir.as_deref().map(image_workdir);
        }
        if args.io.user.is_none() {
            args.io.user = run.user;
        }
    }
    // Again, for the command an imported image supplies.
    json_needs_no_command(&args)?;
    if args.rm && args.command.is_empty() {
        match &args.spec.image {
            Some(image) => bail!(
                "--rm needs a command to run, and image {image:?} gives none (it has no \
                 Entrypoint/Cmd, or is not here yet: `banger images`); add one, e.g. \
                 `banger run --rm --image {image} -- uname -a`"
            ),
            None => bail!("--rm needs a command to run, e.g. `banger run --rm -- uname -a`"),
        }
    }
    if args.command.is_empty() && (args.io.interactive || args.io.tty) {
        bail!("-i and -t apply to a command: add one, e.g. `banger run --rm -it sh`");
    }
    let req = match args.command.is_empty() {
        true => None,
        false => {
            let mut req = request(&args.io, args.command.clone())?;
            req.env = image_env.into_iter().chain(req.env).collect();
            Some(req)
        }
    };
    let memory = args.spec.memory.clone();
    let request = banger_api::CreateVmRequest {
        from: args.from,
        ..args.spec.into_request(true)
    };
    let progress = Renderer::stderr_quiet();
    let create = client.create_vm(&request, &progress);
    let vm = if args.rm {
        // With --rm, a Ctrl-C during the boot must not leave a VM behind. The daemon
        // finishes the boot regardless, so wait for it and then remove the VM.
        tokio::pin!(create);
        tokio::select! {
            vm = &mut create => vm.map_err(|e| rephrase(e, memory.as_ref()))?,
            _ = tokio::signal::ctrl_c() => {
                progress.finish();
                crate::output::warn("interrupted: removing the VM once it has booted (Ctrl-C again to leave it)");
                let vm = tokio::select! {
                    vm = &mut create => vm?,
                    _ = tokio::signal::ctrl_c() => return Ok(130),
                };
                client.remove_vm(&vm.name, true).await?;
                return Ok(130);
            }
        }
    } else {
        create.await.map_err(|e| rephrase(e, memory.as_ref()))?
    };
    progress.finish();
    if !args.json {
        crate::output::print_shares(&vm);
    }
    if args.timings {
        print_timings(&vm);
    }

    let Some(req) = req else {
        if args.json {
            print_json(&vm)?;
        } else if args.detach {
            outln!("{}", vm.name)?;
        } else {
            outln!(
                "VM {name} is running ({image}, {vcpu} vCPU, {mem} MiB).\n  \
                 banger exec {name} -- CMD      run a command\n  \
                 banger exec -it {name} -- sh   open a shell\n  \
                 banger logs {name}             serial console\n  \
                 banger rm -f {name}            stop and delete it",
                name = vm.name,
                image = vm.image,
                vcpu = vm.vcpu,
                mem = vm.memory_mib,
            )?;
        }
        return Ok(0);
    };
    let result = exec_io::run(&client, &vm.name, req, args.io.tty).await;
    if args.rm {
        remove_after_run(layout, &client, &vm.name, args.sync).await;
    }
    Ok(result?.shell_code())
}

/// `--rm`'s end: sync the read-write copies back first when `sync` (a sync that fails
/// keeps the VM, so nothing the guest wrote is lost), else warn about what the guest
/// changed in them; then remove the VM.
async fn remove_after_run(layout: &Layout, client: &banger_api::Client, name: &str, sync: bool) {
    let vm = match client.get_vm(name).await {
        Ok(vm) => vm,
        Err(e) => {
            crate::output::warn(&format!("could not read VM {name} before removing it: {e}"));
            return;
        }
    };
    let copies = vm.shares.iter().any(|s| s.mode == "copy" && !s.read_only);
    if sync && copies {
        let synced = match banger_config::load(&layout.config_file()) {
            Ok(config) => {
                let max_bytes = config.shares_resolved().copy_max_bytes.value;
                super::vm_sync::sync_vm(client, &vm, &[], false, max_bytes).await
            }
            Err(e) => Err(e.into()),
        };
        if !matches!(synced, Ok(0)) {
            let why = synced.err().map(|e| format!(": {e:#}")).unwrap_or_default();
            crate::output::warn(&format!(
                "--sync failed{why}; VM {name} is kept so the guest's changes are not lost: \
                 `banger vm sync {name}`, then `banger rm -f {name}`"
            ));
            return;
        }
    } else {
        super::vm_sync::warn_unsynced(&vm, "removed");
    }
    if let Err(e) = client.remove_vm(name, true).await {
        crate::output::warn(&format!("could not remove VM {name}: {e}"));
    }
}

/// An image's `WorkingDir` as the guest directory to run in. The OCI image spec does not say
/// it is absolute, and the daemon takes only absolute ones (a relative one would be resolved
/// against the agent's directory): a relative one is taken from `/`, where the command starts
/// when the image names no directory.
fn image_workdir(dir: &str) -> String {
    if dir.starts_with('/') {
        dir.to_owned()
    } else {
        format!("/{dir}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_workdir_is_taken_from_the_root() {
        assert_eq!(image_workdir("/srv/app"), "/srv/app");
        assert_eq!(image_workdir("app"), "/app");
        assert_eq!(image_workdir("./app"), "/./app");
    }
}
