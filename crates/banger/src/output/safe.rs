//! Guest-controlled text made inert before it reaches a terminal.
//!
//! Root in a guest is an attacker (docs/security.md): whatever it writes to its console,
//! or gets stored as a kernel release or boot error, must not drive the host user's
//! terminal — no title changes, screen clears, cursor moves or queries the terminal
//! answers by typing into the shell. Every control character (C0 except newline and tab,
//! DEL, C1), every byte that is not UTF-8 (an 8-bit terminal reads 0x9b as CSI) and the
//! invisible characters that reorder or hide text (bidirectional overrides, zero-width
//! characters) are replaced by visible text: `\x1b`, `\xff`, `\u{202e}`. Serial consoles
//! end lines with CR LF; that pair becomes a plain newline, a lone CR is shown.
//!
//! Commands print through this when their stdout is a terminal, unless `--raw`; into a
//! pipe or file the bytes pass unchanged, so `banger vm logs dev > log` keeps them exact.

use std::fmt::Write;

/// Escapes a byte stream that arrives in chunks (a console log): a UTF-8 sequence or a
/// CR LF split across two chunks is handled as if it had arrived whole.
#[derive(Debug, Default)]
pub struct Sanitizer {
    /// Bytes held back from the last chunk: an incomplete UTF-8 sequence or a CR.
    pending: Vec<u8>,
}

impl Sanitizer {
    pub fn new() -> Sanitizer {
        Sanitizer::default()
    }

    /// Escape `chunk`, appending the inert text to `out`. Up to three trailing bytes
    /// may be held until the next call (or [`Sanitizer::finish`]).
    pub fn push(&mut self, chunk: &[u8], out: &mut String) {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(chunk);
        let mut rest = input.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    let held = self.escape_text(text, out);
                    self.pending.extend_from_slice(held.as_bytes());
                    return;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // Cannot fail: `valid_up_to` is the length of the UTF-8 prefix.
                    let text = std::str::from_utf8(valid).unwrap_or_default();
                    let held = self.escape_text(text, out);
                    // A CR held at the end of the valid part is not followed by LF.
                    if !held.is_empty() {
                        out.push_str("\\r");
                    }
                    match e.error_len() {
                        Some(bad) => {
                            for byte in &after[..bad] {
                                let _ = write!(out, "\\x{byte:02x}");
                            }
                            rest = &after[bad..];
                        }
                        // The chunk ends inside a sequence that may yet complete.
                        None => {
                            self.pending.extend_from_slice(after);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: escape whatever was held back.
    pub fn finish(&mut self, out: &mut String) {
        for byte in std::mem::take(&mut self.pending) {
            match byte {
                b'\r' => out.push_str("\\r"),
                _ => {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
        }
    }

    /// Escape `text`; returns a trailing CR that must wait for the next chunk.
    fn escape_text<'a>(&self, text: &'a str, out: &mut String) -> &'a str {
        let (body, held) = match text.strip_suffix('\r') {
            Some(body) => (body, "\r"),
            None => (text, ""),
        };
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' if chars.peek() == Some(&'\n') => {}
                '\r' => out.push_str("\\r"),
                '\n' | '\t' => out.push(c),
                c => escape_char(c, out),
            }
        }
        held
    }
}

/// `text` (possibly several lines) with every unsafe character escaped; newlines and
/// tabs stay, a CR LF becomes a newline.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut s = Sanitizer::new();
    s.push(text.as_bytes(), &mut out);
    s.finish(&mut out);
    out
}

/// `text` as one line: newlines and tabs are escaped too (for table cells and fields).
pub fn line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => escape_char(c, &mut out),
        }
    }
    out
}

/// A name the user typed, as an error's context repeats it: one line, and cut after 64
/// characters with its length (as the daemon quotes refused names), so a 5000-character
/// name does not fill the screen twice.
pub fn name(text: &str) -> String {
    const MAX: usize = 64;
    let count = text.chars().count();
    if count <= MAX {
        return line(text);
    }
    let head: String = text.chars().take(MAX).collect();
    format!("{}… ({count} characters)", line(&head))
}

