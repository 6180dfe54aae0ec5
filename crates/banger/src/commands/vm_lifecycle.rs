//! `banger vm create`, `start`, `pause`, `resume`, `stop`, `rm`.

use banger_api::{CreateVmRequest, StopVmRequest};
use banger_paths::Layout;

use crate::cli::CreateArgs;
use crate::connect;
use crate::output::print_json;
use crate::progress::Renderer;

pub async fn create(layout: &Layout, args: CreateArgs) -> anyhow::Result<i32> {
    let request = CreateVmRequest {
        name: args.name,
        image: args.image,
        vcpu: args.vcpu,
        memory_mib: args.memory,
        disk: args.disk,
        start: false,
        vmm: args.vmm,
    };
    let client = connect::connect(layout).await?;
    // Creating may build the image first: show that progress, as `vm run` does.
    let progress = Renderer::stderr_quiet();
    let vm = client.create_vm(&request, &progress).await?;
    progress.finish();
    if args.json {
        print_json(&vm)?;
    } else {
        println!(
            "created VM {name} ({driver}); boot it with `banger vm start {name}`",
            name = vm.name,
            driver = vm.driver.as_deref().unwrap_or("-"),
        );
    }
    Ok(0)
}

pub async fn pause(layout: &Layout, name: &str) -> anyhow::Result<i32> {
    let vm = connect::connect(layout).await?.pause_vm(name).await?;
    println!("{} {}", vm.name, vm.state);
    Ok(0)
}

pub async fn resume(layout: &Layout, name: &str) -> anyhow::Result<i32> {
    let vm = connect::connect(layout).await?.resume_vm(name).await?;
    println!("{} {}", vm.name, vm.state);
    Ok(0)
}

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
