//! Fault injection for lifecycle tests: named points in create, start, stop and remove
//! where a test makes the daemon "die" (compiled only for tests).
//!
//! A crash point never returns: the operation stops there with nothing undone, as after a
//! SIGKILL. The test then shuts down the daemon's runtime and opens a new daemon on the same
//! state directory, whose reconciliation must find, adopt or clean up what was left. Code
//! between two points must therefore never rely on `Drop` to clean up persistent state: a
//! killed process runs no destructors.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Where lifecycle code can be cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    CreateIntentRecorded,
    CreateDirMade,
    CreateDiskMade,
    StartMarkedStarting,
    StartNetworkAttached,
    StartLaunched,
    StartRecorded,
    StopMarkedStopping,
    StopAgentAsked,
    StopVmmGone,
    RemoveIntentRecorded,
    RemoveVmmGone,
    RemoveDirDeleted,
}

impl FaultPoint {
    pub const ALL: [FaultPoint; 13] = [
        FaultPoint::CreateIntentRecorded,
        FaultPoint::CreateDirMade,
        FaultPoint::CreateDiskMade,
        FaultPoint::StartMarkedStarting,
        FaultPoint::StartNetworkAttached,
        FaultPoint::StartLaunched,
        FaultPoint::StartRecorded,
        FaultPoint::StopMarkedStopping,
        FaultPoint::StopAgentAsked,
        FaultPoint::StopVmmGone,
        FaultPoint::RemoveIntentRecorded,
        FaultPoint::RemoveVmmGone,
        FaultPoint::RemoveDirDeleted,
    ];
}

/// The crash armed in one daemon, if any.
#[derive(Default)]
pub struct Faults {
    armed: Mutex<Option<(FaultPoint, Arc<Notify>)>>,
}

impl Faults {
    /// Make the next operation that reaches `point` stop there forever; the returned
    /// notification fires when it does.
    pub fn crash_at(&self, point: FaultPoint) -> Arc<Notify> {
        let reached = Arc::new(Notify::new());
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some((point, reached.clone()));
        reached
    }

    /// Called at `point` by [`fault_point!`].
    pub async fn hit(&self, point: FaultPoint) {
        let reached = {
            let armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
            match armed.as_ref() {
                Some((at, reached)) if *at == point => reached.clone(),
                _ => return,
            }
        };
        reached.notify_one();
        std::future::pending::<()>().await;
    }
}
