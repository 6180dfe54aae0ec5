//! Flags shared by every command whose output is data.

use clap::Args;

use crate::output::format::Format;

/// `--json`, `--format` and `--raw`, for commands that print one object or several.
#[derive(Debug, Args, Clone, Default)]
pub struct DataArgs {
    /// Print JSON (for scripts; control characters are escaped as JSON does)
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Print with a template: '{{.name}} {{.state}}', 'table {{.name}}\t{{.state}}' or json
    #[arg(long, value_name = "TEMPLATE", value_parser = Format::parse)]
    pub format: Option<Format>,
    /// Print text the guest controls as stored (normally escaped on a terminal)
    #[arg(long)]
    pub raw: bool,
}

impl DataArgs {
    /// The format asked for, if any: `--json` or `--format`.
    pub fn format(&self) -> Option<Format> {
        if self.json {
            Some(Format::Json)
        } else {
            self.format.clone()
        }
    }
}

/// [`DataArgs`] plus `-q` for commands that list objects.
#[derive(Debug, Args, Clone, Default)]
pub struct ListArgs {
    /// Print names only, one per line
    #[arg(short, long, conflicts_with_all = ["json", "format"])]
    pub quiet: bool,
    #[command(flatten)]
    pub data: DataArgs,
}