fn escape_char(c: char, out: &mut String) {
    if !banger_system::text::is_unsafe(c) {
        out.push(c);
    } else if c.is_ascii() {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_error_contexts_are_one_short_line() {
        assert_eq!(name("dev"), "dev");
        assert_eq!(name("a\nb"), "a\\nb");
        let long = name(&"x".repeat(5000));
        assert!(long.ends_with("… (5000 characters)"), "{long}");
        assert!(long.chars().count() < 100, "{long}");
    }

    fn stream(chunks: &[&[u8]]) -> String {
        let mut s = Sanitizer::new();
        let mut out = String::new();
        for chunk in chunks {
            s.push(chunk, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn escape_sequences_become_visible_text() {
        // Title change, screen clear, a DCS query the terminal would answer, colour.
        let evil = b"\x1b]0;pwned\x07\x1b[2J\x1bP$q\"p\x1b\\\x1b[31mred\x1b[0m\n";
        let got = stream(&[evil]);
        assert_eq!(
            got,
            "\\x1b]0;pwned\\x07\\x1b[2J\\x1bP$q\"p\\x1b\\\\x1b[31mred\\x1b[0m\n"
        );
        assert!(!got.contains('\x1b') && !got.contains('\x07'));
    }

    #[test]
    fn c1_del_invalid_bytes_and_invisible_characters() {
        assert_eq!(stream(&["\u{9b}31m".as_bytes()]), "\\u{9b}31m");
        assert_eq!(stream(&[b"a\x7fb"]), "a\\x7fb");
        assert_eq!(stream(&[b"\x9b2J\xff"]), "\\x9b2J\\xff");
        assert_eq!(
            stream(&["evil\u{202e}txt\u{200b}".as_bytes()]),
            "evil\\u{202e}txt\\u{200b}"
        );
        assert_eq!(stream(&[b"\x00\x08"]), "\\x00\\x08");
    }

    #[test]
    fn ordinary_text_passes_unchanged() {
        let text = "Linux 6.1.0 ünïcödé ✓\n\tindented\n";
        assert_eq!(stream(&[text.as_bytes()]), text);
    }

    #[test]
    fn crlf_is_a_newline_and_a_lone_cr_is_shown() {
        assert_eq!(stream(&[b"boot\r\nok\r\n"]), "boot\nok\n");
        assert_eq!(stream(&[b"50%\r100%\n"]), "50%\\r100%\n");
        // Split across chunks.
        assert_eq!(stream(&[b"boot\r", b"\nok"]), "boot\nok");
        assert_eq!(stream(&[b"boot\r", b"x"]), "boot\\rx");
        assert_eq!(stream(&[b"end\r"]), "end\\r");
        assert_eq!(stream(&[b"a\r", b"\xff"]), "a\\r\\xff");
    }

    #[test]
    fn utf8_split_across_chunks_is_reassembled() {
        let check = "✓".as_bytes();
        assert_eq!(stream(&[&check[..1], &check[1..]]), "✓");
        assert_eq!(stream(&[&check[..2], &check[2..], b"\n"]), "✓\n");
        // A sequence that never completes is escaped at the end.
        assert_eq!(stream(&[&check[..2]]), "\\xe2\\x9c");
        // Every split point of a mixed string gives the same answer as no split.
        let all = "a\x1b[1m✓\r\nü\u{9b}".as_bytes();
        let whole = stream(&[all]);
        for at in 0..all.len() {
            assert_eq!(stream(&[&all[..at], &all[at..]]), whole, "split at {at}");
        }
    }

    #[test]
    fn single_lines_escape_newlines_too() {
        assert_eq!(line("a\nb\tc\rd\x1b"), "a\\nb\\tc\\rd\\x1b");
        assert_eq!(text("a\r\nb\x1b"), "a\nb\\x1b");
    }
}
