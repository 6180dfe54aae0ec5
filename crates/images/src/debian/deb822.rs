//! The deb822 control format (`Key: value` fields, continuation lines start with
//! whitespace, paragraphs separated by blank lines) used by `InRelease` and
//! `Packages`.

use std::io::{self, BufRead};

/// One paragraph: fields in order of appearance. Continuation lines are joined
/// with `\n`, without their leading space.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Paragraph {
    pub fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of `key` (case-insensitive, as deb822 field names are).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse paragraphs from `reader`, keeping only fields for which `keep` is true
/// (so a 50 MB `Packages` file does not allocate every description), and hand
/// each non-empty paragraph to `each`. Returns an error string for malformed
/// lines, naming the line number.
pub fn parse<R: BufRead>(
    mut reader: R,
    keep: impl Fn(&str) -> bool,
    mut each: impl FnMut(Paragraph),
) -> Result<(), ParseError> {
    let mut current = Paragraph::default();
    // Whether the last field line was kept: continuation lines follow it.
    let mut last_kept = false;
    let mut seen_field = false;
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(ParseError::Io)?;
        number += 1;
        if n == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            if seen_field {
                each(std::mem::take(&mut current));
            }
            seen_field = false;
            last_kept = false;
            continue;
        }
        if text.starts_with('#') && !seen_field {
            continue;
        }
        if text.starts_with([' ', '\t']) {
            if !seen_field {
                return Err(ParseError::Syntax {
                    line: number,
                    reason: "a continuation line comes before any field".into(),
                });
            }
            match current.fields.last_mut() {
                Some((_, value)) if last_kept => {
                    let part = text.trim_start();
                    if !value.is_empty() {
                        value.push('\n');
                    }
                    // A lone "." stands for an empty line in multi-line values.
                    value.push_str(if part == "." { "" } else { part });
                }
                _ => {}
            }
            continue;
        }
        let Some((key, value)) = text.split_once(':') else {
            return Err(ParseError::Syntax {
                line: number,
                reason: format!("expected \"Field: value\", found {:?}", truncate(text)),
            });
        };
        seen_field = true;
        last_kept = keep(key);
        if last_kept {
            current
                .fields
                .push((key.to_string(), value.trim().to_string()));
        }
    }
    if seen_field {
        each(current);
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("read failed")]
    Io(#[source] io::Error),
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<Paragraph> {
        let mut out = Vec::new();
        parse(text.as_bytes(), |_| true, |p| out.push(p)).unwrap();
        out
    }

    #[test]
    fn paragraphs_fields_and_continuations() {
        let ps = all("A: 1\nB:\n x\n .\n y\n\n\nA: 2\n");
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("a"), Some("1"));
        assert_eq!(ps[0].get("B"), Some("x\n\ny"));
        assert_eq!(ps[1].get("A"), Some("2"));
    }

    #[test]
    fn filtered_fields_drop_their_continuations() {
        let mut out = Vec::new();
        parse(
            "Description: long\n more\nPackage: p\n".as_bytes(),
            |k| k == "Package",
            |p| out.push(p),
        )
        .unwrap();
        assert_eq!(
            out[0].fields,
            vec![("Package".to_string(), "p".to_string())]
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let err = parse("A: 1\nnot a field\n".as_bytes(), |_| true, |_| {}).unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }
}
