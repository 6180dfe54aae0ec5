//! Reconciliation as a pure decision: what the store says about a VM, what is found on the
//! host, and what to do about it. No I/O here, so the whole table is tested below.

use banger_store::VmState;

/// The VMM the store records for a VM, as found on the host (and, when it runs, as it
/// reports its guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    /// No runtime record (never launched, or released).
    Unrecorded,
    /// Recorded, and that very process (same boot, pid and start time) still runs, its guest
    /// running.
    Alive,
    /// As `Alive`, with its guest paused (QMP `stop`, Firecracker `Paused`).
    Paused,
    /// As `Alive`, but the guest was never started (a boot cut short before it began).
    NotStarted,
    /// Recorded, and that process is gone.
    Gone,
}

impl Vmm {
    pub fn is_alive(self) -> bool {
        matches!(self, Vmm::Alive | Vmm::Paused | Vmm::NotStarted)
    }
}

/// The VM's files, as found on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    Present,
    /// Its directory is missing.
    DirGone,
    /// Its directory exists but its work disk does not.
    DiskGone,
}

/// Everything reconciliation looks at for one VM that has a row in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub state: VmState,
    pub vmm: Vmm,
    /// Other processes of the driver's VMM binary use the VM's directory: a VMM (or its
    /// launcher) that a dead daemon started but never recorded.
    pub strays: bool,
    pub files: Files,
    /// A `remove` intent is recorded: the VM was being deleted when the daemon died.
    pub removing: bool,
}

/// Why a VM was released, as recorded in its `last_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A clean end (an interrupted stop, finished): no error to record.
    Clean,
    ExitedUnwatched,
    BootInterrupted,
    BootInterruptedVmmGone,
    NoVmmRecord,
    DirGone,
    DiskGone,
}

impl Why {
    pub fn message(self) -> Option<&'static str> {
        match self {
            Why::Clean => None,
            Why::ExitedUnwatched => Some("the VMM exited while no daemon was running"),
            Why::BootInterrupted => Some(
                "the daemon stopped while this VM was booting; its half-started VMM was stopped",
            ),
            Why::BootInterruptedVmmGone => {
                Some("the daemon stopped while this VM was booting, and its VMM is gone")
            }
            Why::NoVmmRecord => Some("the store marked this VM active without a record of its VMM"),
            Why::DirGone => Some("its directory is gone; remove the VM"),
            Why::DiskGone => Some("its work disk is gone; remove the VM"),
        }
    }
}

/// What to do after the kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// The store is right.
    Nothing,
    /// The VMM runs: watch it again (and connect to its agent on first use).
    Adopt,
    /// As `Adopt`, after moving a paused VM whose guest was resumed (while no daemon ran) to
    /// `running`.
    AdoptAsRunning,
    /// As `Adopt`, after moving the VM to `paused` (its guest is paused).
    AdoptAsPaused,
    /// The VMM is gone (or was just killed): release the VM into state `to`.
    Release { to: VmState, why: Why },
    /// The VM's runtime record outlived its VMM in a state without one: drop the record.
    ForgetRuntime,
    /// Finish an interrupted `rm`: delete the files, then the row.
    FinishRemove,
}

/// The decision for one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Stop the recorded VMM (it runs, and must not).
    pub kill_vmm: bool,
    /// Kill the unrecorded processes using the VM's directory.
    pub kill_strays: bool,
    pub then: Then,
}

