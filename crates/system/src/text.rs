//! Text that came from a guest (or any other untrusted source) made safe to put in a log
//! line, the state store, an error message or an API answer: every control character is
//! escaped — so a guest can neither forge log lines with newlines nor reach a terminal with
//! escape sequences — and the length is capped.
//!
//! Streams of guest *data* (an exec's stdout, the console) are not text in this sense: they
//! are passed on as bytes, and whoever prints them to a terminal makes them safe there.

use std::fmt::Write;

/// Escape and cap `text` at `max_chars` characters (plus a note of how much was cut).
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars) + 16);
    for (written, (at, c)) in text.char_indices().enumerate() {
        if written >= max_chars {
            let rest = text.len() - at;
            let _ = write!(out, "… ({rest} more bytes)");
            return out;
        }
        escape_char(c, &mut out);
    }
    out
}

/// [`sanitize`] for bytes that should be text: invalid UTF-8 becomes U+FFFD first.
pub fn sanitize_bytes(bytes: &[u8], max_chars: usize) -> String {
    sanitize(&String::from_utf8_lossy(bytes), max_chars)
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// C0 and C1 controls, DEL, and the invisible characters that reorder or hide text
/// (bidirectional overrides and isolates, zero-width and other format characters): what
/// guest text may not carry into a log, an answer or a terminal. The one definition, for
/// the daemon's escaping here and the CLI's on terminals.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_newlines_are_escaped() {
        assert_eq!(sanitize("6.1.0-28-cloud-amd64", 64), "6.1.0-28-cloud-amd64");
        assert_eq!(
            sanitize("line\nINFO forged\r\x1b]0;title\x07\x1b[2J", 200),
            "line\\nINFO forged\\r\\u{1b}]0;title\\u{7}\\u{1b}[2J"
        );
        assert_eq!(
            sanitize("a\\nb", 10),
            "a\\\\nb",
            "backslashes stay unambiguous"
        );
        assert_eq!(sanitize("\u{9b}31m", 10), "\\u{9b}31m", "C1 CSI");
        assert_eq!(sanitize("evil\u{202e}txt.exe", 20), "evil\\u{202e}txt.exe");
        assert_eq!(sanitize("ünïcödé ✓", 20), "ünïcödé ✓");
    }

    #[test]
    fn long_text_is_capped_with_a_note() {
        let long = "x".repeat(10_000);
        let got = sanitize(&long, 100);
        assert_eq!(got, format!("{}… (9900 more bytes)", "x".repeat(100)));
        assert_eq!(sanitize("", 0), "");
        assert_eq!(sanitize_bytes(b"ok\xff", 10), "ok\u{fffd}");
    }
}
