//! The config file: readable and valid.
//!
//! A broken config.toml does not stop doctor: the other checks run with built-in
//! defaults, and this row says what is wrong and where.

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

const NAME: &str = "config file";

pub struct ConfigFile;

impl CapabilityCheck for ConfigFile {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let path = ctx.layout.config_file();
        let check = match (&ctx.config_error, &ctx.config.source) {
            (Some(err), _) => Check::fail(groups::CONFIG, NAME, err.clone())
                .detail("the checks below use built-in defaults instead")
                .hint(format!(
                    "fix {} (keys are described in docs/config.md)",
                    path.display()
                )),
            (None, Some(source)) => {
                Check::pass(groups::CONFIG, NAME, format!("loaded {}", source.display()))
                    .detail(format!("vmm = {}", ctx.config.vmm))
            }
            (None, None) => Check::pass(
                groups::CONFIG,
                NAME,
                format!("no {} yet; built-in defaults apply", path.display()),
            ),
        };
        vec![check]
    }
}
