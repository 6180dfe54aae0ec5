//! One module per subcommand. Each turns parsed arguments into API calls and
//! output; none holds VM logic (that lives in the daemon).

mod completions;
mod daemon;
mod doctor;
mod firecracker;
mod flags;
mod helper;
mod image;
mod image_prune;
mod image_recipe;
mod image_verify;
mod snapshot;
mod ssh;
mod ssh_config;
mod system;
mod vm_cp;
mod vm_exec;
mod vm_inspect;
mod vm_lifecycle;
mod vm_logs;
mod vm_run;
mod vm_sync;

use banger_paths::Layout;

use crate::cli::{Cli, Command, FirecrackerCommand, ImageCommand, SnapshotCommand, VmCommand};

/// Run the parsed command; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Completions { shell } => completions::completions(shell),
        Command::Man { command, dir } => completions::man(&command, dir.as_deref()),
        Command::Doctor(args) => doctor::run(&layout()?, args),
        Command::Daemon(args) => daemon::run(layout()?, args),
        Command::Helper(args) => helper::run(&layout()?, args),
        Command::SshConfig(args) => ssh_config::run(&layout()?, args),
        Command::SshProxy { host, port } => block_on(ssh::proxy(layout()?, host, port)),
        Command::Firecracker(FirecrackerCommand::Install(args)) => {
            firecracker::install(&layout()?, args)
        }
        Command::System(cmd) => system::run(cmd),
        Command::Vm(cmd) => block_on(vm(layout()?, cmd)),
        Command::Image(cmd) => block_on(image(layout()?, cmd)),
        Command::Snapshot(cmd) => block_on(snapshots(layout()?, cmd)),
        // Docker-style shortcuts for the everyday commands.
        Command::Run(args) => block_on(vm(layout()?, VmCommand::Run(args))),
        Command::Exec(args) => block_on(vm(layout()?, VmCommand::Exec(args))),
        Command::Ps(args) => block_on(vm(layout()?, VmCommand::Ls(args))),
        Command::Start(args) => block_on(vm(layout()?, VmCommand::Start(args))),
        Command::Stop(args) => block_on(vm(layout()?, VmCommand::Stop(args))),
        Command::Rm(args) => block_on(vm(layout()?, VmCommand::Rm(args))),
        Command::Logs(args) => block_on(vm(layout()?, VmCommand::Logs(args))),
        Command::Inspect(args) => block_on(vm(layout()?, VmCommand::Inspect(args))),
        Command::Images(list) => block_on(image(layout()?, ImageCommand::Ls { list })),
    }
}

fn layout() -> anyhow::Result<Layout> {
    let mut layout = Layout::resolve()?;
    if layout.mode.is_system_install() {
        // A system install's record says where its daemon and state live. A record that
        // cannot be read leaves the resolved layout: doctor reports it, and the helper
        // refuses to start on it.
        if let Ok(Some(meta)) = banger_config::load_install_meta(&layout.install_toml()) {
            meta.apply_to(&mut layout);
        }
    }
    Ok(layout)
}

async fn vm(layout: Layout, cmd: VmCommand) -> anyhow::Result<i32> {
    match cmd {
        VmCommand::Run(args) => vm_run::run(&layout, args).await,
        VmCommand::Exec(args) => vm_exec::run(&layout, args).await,
        VmCommand::Create(args) => vm_lifecycle::create(&layout, args).await,
        VmCommand::Start(args) => vm_lifecycle::start(&layout, args).await,
        VmCommand::Pause(args) => vm_lifecycle::pause(&layout, args).await,
        VmCommand::Resume(args) => vm_lifecycle::resume(&layout, args).await,
        VmCommand::Snapshot(args) => snapshot::take(&layout, args).await,
        VmCommand::Clone(args) => snapshot::clone(&layout, args).await,
        VmCommand::Stop(args) => vm_lifecycle::stop(&layout, args).await,
        VmCommand::Rm(args) => vm_lifecycle::rm(&layout, args).await,
        VmCommand::Ls(args) => vm_inspect::ls(&layout, args).await,
        VmCommand::Inspect(args) => vm_inspect::inspect(&layout, args).await,
        VmCommand::Logs(args) => vm_logs::run(&layout, args).await,
        VmCommand::Ssh(args) => ssh::vm_ssh(&layout, args).await,
        VmCommand::Cp(args) => vm_cp::run(&layout, args).await,
        VmCommand::Sync(args) => vm_sync::run(&layout, args).await,
    }
}

async fn snapshots(layout: Layout, cmd: SnapshotCommand) -> anyhow::Result<i32> {
    match cmd {
        SnapshotCommand::Ls { list } => snapshot::ls(&layout, list).await,
        SnapshotCommand::Inspect { name, data } => snapshot::inspect(&layout, &name, data).await,
        SnapshotCommand::Rm { names } => snapshot::rm(&layout, &names).await,
    }
}

async fn image(layout: Layout, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Ls { list } => image::ls(&layout, list).await,
        ImageCommand::Build {
            recipe,
            name,
            force,
            suite,
            packages,
            init,
        } => {
            let req = banger_api::BuildImageRequest {
                recipe,
                name,
                force,
                suite,
                packages,
                init,
            };
            image::build(&layout, req).await
        }
        ImageCommand::Import {
            reference,
            name,
            kernel,
            insecure,
            force,
        } => {
            let req = banger_api::ImportImageRequest {
                reference,
                name,
                kernel,
                insecure,
                force,
            };
            image::import(&layout, req).await
        }
        ImageCommand::Pull { name, force } => image::pull(&layout, name, force).await,
        ImageCommand::ImportKernel {
            file,
            name,
            initrd,
            force,
        } => image::import_kernel(&layout, file, name, initrd, force).await,
        ImageCommand::Inspect { name, data } => image::inspect(&layout, &name, data).await,
        ImageCommand::Verify { name, json } => image_verify::verify(&layout, &name, json).await,
        ImageCommand::Warm { name, json } => image::warm(&layout, &name, json).await,
        ImageCommand::Rm { names } => image::rm(&layout, &names).await,
        ImageCommand::Prune {
            dry_run,
            all,
            force,
            json,
        } => {
            let args = image_prune::PruneArgs {
                dry_run,
                all,
                force,
                json,
            };
            image_prune::prune(&layout, args).await
        }
    }
}

pub fn block_on<F: std::future::Future<Output = anyhow::Result<i32>>>(
    fut: F,
) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(fut);
    // Dropping the runtime would wait for its blocking threads: a write into a pipe nobody
    // reads, which the command stopped waiting for, would then hang the CLI's exit.
    runtime.shutdown_background();
    result
}
