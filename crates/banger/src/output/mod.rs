//! Everything the CLI prints: tables, JSON, `--format` templates, sizes, errors, and
//! the rules that keep it safe (guest text escaped on terminals) and quiet (a reader
//! that goes away ends banger without an error).

pub mod format;
pub mod safe;
pub mod style;

use std::io::Write;

/// `eprintln!` that never panics: stderr being gone is ignored, there is nowhere left to say
/// anything (`eprintln!` panics on a closed pipe, which a script's `2>&1 | head` makes).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

/// [`errln!`] without the newline (a prompt, a chunk of a guest's stderr).
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut stderr = ::std::io::stderr();
        let _ = ::std::write!(stderr, $($arg)*);
        let _ = stderr.flush();
    }};
}

/// `println!` that returns an error instead of panicking when stdout is gone (a closed
/// pipe): `main` turns a broken pipe into a quiet exit.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::writeln!(::std::io::stdout(), $($arg)*)
    }};
}

/// Print an error chain and, when the daemon sent one, its hint. Messages can carry
/// guest text (a boot failure quotes the console), so they are escaped; stderr being
/// gone is ignored: there is nowhere left to say anything.
pub fn print_error(err: &anyhow::Error) {
    let color = style::stderr_color();
    let mut out = String::new();
    out.push_str(&style::paint(style::ERROR, "error", color));
    out.push_str(&format!(": {}\n", safe::text(&err.to_string())));
    for cause in err.chain().skip(1) {
        out.push_str(&format!(
            "  caused by: {}\n",
            safe::text(&cause.to_string())
        ));
    }
    let hint = err
        .chain()
        .find_map(|e| e.downcast_ref::<banger_api::ClientError>())
        .and_then(|e| e.hint().map(str::to_string));
    if let Some(hint) = hint {
        out.push_str(&style::paint(style::HINT, "hint", color));
        out.push_str(&format!(": {}\n", safe::text(&hint)));
    }
    let _ = std::io::stderr().write_all(out.as_bytes());
}

/// Print a warning line on stderr (ignored if stderr is gone).
pub fn warn(message: &str) {
    let color = style::stderr_color();
    let _ = writeln!(
        std::io::stderr(),
        "{}: {}",
        style::paint(style::WARNING, "warning", color),
        safe::text(message)
    );
}

/// Say on stderr how each of `vm`'s shares reaches the guest (`vm create`, `vm run`): a
/// copy is never a silent stand-in for a live share.
pub fn print_shares(vm: &banger_api::VmView) {
    for share in &vm.shares {
        let ro = if share.read_only { ", read-only" } else { "" };
        let mut line = format!(
            "share {} -> {}: {}{ro}",
            share.host, share.guest, share.mode
        );
        if let Some(note) = share.note.as_ref().or(share.problem.as_ref()) {
            line.push_str(&format!(" ({note})"));
        }
        let _ = writeln!(std::io::stderr(), "{}", safe::text(&line));
    }
}

/// Print rows as left-aligned columns under a header. Cells are escaped to one line
/// each: a table is for people, and a tab or newline from a guest would break it.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| safe::line(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: &[String]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    for row in &rows {
        line(row)?;
    }
    Ok(())
}

pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Pretty JSON on stdout. JSON escapes control characters itself, so guest text in
/// it is inert on any terminal.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Print data as `--json` / `--format` ask, or call `human` to print it for people.
/// `items` is one object for `inspect`-like commands (`many` false) or a list.
pub fn print_data<T: serde::Serialize>(
    items: &[T],
    many: bool,
    args: &crate::cli::output::DataArgs,
    human: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(format) = args.format() else {
        return human();
    };
    match format {
        format::Format::Json if many => print_json(&items),
        format::Format::Json => match items.first() {
            Some(item) => print_json(item),
            None => Ok(()),
        },
        format::Format::JsonLines => {
            let mut out = std::io::stdout().lock();
            for item in items {
                writeln!(out, "{}", serde_json::to_string(item)?)?;
            }
            Ok(())
        }
        format::Format::Template { template, table } => {
            let values = items
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            let escape = !args.raw && stdout_is_terminal();
            let lines = format::render_all(&template, table, &values, escape)
                .map_err(anyhow::Error::msg)?;
            let mut out = std::io::stdout().lock();
            for line in lines {
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
    }
}

/// Whether stdout is a terminal: guest text is escaped only then (see [`safe`]).
pub fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(8 << 30), "8 GiB");
        assert_eq!(format_bytes(1536 << 20), "1.5 GiB");
    }
}
