//! What an apply did, per object and per repository: the summary table, the
//! JSON document, and progress (a bar on a terminal, plain lines otherwise).

use std::fmt;

use serde::Serialize;

use crate::outcome::Action;
use crate::plan::Kind;

/// The result for one object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a namespace is kept ([`Action::Keep`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the API server saw the object (false in a diff, or in a dry
    /// run whose namespace does not exist yet).
    pub server_validated: bool,
}

/// Counts of one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub pruned: usize,
    pub failed: usize,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} unchanged, {} pruned, {} failed",
            self.created, self.updated, self.unchanged, self.pruned, self.failed
        )
    }
}

/// The result for one repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoResult {
    pub repository: String,
    pub objects: Vec<ObjectResult>,
}

impl RepoResult {
    /// One JSON line for log pipelines: the repository, its counts, and the
    /// errors of its failed objects.
    pub fn log_line(&self) -> String {
        let c = self.counts();
        let errors: Vec<&str> = self
            .objects
            .iter()
            .filter_map(|o| o.error.as_deref())
            .collect();
        serde_json::json!({
            "repository": self.repository,
            "created": c.created,
            "updated": c.updated,
            "unchanged": c.unchanged,
            "pruned": c.pruned,
            "failed": c.failed,
            "errors": errors,
        })
        .to_string()
    }

    /// An empty result for `repository`.
    pub fn new(repository: &str) -> RepoResult {
        RepoResult {
            repository: repository.to_owned(),
            objects: Vec::new(),
        }
    }

    /// The counts of this repository.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for o in &self.objects {
            match o.action {
                Action::Create | Action::Adopt => c.created += 1,
                Action::Update => c.updated += 1,
                Action::Unchanged | Action::Keep | Action::NotCompared => c.unchanged += 1,
                Action::Prune => c.pruned += 1,
                Action::Failed | Action::Skipped | Action::Conflict => c.failed += 1,
            }
        }
        c
    }
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub diff_only: bool,
    /// Write requests (apply, delete) sent to the API server.
    pub writes: usize,
    pub repositories: Vec<RepoResult>,
}

impl Report {
    /// Totals over every repository.
    pub fn totals(&self) -> Counts {
        self.repositories
            .iter()
            .map(RepoResult::counts)
            .fold(Counts::default(), |a, b| Counts {
                created: a.created + b.created,
                updated: a.updated + b.updated,
                unchanged: a.unchanged + b.unchanged,
                pruned: a.pruned + b.pruned,
                failed: a.failed + b.failed,
            })
    }

    /// Whether any object failed.
    pub fn failed(&self) -> bool {
        self.totals().failed > 0
    }

    /// Objects that keep a namespace from being pruned, or errors, as lines.
    pub fn problems(&self) -> Vec<String> {
        self.repositories
            .iter()
            .flat_map(|r| r.objects.iter().map(move |o| (r, o)))
            .filter_map(|(r, o)| match (&o.error, o.action) {
                (Some(e), _) => Some(format!("{}: {e}", r.repository)),
                (None, Action::Keep) => Some(format!(
                    "{}: {} {} kept: {}",
                    r.repository,
                    o.kind.as_str().to_lowercase(),
                    o.name,
                    o.reason
                        .as_deref()
                        .unwrap_or("it holds objects runner-identity does not manage")
                )),
                _ => None,
            })
            .collect()
    }

    /// The per-repository summary table.
    pub fn table(&self) -> String {
        let width = self
            .repositories
            .iter()
            .map(|r| r.repository.len())
            .chain([10])
            .max()
            .unwrap_or(10);
        let mut out = format!(
            "{:<width$}  {:>7}  {:>7}  {:>9}  {:>6}  {:>6}\n",
            "REPOSITORY", "CREATED", "UPDATED", "UNCHANGED", "PRUNED", "FAILED"
        );
        let row = |name: &str, c: Counts| {
            format!(
                "{name:<width$}  {:>7}  {:>7}  {:>9}  {:>6}  {:>6}\n",
                c.created, c.updated, c.unchanged, c.pruned, c.failed
            )
        };
        for r in &self.repositories {
            out.push_str(&row(&r.repository, r.counts()));
        }
        out.push_str(&row("total", self.totals()));
        let mode = match (self.diff_only, self.dry_run) {
            (true, _) => "diff: nothing was sent",
            (false, true) => "dry run: nothing was persisted",
            (false, false) => "",
        };
        if self.writes == 0 && !self.diff_only {
            out.push_str("no changes: 0 write requests sent\n");
        } else if !self.diff_only {
            out.push_str(&format!("{} write requests sent\n", self.writes));
        }
        if !mode.is_empty() {
            out.push_str(mode);
            out.push('\n');
        }
        out
    }

    /// The diffs of every object that would change, for `diff`.
    pub fn diffs(&self) -> String {
        let mut out = String::new();
        for r in &self.repositories {
            for o in &r.objects {
                let header = format!(
                    "# {} {} {}",
                    serde_json::to_value(o.action)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    o.kind,
                    super::qualified(&o.namespace, &o.name)
                );
                match (o.action, &o.diff) {
                    (Action::Create | Action::Update | Action::Adopt, Some(d)) => {
                        out.push_str(&header);
                        out.push_str(&format!(" ({})\n{d}", r.repository));
                    }
                    (Action::Prune | Action::Keep, _) => {
                        out.push_str(&header);
                        out.push_str(&format!(" ({})\n", r.repository));
                    }
                    (Action::NotCompared, _) => {
                        out.push_str(&header);
                        out.push_str(&format!(
                            " ({}): {}\n",
                            r.repository,
                            o.reason.as_deref().unwrap_or("not compared")
                        ));
                    }
                    _ => {}
                }
            }
        }
        out
    }
}
