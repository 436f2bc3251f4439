//! Verification results and how they reach a person: a table on a terminal,
//! `--output json`, and under GitHub Actions the workflow commands
//! (`::error`, `::warning`, `::add-mask::`), `$GITHUB_OUTPUT` and
//! `$GITHUB_STEP_SUMMARY`. Pure except [`write_github_files`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Not applicable here and not required (never hides a failure).
    Skip,
    Warn,
    Fail,
}

/// One check: what was checked, what was found, and how to fix it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            remediation: None,
        }
    }
    pub fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Skip,
            detail: detail.into(),
            remediation: None,
        }
    }
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            remediation: Some(fix.into()),
        }
    }
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            remediation: Some(fix.into()),
        }
    }
}

/// The result of `verify runner` or `verify job`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `runner` or `job`.
    pub mode: &'static str,
    pub checks: Vec<Check>,
    /// Facts established by the checks (`role-arn`, `caller-arn`, `account-id`,
    /// `namespace`, `service-account`, `repository`); never a secret.
    pub facts: BTreeMap<&'static str, String>,
}

impl Verdict {
    /// `pass` when no check failed, else `fail`.
    pub fn result(&self) -> &'static str {
        if self.passed() { "pass" } else { "fail" }
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The JSON document of `--output json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode,
            "result": self.result(),
            "facts": self.facts,
            "checks": self.checks,
        })
    }

    /// The Markdown table of the step summary.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### runner-identity verify {}: {}\n\n",
            self.mode,
            self.result()
        );
        out.push_str("| check | status | detail | fix |\n| --- | --- | --- | --- |\n");
        for c in &self.checks {
            let cell = |s: &str| s.replace('|', "\\|").replace('\n', "<br>");
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                c.name,
                c.status,
                cell(&c.detail),
                cell(c.remediation.as_deref().unwrap_or(""))
            ));
        }
        out
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// The human-readable table.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
        for c in &self.checks {
            writeln!(
                f,
                "{:<width$}  {:<4}  {}",
                c.name,
                c.status.to_string(),
                c.detail
            )?;
            if let (Some(fix), true) = (
                &c.remediation,
                matches!(c.status, Status::Warn | Status::Fail),
            ) {
                for line in fix.lines() {
                    writeln!(f, "{:<width$}        fix: {line}", "")?;
                }
            }
        }
        writeln!(f, "result: {}", self.result())
    }
}

/// Escapes a workflow command's message the way the actions toolkit does.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (also `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The workflow commands for the checks that did not pass (stdout: they work
/// under every runner, including container steps whose files are not copied back).
pub fn workflow_commands(verdict: &Verdict, mask: &[&str]) -> String {
    let mut out = String::new();
    for m in mask.iter().filter(|m| !m.is_empty()) {
        out.push_str(&format!("::add-mask::{}\n", escape_data(m)));
    }
    for c in &verdict.checks {
        let level = match c.status {
            Status::Pass | Status::Skip => continue,
            Status::Warn => "warning",
            Status::Fail => "error",
        };
        let mut message = c.detail.clone();
        if let Some(fix) = &c.remediation {
            message.push_str("\nFix: ");
            message.push_str(fix);
        }
        out.push_str(&format!(
            "::{level} title={}::{}\n",
            escape_property(&format!("runner-identity {}: {}", verdict.mode, c.name)),
            escape_data(&message)
        ));
    }
    out
}

/// `name<<DELIMITER` blocks for `$GITHUB_OUTPUT`.
pub fn github_outputs(verdict: &Verdict) -> String {
    let mut out = String::new();
    let mut pairs: Vec<(&str, String)> =
        verdict.facts.iter().map(|(k, v)| (*k, v.clone())).collect();
    pairs.push(("result", verdict.result().to_owned()));
    for (name, value) in pairs {
        let mut delimiter = format!(
            "ghadelimiter_{}",
            crate::kvp::label_value(&format!("{:x}", fastrand::u64(..)))
        );
        while value.contains(&delimiter) {
            delimiter.push('_');
        }
        out.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    out
}

/// Appends outputs and the summary to the files GitHub Actions names. Best
/// effort: a file that cannot be written is reported, never fatal.
pub fn write_github_files(
    verdict: &Verdict,
    output: Option<&Path>,
    summary: Option<&Path>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut append = |path: &Path, text: &str| {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            problems.push(format!("cannot write {}: {e}", path.display()));
        }
    };
    if let Some(p) = output {
        append(p, &github_outputs(verdict));
    }
    if let Some(p) = summary {
        append(p, &verdict.markdown());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict() -> Verdict {
        Verdict {
            mode: "job",
            checks: vec![
                Check::pass("mechanism", "IRSA"),
                Check::fail(
                    "caller",
                    "caller is arn:aws:sts::1:assumed-role/node/i-0abc",
                    "set serviceAccountName,\nthen retry: 100%",
                ),
            ],
            facts: BTreeMap::from([("role-arn", "arn:aws:iam::1:role/r".to_owned())]),
        }
    }

    #[test]
    fn workflow_commands_are_escaped_like_the_toolkit() {
        let out = workflow_commands(&verdict(), &["111122223333"]);
        assert_eq!(out.lines().next(), Some("::add-mask::111122223333"));
        // Data escapes `%`, CR and LF only; the title property also `:` and `,`.
        assert_eq!(
            out.lines().nth(1),
            Some(
                "::error title=runner-identity job%3A caller::caller is arn:aws:sts::1:assumed-role/node/i-0abc\
                 %0AFix: set serviceAccountName,%0Athen retry: 100%25"
            )
        );
        assert_eq!(out.lines().count(), 2, "passing checks make no annotation");
    }

    #[test]
    fn outputs_use_heredoc_delimiters() {
        let text = github_outputs(&verdict());
        let mut lines = text.lines();
        let head = lines.next().unwrap();
        let (name, delim) = head.split_once("<<").unwrap();
        assert_eq!(name, "role-arn");
        assert_eq!(lines.next(), Some("arn:aws:iam::1:role/r"));
        assert_eq!(lines.next(), Some(delim));
        assert!(text.contains("result<<"));
        assert!(text.contains("\nfail\n"));
    }

    #[test]
    fn summary_is_a_markdown_table() {
        let md = verdict().markdown();
        assert!(md.starts_with("### runner-identity verify job: fail"));
        assert!(md.contains("| caller | FAIL |"));
        assert!(md.contains("set serviceAccountName,<br>then retry"));
    }
}
