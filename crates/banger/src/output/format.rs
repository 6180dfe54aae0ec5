//! `--format`: the small template language of `vm ls`, `vm inspect`, `image ls`, …
//! (documented in docs/cli.md), close to what docker users type:
//!
//! - `{{.name}}` is a field of the object as `--json` prints it; `{{.boot.agent_ready_ms}}`
//!   reaches into nested objects. Field names match without regard to case or
//!   underscores, so `{{.Name}}` and `{{.MemoryMib}}` work too.
//! - `{{json .boot}}` prints a field as JSON; `{{json .}}` the whole object.
//! - `\t` and `\n` in the template are a tab and a newline.
//! - `table TEMPLATE` aligns tab-separated columns under a header made from the fields.
//! - `json` alone prints each object as one line of JSON.
//!
//! A field no object has is an error that lists the fields there are; a field that is
//! empty for one object (`pid` of a stopped VM) prints nothing.

use serde_json::Value;

/// How a command prints its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One object (or an array) of pretty JSON: `--json`.
    Json,
    /// One compact JSON object per line: `--format json`.
    JsonLines,
    /// A template, one rendering per object; with `table`, aligned under a header.
    Template { template: Template, table: bool },
}

impl Format {
    /// Parse a `--format` argument.
    pub fn parse(spec: &str) -> Result<Format, String> {
        let trimmed = spec.trim();
        // An empty template would print one empty line per object.
        if trimmed.is_empty() {
            return Err(
                "the template is empty; give one, e.g. --format '{{.name}} {{.state}}', or drop --format"
                    .into(),
            );
        }
        if trimmed == "json" {
            return Ok(Format::JsonLines);
        }
        let (body, table) = match trimmed.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (rest.trim_start(), true)
            }
            _ => (spec, false),
        };
        if table && body.is_empty() {
            return Err(
                "`table` needs a template after it, e.g. --format 'table {{.name}}\\t{{.state}}'"
                    .into(),
            );
        }
        Ok(Format::Template {
            template: Template::parse(body)?,
            table,
        })
    }
}

/// A parsed template: literal text and field references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A field path (empty: the whole object); `json` prints it as JSON.
    Field {
        path: Vec<String>,
        json: bool,
    },
}

impl Template {
    pub fn parse(spec: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = spec;
        while let Some(open) = rest.find("{{") {
            push_text(&mut parts, &rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("{spec:?}: a `{{{{` is not closed by `}}}}`"))?;
            parts.push(parse_action(&after[..close], spec)?);
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("{spec:?}: a `}}}}` has no `{{{{` before it"));
        }
        push_text(&mut parts, rest);
        Ok(Template { parts })
    }

    /// Render for one object. `escape` makes string values one inert line (stdout is
    /// a terminal and `--raw` was not given).
    #[cfg(test)]
    fn render(&self, value: &Value, escape: bool) -> Result<String, String> {
        self.check_fields(std::slice::from_ref(value))?;
        Ok(self.render_checked(value, escape))
    }

    /// Every field must exist in at least one of `items`: a field only some lack is
    /// optional (empty for them), one that none has is a typo.
    fn check_fields(&self, items: &[Value]) -> Result<(), String> {
        for part in &self.parts {
            if let Part::Field { path, .. } = part
                && let Some(first) = items.first()
                && !items.iter().any(|item| lookup(item, path).is_some())
            {
                return Err(unknown_field(path, first));
            }
        }
        Ok(())
    }

    fn render_checked(&self, value: &Value, escape: bool) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { path, json } => {
                    let field = lookup(value, path).unwrap_or(&Value::Null);
                    let text = match field {
                        Value::Null if !json => String::new(),
                        Value::String(s) if !json => s.clone(),
                        other => other.to_string(),
                    };
                    out.push_str(&if escape {
                        super::safe::line(&text)
                    } else {
                        text
                    });
                }
            }
        }
        out
    }

    /// The header of a `table`: each field's last path element in capitals.
    pub fn header(&self) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Field { path, .. } => path
                    .last()
                    .map_or_else(|| "VALUE".to_string(), |p| p.to_uppercase()),
            })
            .collect()
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Text(text.replace("\\t", "\t").replace("\\n", "\n")));
    }
}

fn parse_action(action: &str, spec: &str) -> Result<Part, String> {
    let words: Vec<&str> = action.split_whitespace().collect();
    let (json, field) = match words.as_slice() {
        [field] => (false, *field),
        ["json", field] => (true, *field),
        _ => {
            return Err(format!(
                "{spec:?}: `{{{{{action}}}}}` is not a field: write `{{{{.name}}}}` or `{{{{json .name}}}}`"
            ));
        }
    };
    let Some(path) = field.strip_prefix('.') else {
        return Err(format!(
            "{spec:?}: `{field}` must start with a dot, as in `{{{{.{field}}}}}`"
        ));
    };
    let path: Vec<String> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('.').map(str::to_string).collect()
    };
    if path.iter().any(String::is_empty) {
        return Err(format!("{spec:?}: `{field}` has an empty field name"));
    }
    Ok(Part::Field { path, json })
}

