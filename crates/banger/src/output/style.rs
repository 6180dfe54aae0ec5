//! Colour, decided by one rule for everything banger prints (doctor, errors, warnings):
//! anstream's reading of the conventions — `NO_COLOR` (set and non-empty) turns colour
//! off, `CLICOLOR_FORCE` turns it on even into a pipe, `CLICOLOR=0` turns it off, and
//! otherwise a terminal that supports colour gets it. See <https://no-color.org> and
//! <https://bixense.com/clicolors/>.

use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};

pub const ERROR: Style = AnsiColor::Red.on_default().bold();
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
pub const HINT: Style = AnsiColor::Cyan.on_default();

/// Whether text written to stdout should carry colour.
pub fn stdout_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != ColorChoice::Never
}

/// Whether text written to stderr should carry colour.
pub fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != ColorChoice::Never
}

/// `text` in `style` when `color`, else as it is.
pub fn paint(style: Style, text: &str, color: bool) -> String {
    if color {
        format!("{}{text}{}", style.render(), style.render_reset())
    } else {
        text.to_string()
    }
}
