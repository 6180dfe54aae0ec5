//! `banger doctor`: is this host ready to run banger, and if not, what to do.
//!
//! Every check is read-only: doctor never creates or changes the state store, the
//! config, or anything else on the host. Checks live in [`checks`], one file per
//! concern, and are listed in [`registry::builtin_checks`]; a new feature adds its
//! check by adding one entry there.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let layout = banger_paths::Layout::resolve()?;
//! let config = banger_config::load(&layout.config_file());
//! let ctx = banger_doctor::DoctorContext::from_host(layout, config);
//! let report = banger_doctor::run(&ctx);
//! report.render_human(&mut std::io::stdout(), false)?;
//! std::process::exit(report.exit_code());
//! # }
//! ```

pub mod checks;
pub mod context;
pub mod groups;
pub mod registry;
pub mod render;
pub mod report;

pub use context::DoctorContext;
pub use registry::{CapabilityCheck, builtin_checks};
pub use report::{Check, Counts, Report, SCHEMA_VERSION, Status, Verdict};

/// Run every built-in check against `ctx`.
pub fn run(ctx: &DoctorContext) -> Report {
    let mut report = run_checks(ctx, &builtin_checks());
    report.set_driver(
        ctx.selection()
            .as_ref()
            .ok()
            .map(|s| format!("{} ({})", s.driver, s.accel)),
    );
    report
}

/// Run the given checks in order. A check that returns nothing (it does not apply
/// to this host) simply leaves no row.
pub fn run_checks(ctx: &DoctorContext, checks: &[Box<dyn CapabilityCheck>]) -> Report {
    let mut report = Report::new();
    for check in checks {
        report.extend(check.run(ctx));
    }
    report
}

/// An error and its causes, joined with ": " — the way doctor shows errors whose
/// messages deliberately leave the cause to their `source()`.
pub use banger_system::error_chain;
