//! `banger vm create`, `start`, `pause`, `resume`, `stop`, `rm`: all but `create` take
//! several VMs, like docker. One VM shows its progress; several run concurrently and
//! report when all are done. A VM that fails does not stop the others; the exit status
//! is then 1.

use std::io::Write;

use banger_api::{Client, ClientError, StopVmRequest, VmView};
use banger_paths::Layout;
use banger_system::progress::{NoProgress, Progress};

use crate::cli::{CreateArgs, PauseArgs, RmArgs, StartArgs, StopArgs};
use crate::output::{print_error, print_json, safe};
use crate::progress::Renderer;
use crate::{connect, outln};

pub async fn create(layout: &Layout, args: CreateArgs) -> anyhow::Result<i32> {
    let memory = args.spec.memory.clone();
    let request = args.spec.into_request(false);
    let client = connect::connect(layout).await?;
    // Creating may build the image first: show that progress, as `vm run` does.
    let progress = Renderer::stderr_quiet();
    let vm = client
        .create_vm(&request, &progress)
        .await
        .map_err(|e| super::flags::rephrase(e, memory.as_ref()))?;
    progress.finish();
    if args.json {
        print_json(&vm)?;
    } else {
        crate::output::print_shares(&vm);
        outln!(
            "created VM {name} ({driver}); boot it with `banger vm start {name}`",
            name = vm.name,
            driver = vm.driver.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(0)
}

pub async fn pause(layout: &Layout, args: PauseArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let results = each(&client, &args.names, |client, name, _| async move {
        client.pause_vm(&name).await
    })
    .await;
    report(results, args.json, "cannot pause VM", |vm| {
        format!("{} {}", vm.name, vm.state)
    })
}

pub async fn resume(layout: &Layout, args: PauseArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let results = each(&client, &args.names, |client, name, _| async move {
        client.resume_vm(&name).await
    })
    .await;
    report(results, args.json, "cannot resume VM", |vm| {
        format!("{} {}", vm.name, vm.state)
    })
}

pub async fn start(layout: &Layout, args: StartArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let results = each(&client, &args.names, |client, name, progress| async move {
        client.start_vm(&name, progress.as_ref()).await
    })
    .await;
    report(results, args.json, "cannot start VM", |vm| {
        format!("{} {}", vm.name, vm.state)
    })
}

pub async fn stop(layout: &Layout, args: StopArgs) -> anyhow::Result<i32> {
    let req = StopVmRequest {
        // None: the daemon's default, which it owns.
        timeout_secs: args.timeout,
        force: args.force,
    };
    let client = connect::connect(layout).await?;
    let results = each(&client, &args.names, |client, name, progress| {
        let req = req.clone();
        async move {
            let vm = client.stop_vm(&name, &req, progress.as_ref()).await?;
            // Read once the guest is down: its last writes are committed by then.
            if let Ok(stopped) = client.get_vm(&vm.id).await {
                super::vm_sync::warn_unsynced(&stopped, "stopped");
            }
            Ok(vm)
        }
    })
    .await;
    report(results, args.json, "cannot stop VM", |vm| {
        format!("{} {}", vm.name, vm.state)
    })
}

pub async fn rm(layout: &Layout, args: RmArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let force = args.force;
    let results = each(&client, &args.names, |client, name, _| async move {
        let before = client.get_vm(&name).await.ok();
        let removed = client.remove_vm(&name, force).await?;
        if let Some(before) = before {
            super::vm_sync::warn_unsynced(&before, "removed");
        }
        Ok(removed)
    })
    .await;
    report(results, args.json, "cannot remove VM", |vm| {
        format!("removed {}", vm.name)
    })
}

type Outcome = (String, Result<VmView, ClientError>);

/// Run `op` for every name: one with a progress display, several concurrently.
async fn each<F, Fut>(client: &Client, names: &[String], op: F) -> Vec<Outcome>
where
    F: Fn(Client, String, std::sync::Arc<dyn Progress>) -> Fut,
    Fut: std::future::Future<Output = Result<VmView, ClientError>> + Send + 'static,
{
    if let [name] = names {
        let progress = std::sync::Arc::new(Renderer::stderr_quiet());
        let result = op(client.clone(), name.clone(), progress.clone()).await;
        progress.finish();
        return vec![(name.clone(), result)];
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let fut = op(
            client.clone(),
            name.clone(),
            std::sync::Arc::new(NoProgress),
        );
        tasks.spawn(async move { (i, fut.await) });
    }
    let mut results: Vec<Option<Result<VmView, ClientError>>> =
        names.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, result)) = joined {
            results[i] = Some(result);
        }
    }
    names
        .iter()
        .cloned()
        .zip(results)
        .map(|(name, result)| {
            let result = result.unwrap_or_else(|| {
                Err(ClientError::Decode {
                    what: name.clone(),
                    detail: "the request's task ended without an answer".into(),
                })
            });
            (name, result)
        })
        .collect()
}

/// Print each outcome in the order the names were given; 1 if any failed.
fn report(
    results: Vec<Outcome>,
    json: bool,
    failed: &str,
    line: impl Fn(&VmView) -> String,
) -> anyhow::Result<i32> {
    let mut code = 0;
    let mut done = Vec::new();
    for (name, result) in results {
        match result {
            Ok(vm) => {
                if !json {
                    writeln!(std::io::stdout(), "{}", line(&vm))?;
                }
                done.push(vm);
            }
            Err(e) => {
                print_error(
                    &anyhow::Error::new(e).context(format!("{failed} {}", safe::name(&name))),
                );
                code = 1;
            }
        }
    }
    if json {
        print_json(&done)?;
    }
    Ok(code)
}
