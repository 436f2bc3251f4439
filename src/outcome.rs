//! What happened to one object or role, and the progress of a long run:
//! shared by `apply`, the AWS side and `doctor`, so none of them reaches
//! into another stage for it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// What happened (or, in a diff, would happen) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Same name, not managed by this configuration (refused without `--adopt`).
    Conflict,
    /// Same name, not managed, taken over because of `--adopt`.
    Adopt,
    Prune,
    /// A namespace that would be pruned but holds objects the tool does not manage.
    Keep,
    Failed,
    /// Not attempted because an earlier object of the repository failed.
    Skipped,
    /// In a diff: not compared, because the identity may not read it (the
    /// object's `reason` says why).
    #[serde(rename = "not-compared")]
    NotCompared,
}

/// Progress: a bar on a terminal, nothing extra otherwise (each repository
/// is logged as it finishes).
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar on stderr when it is a terminal, counting `unit`s.
    pub fn new(total: u64, unit: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit} {{msg}}"))
            {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar }
    }

    /// One more done; `label` names it.
    pub fn done(&self, label: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(label.to_owned());
            bar.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
