//! The state store: readable, or not created yet.
//!
//! Doctor opens the database read-only (see [`crate::context::StoreState`]) and
//! never creates it: a missing file is a fresh install, not a problem.

use banger_store::StoreError;

use crate::context::{DoctorContext, StoreState};
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

const NAME: &str = "state store";

pub struct StateStore;

impl CapabilityCheck for StateStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let path = ctx.layout.db_path();
        let check = match ctx.store() {
            StoreState::Missing => Check::pass(
                groups::STATE,
                NAME,
                format!(
                    "not created yet; the daemon creates {} on first start",
                    path.display()
                ),
            ),
            StoreState::Open(_) => Check::pass(
                groups::STATE,
                NAME,
                format!("readable at {}", path.display()),
            ),
            StoreState::Unreadable(err) => unreadable(err, &path),
        };
        vec![check]
    }
}

fn unreadable(err: &StoreError, path: &std::path::Path) -> Check {
    let message = crate::error_chain(err);
    match err {
        // An older schema is migrated by the daemon on its next start; nothing is broken.
        StoreError::SchemaOutdated { .. } => Check::warn(groups::STATE, NAME, message)
            .hint("start the daemon once (any banger command does in dev mode) to migrate it"),
        _ if err.is_corrupt() => Check::fail(groups::STATE, NAME, message).hint(format!(
            "move {} aside (or restore it from a backup); the daemon then creates a fresh, empty store",
            path.display()
        )),
        _ => Check::fail(groups::STATE, NAME, message).hint(format!(
            "check the permissions of {} and its directory; if it is damaged, move it aside",
            path.display()
        )),
    }
}
