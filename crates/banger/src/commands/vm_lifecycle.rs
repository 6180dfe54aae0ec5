//! `banger vm start`, `stop`, `rm`.

use banger_api::StopVmRequest;
use banger_paths::Layout;

use crate::connect;
use crate::progress::Renderer;

pub async fn start(layout: &Layout, name: &str) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr_quiet();
    let vm = client.start_vm(name, &progress).await?;
    progress.finish();
    println!("{} {}", vm.name, vm.state);
    Ok(0)
}

pub async fn stop(layout: &Layout, name: &str, timeout: u64, force: bool) -> anyhow::Result<i32> {
    let req = StopVmRequest {
        timeout_secs: Some(timeout),
        force,
    };
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr_quiet();
    let vm = client.stop_vm(name, &req, &progress).await?;
    progress.finish();
    println!("{} {}", vm.name, vm.state);
    Ok(0)
}

pub async fn rm(layout: &Layout, names: &[String], force: bool) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let mut code = 0;
    for name in names {
        match client.remove_vm(name, force).await {
            Ok(vm) => println!("removed {}", vm.name),
            Err(e) => {
                crate::output::print_error(
                    &anyhow::Error::new(e).context(format!("cannot remove VM {name}")),
                );
                code = 1;
            }
        }
    }
    Ok(code)
}