/// Field names compare without case and underscores: `MemoryMib` is `memory_mib`.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for name in path {
        let Value::Object(map) = current else {
            // A nested path through a field that is null here: empty, not an error.
            return current.is_null().then_some(&Value::Null);
        };
        let want = normalise(name);
        current = map
            .iter()
            .find(|(key, _)| normalise(key) == want)
            .map(|(_, v)| v)
            .unwrap_or(&Value::Null);
        if current.is_null() && !map.keys().any(|k| normalise(k) == want) {
            return None;
        }
    }
    Some(current)
}

fn unknown_field(path: &[String], value: &Value) -> String {
    let known = match value {
        Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
        _ => String::new(),
    };
    format!(
        "--format: no field `.{}`; the fields are: {known}",
        path.join(".")
    )
}

/// Render `items` with `template`; a table gets a header and aligned columns.
pub fn render_all(
    template: &Template,
    table: bool,
    items: &[Value],
    escape: bool,
) -> Result<Vec<String>, String> {
    template.check_fields(items)?;
    let rows: Vec<String> = items
        .iter()
        .map(|v| template.render_checked(v, escape))
        .collect();
    if !table {
        return Ok(rows);
    }
    let mut grid: Vec<Vec<String>> = vec![split_cells(&template.header())];
    grid.extend(rows.iter().map(|r| split_cells(r)));
    let columns = grid.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            grid.iter()
                .filter_map(|row| row.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    Ok(grid
        .into_iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
                }
            }
            line.trim_end().to_string()
        })
        .collect())
}

fn split_cells(row: &str) -> Vec<String> {
    row.split('\t').map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_format_is_refused() {
        for spec in ["", "  "] {
            let err = Format::parse(spec).unwrap_err();
            assert!(err.contains("empty"), "{spec:?}: {err}");
        }
    }

    fn vm() -> Value {
        json!({"name": "dev", "state": "running", "memory_mib": 1024, "pid": null,
               "boot": {"agent_ready_ms": 812.5}, "tags": ["a"]})
    }

    fn one(spec: &str) -> Result<String, String> {
        match Format::parse(spec)? {
            Format::Template { template, .. } => template.render(&vm(), false),
            other => Err(format!("not a template: {other:?}")),
        }
    }

    #[test]
    fn fields_nested_fields_and_json() {
        assert_eq!(one("{{.name}} is {{.state}}").unwrap(), "dev is running");
        assert_eq!(one("{{ .Name }}:{{.MemoryMib}}").unwrap(), "dev:1024");
        assert_eq!(one("{{.boot.agent_ready_ms}}").unwrap(), "812.5");
        assert_eq!(
            one("{{json .boot}}").unwrap(),
            r#"{"agent_ready_ms":812.5}"#
        );
        assert_eq!(one("{{.pid}}|{{.pid.x}}").unwrap(), "|");
        assert_eq!(one("{{.tags}}").unwrap(), r#"["a"]"#);
        assert_eq!(one("{{.name}}\\t{{.state}}\\n").unwrap(), "dev\trunning\n");
        assert!(one("{{json .}}").unwrap().starts_with('{'));
    }

    #[test]
    fn mistakes_are_named() {
        let err = one("{{.nmae}}").unwrap_err();
        assert!(err.contains(".nmae") && err.contains("name, pid"), "{err}");
        assert!(one("{{.name").unwrap_err().contains("not closed"));
        assert!(one("name}}").unwrap_err().contains("no `{{`"));
        assert!(one("{{name}}").unwrap_err().contains("start with a dot"));
        assert!(one("{{upper .name}}").unwrap_err().contains("not a field"));
        assert!(one("{{.a..b}}").unwrap_err().contains("empty field"));
        assert!(
            Format::parse("table")
                .unwrap_err()
                .contains("needs a template")
        );
    }

    #[test]
    fn json_and_table_forms() {
        assert_eq!(Format::parse(" json ").unwrap(), Format::JsonLines);
        let Format::Template { template, table } =
            Format::parse("table {{.name}}\\t{{.memory_mib}} MiB").unwrap()
        else {
            panic!("not a table")
        };
        assert!(table);
        let items = vec![vm(), json!({"name": "a-much-longer-name", "memory_mib": 2})];
        let lines = render_all(&template, true, &items, false).unwrap();
        assert_eq!(
            lines,
            vec![
                "NAME                MEMORY_MIB MiB",
                "dev                 1024 MiB",
                "a-much-longer-name  2 MiB",
            ]
        );
        // A template that begins with the word "tablespace" is not a table.
        assert!(matches!(
            Format::parse("tablespace {{.name}}").unwrap(),
            Format::Template { table: false, .. }
        ));
    }

    #[test]
    fn optional_fields_are_empty_for_some_and_typos_fail_for_all() {
        let t = Template::parse("{{.pid}}{{.extra}}").unwrap();
        let items = vec![json!({"pid": 1, "extra": "x"}), json!({"pid": 2})];
        assert_eq!(
            render_all(&t, false, &items, false).unwrap(),
            vec!["1x", "2"]
        );
        let typo = Template::parse("{{.nope}}").unwrap();
        assert!(render_all(&typo, false, &items, false).is_err());
        assert_eq!(
            render_all(&typo, false, &[], false).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn guest_text_is_escaped_when_asked() {
        let t = Template::parse("{{.name}}").unwrap();
        let v = json!({"name": "a\x1b]0;x\x07\nb"});
        assert_eq!(t.render(&v, true).unwrap(), "a\\x1b]0;x\\x07\\nb");
        assert_eq!(t.render(&v, false).unwrap(), "a\x1b]0;x\x07\nb");
    }
}
