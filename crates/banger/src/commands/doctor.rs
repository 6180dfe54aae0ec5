//! `banger doctor [--json]`

use std::io::IsTerminal;

use banger_paths::Layout;

use crate::cli::DoctorArgs;

pub fn run(layout: &Layout, args: DoctorArgs) -> anyhow::Result<i32> {
    let config = banger_config::load(&layout.config_file());
    let ctx = banger_doctor::DoctorContext::from_host(layout.clone(), config);
    let report = banger_doctor::run(&ctx);
    if args.json {
        println!("{}", report.to_json());
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        report.render_human(&mut std::io::stdout(), color)?;
    }
    Ok(if report.has_failures() { 1 } else { 0 })
}
