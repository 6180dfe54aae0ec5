//! Every `banger …` command that banger's own texts tell people to run — doctor's hints,
//! the daemon's error hints, help texts — must exist in this build: its subcommands
//! resolve and its flags are known. A hint that names a command still to come sends
//! people into an error; this test fails instead.

use clap::CommandFactory;

use super::Cli;

/// Check that `words` (after `banger`) name an existing subcommand with known flags.
/// Values and positional arguments are not checked: placeholders stand in for them.
fn resolve(words: &[&str]) -> Result<(), String> {
    let mut root = Cli::command();
    root.build();
    let mut cmd = &root;
    let mut positional_seen = false;
    let mut words = words.iter().copied();
    while let Some(word) = words.next() {
        if word == "--" || word == "|" || word.starts_with('\'') || word.starts_with('"') {
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            let arg = cmd
                .get_arguments()
                .find(|a| {
                    a.get_long() == Some(name)
                        || a.get_all_aliases().is_some_and(|al| al.contains(&name))
                })
                .ok_or_else(|| {
                    format!(
                        "`{}` has no flag --{name}",
                        cmd.get_bin_name().unwrap_or("banger")
                    )
                })?;
            if arg.get_action().takes_values() && !attached {
                words.next();
            }
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (i, c) in shorts.char_indices() {
                let arg = cmd
                    .get_arguments()
                    .find(|a| a.get_short() == Some(c))
                    .ok_or_else(|| {
                        format!(
                            "`{}` has no flag -{c}",
                            cmd.get_bin_name().unwrap_or("banger")
                        )
                    })?;
                if arg.get_action().takes_values() {
                    if i + c.len_utf8() == shorts.len() {
                        words.next();
                    }
                    break;
                }
            }
        } else if !positional_seen && cmd.has_subcommands() {
            match cmd.find_subcommand(word) {
                Some(sub) => cmd = sub,
                None if cmd.get_positionals().next().is_some() => positional_seen = true,
                None => {
                    return Err(format!(
                        "`{}` has no subcommand {word:?}",
                        cmd.get_bin_name().unwrap_or("banger")
                    ));
                }
            }
        } else {
            positional_seen = true;
        }
    }
    Ok(())
}

/// The banger commands quoted in `text`: `` `banger …` `` spans, and `sudo banger …`
/// up to the end of its clause.
fn commands_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, span) in text.split('`').enumerate() {
        let span = span.trim();
        if i % 2 == 1 && (span.starts_with("banger ") || span.starts_with("sudo banger ")) {
            found.push(span.to_string());
        }
    }
    let mut rest = text;
    while let Some(at) = rest.find("sudo banger ") {
        let clause = &rest[at..];
        let end = clause
            .find(['`', ';', ',', ')', '"', '\n'])
            .unwrap_or(clause.len());
        found.push(clause[..end].trim().to_string());
        rest = &clause[end..];
    }
    found
}

/// Check one command; `None` when it is fine.
fn problem(command: &str) -> Option<String> {
    let words: Vec<&str> = command
        .split_whitespace()
        .skip_while(|w| *w == "sudo")
        .skip(1)
        .collect();
    resolve(&words).err().map(|e| format!("{command:?}: {e}"))
}

/// Rust string literals (roughly: the text between quotes) of a source file.
fn string_literals(source: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match (&mut current, c) {
            (Some(s), '\\') => {
                if let Some(next) = chars.next()
                    && next != '\n'
                {
                    s.push(next);
                }
            }
            (Some(_), '"') => literals.push(current.take().unwrap_or_default()),
            (Some(s), c) => s.push(c),
            (None, '"') => current = Some(String::new()),
            // A char literal such as '"' must not open a string.
            (None, '\'') => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                }
            }
            (None, _) => {}
        }
    }
    literals
}

fn rust_sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_resolver_catches_what_it_should() {
    assert!(problem("banger vm exec -it dev -- sh").is_none());
    assert!(problem("sudo banger helper --owner-uid 1000").is_none());
    assert!(problem("banger image prune --dry-run").is_none());
    assert!(problem("banger ps -q --format '{{.name}}'").is_none());
    assert!(problem("banger daemon stop").is_none());
    assert!(problem("banger logs -n 5 -f dev").is_none());
    assert!(problem("banger vm ssh dev").is_none());
    assert!(problem("banger vm teleport dev").is_some());
    assert!(problem("sudo banger system install --owner $USER").is_none());
    assert!(problem("sudo banger system reinstall").is_some());
    assert!(problem("banger vm run --memry 1g").is_some());
    assert!(problem("banger exec -x dev true").is_some());
    assert_eq!(
        commands_in("run `banger ssh-config --install`, or: sudo banger helper; later"),
        vec!["banger ssh-config --install", "sudo banger helper"]
    );
}

/// Every quoted command in every crate's sources: doctor's hints, the daemon's error
/// hints, help texts.
#[test]
fn every_command_banger_names_in_its_sources_exists() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_sources(&crates, &mut files);
    assert!(
        files.len() > 50,
        "found only {} sources under {}",
        files.len(),
        crates.display()
    );
    let mut problems = Vec::new();
    // The e2e crate and this file quote wrong commands on purpose.
    let checked = files.iter().filter(|f| {
        f.components().all(|c| c.as_os_str() != "e2e") && !f.ends_with("cli/named_commands.rs")
    });
    for file in checked {
        let source = std::fs::read_to_string(file).unwrap_or_default();
        for literal in string_literals(&source) {
            for command in commands_in(&literal) {
                if let Some(p) = problem(&command) {
                    problems.push(format!("{}: {p}", file.display()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "commands that do not exist:\n{}",
        problems.join("\n")
    );
}

/// The hints of a real doctor run on this host (they are formatted at run time).
#[test]
fn every_command_a_doctor_report_names_exists() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let layout = banger_paths::Layout {
        mode: banger_paths::Mode::DevUser,
        state_dir: dir.path().join("state"),
        runtime_dir: dir.path().join("run"),
        config_dir: dir.path().join("config"),
        etc_dir: dir.path().join("etc"),
        home_dir: Some(dir.path().join("home")),
    };
    let config = banger_config::load(&layout.config_file());
    let ctx = banger_doctor::DoctorContext::from_host(layout, config);
    let report = banger_doctor::run(&ctx);
    let mut problems = Vec::new();
    for check in report.checks() {
        let texts = std::iter::once(&check.summary)
            .chain(check.details.iter())
            .chain(check.hint.iter());
        for text in texts {
            problems.extend(commands_in(text).iter().filter_map(|c| problem(c)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
