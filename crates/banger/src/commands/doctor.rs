//! `banger doctor [--json]`

use banger_paths::Layout;

use crate::cli::DoctorArgs;
use crate::outln;

pub fn run(layout: &Layout, args: DoctorArgs) -> anyhow::Result<i32> {
    let config = banger_config::load(&layout.config_file());
    let ctx = banger_doctor::DoctorContext::from_host(layout.clone(), config);
    let report = banger_doctor::run(&ctx);
    if args.json {
        outln!("{}", report.to_json())?;
    } else {
        report.render_human(&mut std::io::stdout(), crate::output::style::stdout_color())?;
    }
    Ok(if report.has_failures() { 1 } else { 0 })
}
