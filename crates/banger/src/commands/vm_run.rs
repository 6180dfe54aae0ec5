//! `banger vm run`: create, boot, optionally run a command, optionally delete.

use anyhow::bail;
use banger_api::{CreateVmRequest, ExecRequest};
use banger_paths::Layout;

use super::vm_inspect::print_timings;
use crate::cli::RunArgs;
use crate::{connect, exec_io};

pub async fn run(layout: &Layout, mut args: RunArgs) -> anyhow::Result<i32> {
    if args.detach && !args.command.is_empty() {
        bail!(
            "-d boots the VM in the background and cannot run a command; drop -d, or run it afterwards with `banger vm exec`"
        );
    }
    let client = connect::connect(layout).await?;
    // An imported image's Entrypoint/Cmd, Env and WorkingDir stand in for a missing
    // command, as `docker run IMAGE` would run them.
    let mut env = Vec::new();
    let mut cwd = None;
    if args.command.is_empty()
        && !args.detach
        && let Some(image) = &args.image
        && let Ok(view) = client.get_image(image).await
        && let Some(run) = view.run
    {
        args.command = run.entrypoint.iter().chain(&run.cmd).cloned().collect();
        env = run
            .env
            .iter()
            .filter_map(|e| {
                e.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        cwd = run.working_dir;
    }
    if args.rm && args.command.is_empty() {
        bail!("--rm needs a command to run, e.g. `banger vm run --rm -- uname -a`");
    }
    let request = CreateVmRequest {
        name: args.name,
        image: args.image,
        vcpu: args.vcpu,
        memory_mib: args.memory,
        disk: args.disk,
        start: true,
    };
    let create = client.create_vm(&request);
    let vm = if args.rm {
        // With --rm, a Ctrl-C during the boot must not leave a VM behind. The daemon
        // finishes the boot regardless, so wait for it and then remove the VM.
        tokio::pin!(create);
        tokio::select! {
            vm = &mut create => vm?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: removing the VM once it has booted (Ctrl-C again to leave it)");
                let vm = tokio::select! {
                    vm = &mut create => vm?,
                    _ = tokio::signal::ctrl_c() => return Ok(130),
                };
                client.remove_vm(&vm.name, true).await?;
                return Ok(130);
            }
        }
    } else {
        create.await?
    };
    if args.timings {
        print_timings(&vm, &mut std::io::stderr())?;
    }

    if args.command.is_empty() {
        if args.detach {
            println!("{}", vm.name);
        } else {
            println!(
                "VM {name} is running ({image}, {vcpu} vCPU, {mem} MiB).\n  \
                 banger vm exec {name} -- CMD      run a command\n  \
                 banger vm exec -it {name} -- sh   open a shell\n  \
                 banger vm logs {name}             serial console\n  \
                 banger vm rm -f {name}            stop and delete it",
                name = vm.name,
                image = vm.image,
                vcpu = vm.vcpu,
                mem = vm.memory_mib,
            );
        }
        return Ok(0);
    }

    let req = ExecRequest {
        argv: args.command,
        env,
        cwd,
        stdin: args.interactive || args.tty,
        tty: None,
    };
    let result = exec_io::run(&client, &vm.name, req, args.tty).await;
    if args.rm
        && let Err(e) = client.remove_vm(&vm.name, true).await
    {
        eprintln!("warning: could not remove VM {}: {e}", vm.name);
    }
    Ok(result?.shell_code())
}
