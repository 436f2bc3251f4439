//! The findings of a `doctor` run as a table, JSON or Markdown.

use serde::Serialize;

use super::{Finding, Severity};

/// Everything a run found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Scale sets diagnosed.
    pub scale_sets: usize,
    pub findings: Vec<Finding>,
    /// The API server refused or did not answer the list of scale sets:
    /// nothing could be diagnosed (an external system failed, not a finding).
    #[serde(skip)]
    pub unreachable: Option<kube::Error>,
}

impl Report {
    /// Errors first, then by object and check.
    pub fn sorted(mut self) -> Report {
        self.findings.sort_by(|a, b| {
            (a.severity, &a.object, a.check).cmp(&(b.severity, &b.object, b.check))
        });
        self.findings.dedup();
        self
    }

    /// Whether any finding is an error (exit 1).
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    fn summary(&self) -> String {
        format!(
            "{} scale set(s): {} error(s), {} warning(s), {} info",
            self.scale_sets,
            self.count(Severity::Error),
            self.count(Severity::Warning),
            self.count(Severity::Info)
        )
    }

    /// One block per finding, for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let severity = match f.severity {
                Severity::Error => "ERROR",
                Severity::Warning => "WARN",
                Severity::Info => "INFO",
            };
            out.push_str(&format!(
                "{severity:<5} {:<16} {}\n      {}\n      fix: {}\n",
                f.check, f.object, f.evidence, f.fix
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// A Markdown table (for a job summary or an issue).
    pub fn markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = String::from(
            "| severity | check | object | evidence | fix |\n| --- | --- | --- | --- | --- |\n",
        );
        for f in &self.findings {
            out.push_str(&format!(
                "| {} | {} | `{}` | {} | {} |\n",
                serde_json::to_value(f.severity)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                f.check,
                cell(&f.object),
                cell(&f.evidence),
                cell(&f.fix)
            ));
        }
        out.push_str(&format!("\n{}\n", self.summary()));
        out
    }
}
