//! Showing a long operation's progress on stderr. On a terminal: a bar for phases that
//! count bytes (downloads), a spinner with the phase name for the others, and notes
//! printed above them; the bar goes away when the operation ends. Otherwise (pipes,
//! CI logs): one plain line per phase and per note, no animation; commands whose
//! stderr carries a guest command's output print only what is out of the ordinary.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use banger_system::progress::{Progress, ProgressEvent, Unit};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{format_bytes, safe};

/// A [`Progress`] sink that draws on stderr. Call [`Renderer::finish`] when the
/// operation is over (dropping it does the same).
pub struct Renderer {
    state: Mutex<State>,
}

enum State {
    Terminal {
        bar: Option<Bar>,
    },
    /// `routine`: also print phases that count nothing (boot steps and the like).
    Plain {
        routine: bool,
    },
}

/// The current phase on a terminal.
struct Bar {
    bar: ProgressBar,
    name: String,
    bytes: Option<u64>,
    started: Instant,
}

impl Renderer {
    /// A renderer for this process's stderr that reports every phase.
    pub fn stderr() -> Renderer {
        Renderer::new(stderr_is_terminal(), true)
    }

    /// For commands whose stderr is also where a guest command's stderr goes (`vm
    /// run`): off a terminal, routine phases (a boot's steps) print nothing, so scripts
    /// see the command's own output; notes and downloads (a first-use image build)
    /// still print.
    pub fn stderr_quiet() -> Renderer {
        Renderer::new(stderr_is_terminal(), false)
    }

    fn new(terminal: bool, routine: bool) -> Renderer {
        let state = if terminal {
            State::Terminal { bar: None }
        } else {
            State::Plain { routine }
        };
        Renderer {
            state: Mutex::new(state),
        }
    }

    /// Remove the bar or spinner, keeping what was printed above it.
    pub fn finish(&self) {
        if let State::Terminal { bar } = &mut *self.lock() {
            end_phase(bar.take());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Drawing state only; a panic mid-draw cannot make it unsafe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for Renderer {
    fn report(&self, event: ProgressEvent) {
        // Phase names and notes come from the daemon and may quote what a guest or an
        // image said: one inert line each.
        let event = match event {
            ProgressEvent::Phase { name, total, unit } => ProgressEvent::Phase {
                name: safe::line(&name),
                total,
                unit,
            },
            ProgressEvent::Note { message } => ProgressEvent::Note {
                message: safe::line(&message),
            },
            other => other,
        };
        match &mut *self.lock() {
            State::Plain { routine } => plain(&event, *routine),
            State::Terminal { bar } => terminal(bar, event),
        }
    }
}

fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

fn plain(event: &ProgressEvent, routine: bool) {
    let line = match event {
        ProgressEvent::Phase {
            name,
            total: Some(total),
            unit: Some(Unit::Bytes),
        } => format!("{name} ({})", format_bytes(*total)),
        ProgressEvent::Phase { name, .. } if routine => name.clone(),
        ProgressEvent::Phase { .. } => return,
        ProgressEvent::Note { message } => format!("  {message}"),
        ProgressEvent::Advance { .. } => return,
    };
    // Progress must never fail the operation: a closed stderr just loses the line.
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn terminal(current: &mut Option<Bar>, event: ProgressEvent) {
    match event {
        ProgressEvent::Phase { name, total, unit } => {
            end_phase(current.take());
            *current = Some(start_phase(name, total, unit));
        }
        ProgressEvent::Advance { done } => {
            if let Some(bar) = current {
                bar.bar.set_position(done);
            }
        }
        ProgressEvent::Note { message } => match current {
            Some(bar) => bar.bar.println(format!("  {message}")),
            None => {
                let _ = writeln!(std::io::stderr(), "  {message}");
            }
        },
    }
}

fn start_phase(name: String, total: Option<u64>, unit: Option<Unit>) -> Bar {
    let bytes = match (total, unit) {
        (Some(total), Some(Unit::Bytes)) => Some(total),
        _ => None,
    };
    let bar = match (total, unit) {
        (Some(total), Some(Unit::Bytes)) => ProgressBar::new(total).with_style(style(
            "{spinner} {msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )),
        (Some(total), _) => {
            ProgressBar::new(total).with_style(style("{spinner} {msg} [{bar:24}] {pos}/{len}"))
        }
        (None, _) => ProgressBar::new_spinner().with_style(style("{spinner} {msg} {elapsed}")),
    };
    bar.set_message(name.clone());
    bar.enable_steady_tick(Duration::from_millis(100));
    Bar {
        bar,
        name,
        bytes,
        started: Instant::now(),
    }
}

/// A finished download leaves one line behind (what, how much, how long); other
/// phases vanish with their spinner.
fn end_phase(bar: Option<Bar>) {
    let Some(bar) = bar else { return };
    if let Some(total) = bar.bytes {
        bar.bar.println(format!(
            "  {} ({}, {:.1} s)",
            bar.name,
            format_bytes(total),
            bar.started.elapsed().as_secs_f64()
        ));
    }
    bar.bar.finish_and_clear();
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file; a typo shows up as a plain spinner.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_renders_in_both_modes() {
        for (terminal, routine) in [(true, true), (false, true), (false, false)] {
            let r = Renderer::new(terminal, routine);
            r.phase("download x.deb", Some(1 << 20), Some(Unit::Bytes));
            r.advance(1 << 19);
            r.note("using a mirror");
            r.phase("unpack", None, None);
            r.phase("count", Some(3), Some(Unit::Items));
            r.advance(3);
            r.finish();
            r.finish();
        }
    }
}
