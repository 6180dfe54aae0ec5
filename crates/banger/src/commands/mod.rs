//! One module per subcommand. Each turns parsed arguments into API calls and
//! output; none holds VM logic (that lives in the daemon).

mod completions;
mod daemon;
mod doctor;
mod firecracker;
mod helper;
mod image;
mod ssh_config;
mod vm_exec;
mod vm_inspect;
mod vm_lifecycle;
mod vm_logs;
mod vm_run;

use banger_paths::Layout;

use crate::cli::{Cli, Command, FirecrackerCommand, ImageCommand, VmCommand};

/// Run the parsed command; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
        Command::Doctor(args) => doctor::run(&layout()?, args),
        Command::Daemon(args) => daemon::run(layout()?, args),
        Command::Helper(args) => helper::run(&layout()?, args),
        Command::SshConfig(args) => ssh_config::run(&layout()?, args),
        Command::Firecracker(FirecrackerCommand::Install(args)) => {
            firecracker::install(&layout()?, args)
        }
        Command::Vm(cmd) => block_on(vm(layout()?, cmd)),
        Command::Image(cmd) => block_on(image(layout()?, cmd)),
    }
}

fn layout() -> anyhow::Result<Layout> {
    Ok(Layout::resolve()?)
}

async fn vm(layout: Layout, cmd: VmCommand) -> anyhow::Result<i32> {
    match cmd {
        VmCommand::Run(args) => vm_run::run(&layout, args).await,
        VmCommand::Exec(args) => vm_exec::run(&layout, args).await,
        VmCommand::Create(args) => vm_lifecycle::create(&layout, args).await,
        VmCommand::Start { name } => vm_lifecycle::start(&layout, &name).await,
        VmCommand::Pause { name } => vm_lifecycle::pause(&layout, &name).await,
        VmCommand::Resume { name } => vm_lifecycle::resume(&layout, &name).await,
        VmCommand::Stop {
            name,
            timeout,
            force,
        } => vm_lifecycle::stop(&layout, &name, timeout, force).await,
        VmCommand::Rm { names, force } => vm_lifecycle::rm(&layout, &names, force).await,
        VmCommand::Ls { json } => vm_inspect::ls(&layout, json).await,
        VmCommand::Inspect { name, json } => vm_inspect::inspect(&layout, &name, json).await,
        VmCommand::Logs { name, follow, json } => vm_logs::run(&layout, &name, follow, json).await,
    }
}

async fn image(layout: Layout, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Ls { json } => image::ls(&layout, json).await,
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
        ImageCommand::Inspect { name, json } => image::inspect(&layout, &name, json).await,
        ImageCommand::Rm { name } => image::rm(&layout, &name).await,
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<i32>>>(fut: F) -> anyhow::Result<i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}