/// The reconciliation table. Unrecorded processes using a VM's directory never belong there
/// (a live, recorded VMM is the only process that may), so strays are always killed.
pub fn plan(facts: &Facts) -> Plan {
    use VmState::*;
    let kill_strays = facts.strays;
    let alive = facts.vmm.is_alive();
    if facts.removing {
        return Plan {
            kill_vmm: alive,
            kill_strays,
            then: Then::FinishRemove,
        };
    }
    if facts.files != Files::Present {
        let why = if facts.files == Files::DirGone {
            Why::DirGone
        } else {
            Why::DiskGone
        };
        let then = if facts.state == Failed {
            if facts.vmm == Vmm::Unrecorded {
                Then::Nothing
            } else {
                Then::ForgetRuntime
            }
        } else {
            Then::Release { to: Failed, why }
        };
        return Plan {
            kill_vmm: alive,
            kill_strays,
            then,
        };
    }
    let (kill_vmm, then) = match (facts.state, facts.vmm) {
        (Created | Stopped | Failed, Vmm::Unrecorded) => (false, Then::Nothing),
        (Created | Stopped | Failed, _) => (alive, Then::ForgetRuntime),
        (Starting, Vmm::Unrecorded) => (
            false,
            Then::Release {
                to: Failed,
                why: if facts.strays {
                    Why::BootInterrupted
                } else {
                    Why::BootInterruptedVmmGone
                },
            },
        ),
        // A boot cut short is never adopted, even when its guest runs: the steps after the
        // agent's first answer did not run (the shares' mount check, a clone's own identity,
        // the SSH key authorised and the host keys pinned), so `ssh NAME.vm` would fail and a
        // clone could run with its parent's identity. A VMM whose guest never started holds
        // nothing worth keeping either. `vm start` boots the VM again, whole.
        (Starting, Vmm::Alive | Vmm::Paused) | (Starting | Running | Paused, Vmm::NotStarted) => (
            true,
            Then::Release {
                to: Failed,
                why: Why::BootInterrupted,
            },
        ),
        (Starting, Vmm::Gone) => (
            false,
            Then::Release {
                to: Failed,
                why: Why::BootInterruptedVmmGone,
            },
        ),
        (Running, Vmm::Alive) | (Paused, Vmm::Paused) => (false, Then::Adopt),
        (Running, Vmm::Paused) => (false, Then::AdoptAsPaused),
        (Paused, Vmm::Alive) => (false, Then::AdoptAsRunning),
        (Running | Paused, Vmm::Gone) => (
            false,
            Then::Release {
                to: Stopped,
                why: Why::ExitedUnwatched,
            },
        ),
        (Running | Paused, Vmm::Unrecorded) => (
            false,
            Then::Release {
                to: Failed,
                why: Why::NoVmmRecord,
            },
        ),
        // A stop cut short by the daemon's death: finish it, whatever the guest was doing.
        (Stopping, _) => (
            alive,
            Then::Release {
                to: Stopped,
                why: Why::Clean,
            },
        ),
    };
    Plan {
        kill_vmm,
        kill_strays,
        then,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmState::*;

    fn facts(state: VmState, vmm: Vmm) -> Facts {
        Facts {
            state,
            vmm,
            strays: false,
            files: Files::Present,
            removing: false,
        }
    }

    fn release(to: VmState, why: Why) -> Then {
        Then::Release { to, why }
    }

    /// Every (state, VMM) pair with files present and no strays.
    #[test]
    fn table_without_strays() {
        use Vmm::*;
        let table = [
            (Created, Unrecorded, false, Then::Nothing),
            (Created, Alive, true, Then::ForgetRuntime),
            (Created, Gone, false, Then::ForgetRuntime),
            (
                Starting,
                Unrecorded,
                false,
                release(Failed, Why::BootInterruptedVmmGone),
            ),
            (Starting, Alive, true, release(Failed, Why::BootInterrupted)),
            (
                Starting,
                Gone,
                false,
                release(Failed, Why::BootInterruptedVmmGone),
            ),
            (
                Running,
                Unrecorded,
                false,
                release(Failed, Why::NoVmmRecord),
            ),
            (Running, Alive, false, Then::Adopt),
            (Running, Gone, false, release(Stopped, Why::ExitedUnwatched)),
            (Stopping, Unrecorded, false, release(Stopped, Why::Clean)),
            (Stopping, Alive, true, release(Stopped, Why::Clean)),
            (Stopping, Gone, false, release(Stopped, Why::Clean)),
            (Stopped, Unrecorded, false, Then::Nothing),
            (Stopped, Alive, true, Then::ForgetRuntime),
            (Stopped, Gone, false, Then::ForgetRuntime),
            (Failed, Unrecorded, false, Then::Nothing),
            (Failed, Alive, true, Then::ForgetRuntime),
            (Failed, Gone, false, Then::ForgetRuntime),
            // The guest as the live VMM reports it.
            (Created, Paused, true, Then::ForgetRuntime),
            (Created, NotStarted, true, Then::ForgetRuntime),
            (
                Starting,
                Paused,
                true,
                release(Failed, Why::BootInterrupted),
            ),
            (
                Starting,
                NotStarted,
                true,
                release(Failed, Why::BootInterrupted),
            ),
            (Running, Paused, false, Then::AdoptAsPaused),
            (
                Running,
                NotStarted,
                true,
                release(Failed, Why::BootInterrupted),
            ),
            (Stopping, Paused, true, release(Stopped, Why::Clean)),
            (Stopping, NotStarted, true, release(Stopped, Why::Clean)),
            (Stopped, Paused, true, Then::ForgetRuntime),
            (Stopped, NotStarted, true, Then::ForgetRuntime),
            (Failed, Paused, true, Then::ForgetRuntime),
            (Failed, NotStarted, true, Then::ForgetRuntime),
            (
                VmState::Paused,
                Unrecorded,
                false,
                release(Failed, Why::NoVmmRecord),
            ),
            (VmState::Paused, Alive, false, Then::AdoptAsRunning),
            (
                VmState::Paused,
                Gone,
                false,
                release(Stopped, Why::ExitedUnwatched),
            ),
            (VmState::Paused, Paused, false, Then::Adopt),
            (
                VmState::Paused,
                NotStarted,
                true,
                release(Failed, Why::BootInterrupted),
            ),
        ];
        assert_eq!(table.len(), VmState::ALL.len() * 5, "every pair once");
        for (state, vmm, kill_vmm, then) in table {
            let got = plan(&facts(state, vmm));
            let want = Plan {
                kill_vmm,
                kill_strays: false,
                then,
            };
            assert_eq!(got, want, "{state} / {vmm:?}");
        }
    }

    #[test]
    fn strays_are_always_killed_and_explain_an_interrupted_boot() {
        for state in VmState::ALL {
            for vmm in [Vmm::Unrecorded, Vmm::Alive, Vmm::Gone] {
                let got = plan(&Facts {
                    strays: true,
                    ..facts(state, vmm)
                });
                assert!(got.kill_strays, "{state} / {vmm:?}");
            }
        }
        let got = plan(&Facts {
            strays: true,
            ..facts(Starting, Vmm::Unrecorded)
        });
        assert_eq!(got.then, release(Failed, Why::BootInterrupted));
    }

    #[test]
    fn an_interrupted_remove_is_finished_whatever_the_state() {
        for state in VmState::ALL {
            for vmm in [Vmm::Unrecorded, Vmm::Alive, Vmm::Gone] {
                for files in [Files::Present, Files::DirGone, Files::DiskGone] {
                    let got = plan(&Facts {
                        state,
                        vmm,
                        strays: true,
                        files,
                        removing: true,
                    });
                    assert_eq!(
                        got,
                        Plan {
                            kill_vmm: vmm == Vmm::Alive,
                            kill_strays: true,
                            then: Then::FinishRemove
                        },
                        "{state} / {vmm:?} / {files:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn missing_files_fail_the_vm_and_stop_its_vmm() {
        for state in VmState::ALL {
            for vmm in [Vmm::Unrecorded, Vmm::Alive, Vmm::Gone] {
                for (files, why) in [
                    (Files::DirGone, Why::DirGone),
                    (Files::DiskGone, Why::DiskGone),
                ] {
                    let got = plan(&Facts {
                        files,
                        ..facts(state, vmm)
                    });
                    assert_eq!(got.kill_vmm, vmm == Vmm::Alive, "{state} / {vmm:?}");
                    let want = match (state, vmm) {
                        (Failed, Vmm::Unrecorded) => Then::Nothing,
                        (Failed, _) => Then::ForgetRuntime,
                        _ => release(Failed, why),
                    };
                    assert_eq!(got.then, want, "{state} / {vmm:?} / {files:?}");
                }
            }
        }
    }

    /// Every release the table asks for is a move the store's state machine allows.
    #[test]
    fn every_release_is_a_legal_transition() {
        for state in VmState::ALL {
            for vmm in [Vmm::Unrecorded, Vmm::Alive, Vmm::Gone] {
                for strays in [false, true] {
                    for files in [Files::Present, Files::DirGone, Files::DiskGone] {
                        let got = plan(&Facts {
                            state,
                            vmm,
                            strays,
                            files,
                            removing: false,
                        });
                        if let Then::Release { to, .. } = got.then {
                            assert!(state.can_transition_to(to), "{state} -> {to}");
                        }
                        if got.then == Then::AdoptAsRunning {
                            assert!(state.can_transition_to(Running));
                        }
                    }
                }
            }
        }
    }
}
