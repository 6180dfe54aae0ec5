//! Chaos: hundreds of random create / start / stop / rm / exec operations in parallel, with
//! the daemon killed at random moments (not only at fault points) and started again. After
//! each restart's reconciliation: no VMM without a running VM recording it, no VM in a
//! transitional state, no directory without a VM, no intent left; every running VM answers.

use std::sync::Arc;
use std::time::Duration;

use banger_api::StopVmRequest;
use banger_store::VmState;

use crate::state::Daemon;
use crate::testing::{Harness, WAIT, request};

/// A tiny deterministic generator (xorshift64*): a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// One random operation on one of a few VMs; its result does not matter (conflicts, missing
/// VMs and cancelled boots are all fine), only what it leaves behind.
async fn random_op(daemon: Arc<Daemon>, seed: u64) {
    let mut rng = Rng(seed | 1);
    let name = NAMES[rng.below(NAMES.len() as u64) as usize];
    match rng.below(7) {
        0 => drop(
            super::create(
                &daemon,
                request(name, rng.below(2) == 0),
                &banger_system::progress::NoProgress,
            )
            .await,
        ),
        1 => drop(super::start(&daemon, name, &banger_system::progress::NoProgress).await),
        2 => {
            let req = StopVmRequest {
                timeout_secs: Some(1 + rng.below(3)),
                force: rng.below(3) == 0,
            };
            drop(super::stop(&daemon, name, req, &banger_system::progress::NoProgress).await);
        }
        3 => drop(super::remove(&daemon, name, rng.below(2) == 0).await),
        _ => {
            if let Ok(vm) = super::lookup(&daemon, name)
                && vm.state == VmState::Running
                && let Ok(client) = super::client_for(&daemon, &vm).await
                && let Ok(session) = client
                    .exec(banger_agent_client::ExecRequest::new(["echo", "x"]))
                    .await
            {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), session.wait_with_output()).await;
            }
        }
    }
}

#[test]
fn random_operations_and_daemon_kills_leave_a_consistent_host() {
    let seed = std::env::var("BANGER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d);
    eprintln!("chaos seed {seed} (set BANGER_CHAOS_SEED to replay)");
    let mut rng = Rng(seed);
    let harness = Harness::new();
    let rounds = 8;
    let per_round = 40;
    for round in 0..rounds {
        let inc = harness.start();
        harness.assert_consistent();
        let states: Vec<String> = inc
            .daemon
            .store()
            .list_vms()
            .expect("list")
            .iter()
            .map(|vm| format!("{}={}", vm.name, vm.state))
            .collect();
        eprintln!("round {round}: after reconciliation {}", states.join(" "));
        // Every VM left running is adopted and answers.
        let running: Vec<String> = inc
            .daemon
            .store()
            .list_vms()
            .expect("list")
            .into_iter()
            .filter(|vm| vm.state == VmState::Running)
            .map(|vm| vm.name)
            .collect();
        for name in &running {
            assert_eq!(
                inc.exec_stdout(name, &["echo", "alive"]),
                "alive\n",
                "round {round}: running VM {name} does not answer"
            );
        }
        for _ in 0..per_round {
            let daemon = inc.daemon.clone();
            let op_seed = rng.next();
            inc.rt.spawn(random_op(daemon, op_seed));
        }
        // Kill the daemon at a random moment while the operations run.
        let after = Duration::from_millis(50 + rng.below(1500));
        std::thread::sleep(after);
        inc.kill();
    }
    // A last daemon that is not killed: everything settles and can be cleaned up.
    let last = harness.start();
    harness.assert_consistent();
    let vms = last.daemon.store().list_vms().expect("list");
    for vm in vms {
        last.block_on(async {
            tokio::time::timeout(WAIT, super::remove(&last.daemon, &vm.name, true))
                .await
                .expect("rm -f hung")
                .unwrap_or_else(|e| panic!("rm -f {}: {}", vm.name, e.message))
        });
    }
    harness.assert_consistent();
    assert!(harness.vmm_processes().is_empty());
}
