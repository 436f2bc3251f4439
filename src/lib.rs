//! runner-identity: per-repository Kubernetes and AWS identities for GitHub
//! Actions runners on actions-runner-controller in `kubernetes` container mode.
//!
//! The data flows one way, one module per stage:
//! [`config`] (YAML in, validated [`config::Settings`] out) →
//! [`names`] (deterministic object names) → [`plan`] (typed Kubernetes objects,
//! Helm values, IAM documents; pure) → [`render`] (YAML / JSON / out-dir) and
//! [`apply`] (server-side apply to a real API server).

use std::path::PathBuf;

pub mod access;
pub mod apply;
pub mod arn;
pub mod aws;
pub mod bootstrap;
pub mod chart;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod config;
pub mod controller;
pub mod doctor;
pub mod github;
pub mod jwt;
pub mod kvp;
pub mod names;
pub mod net;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod render;
pub mod retry;
pub mod subject;
pub mod templates;
pub mod verify;

/// Everything that can go wrong in the library. Each variant names the object
/// or file involved and keeps the underlying cause as its source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML or does not match the format.
    #[error("{path}:{location}: {message}")]
    ConfigParse {
        path: PathBuf,
        /// `line:column`, or `?` when the parser gave no position.
        location: String,
        message: String,
    },
    /// A value in the configuration is out of range or inconsistent.
    #[error("{path}: invalid `{field}`: {message}")]
    ConfigInvalid {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// Every problem the validation of a configuration file found.
    #[error("{}", problems_text(path, problems))]
    ConfigProblems {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
    /// Two repositories map to the same object name.
    #[error(
        "name collision: repositories `{first}` and `{second}` both map to {kind} `{name}`; \
         change the name template so that it contains `{{repo}}`, or rename one of them"
    )]
    NameCollision {
        kind: &'static str,
        name: String,
        first: String,
        second: String,
    },
    /// A template could not be loaded or rendered.
    #[error("template `{template}` for repository `{repository}` failed to render: {message}")]
    Template {
        template: String,
        repository: String,
        message: String,
    },
    /// A template rendered, but its output is not what the product requires.
    #[error(
        "template `{template}` for repository `{repository}` rendered an invalid document: {message}"
    )]
    TemplateOutput {
        template: String,
        repository: String,
        message: String,
    },
    /// Reading a template directory or writing output failed.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A credential this machine must provide is missing or malformed (an
    /// unset variable, an unreadable or malformed key file): a local problem.
    #[error("{what}: {message}; {fix}")]
    Credentials {
        what: String,
        message: String,
        fix: String,
    },
    /// The command line or the action's inputs are wrong.
    #[error("{message}")]
    Usage { message: String },
    /// A GitHub API call failed.
    #[error("{what}: {message}; {fix}")]
    Github {
        what: String,
        message: String,
        fix: String,
    },
    /// A discovery that did not read every repository: `refused` says what
    /// was not done because of it.
    #[error(
        "the repository discovery is incomplete ({reason}); {refused}. Re-run when GitHub answers \
         fully"
    )]
    DiscoveryIncomplete { reason: String, refused: String },
    /// Serialising a planned document failed.
    #[error("cannot serialise {what}: {message}")]
    Serialize { what: String, message: String },
    /// Objects of a planned name exist but are not managed by this configuration.
    #[error(
        "refusing to overwrite {} runner-identity does not manage (or that belong to another \
         configuration instance): {}; nothing was changed. Rename them, delete them, or re-run \
         with --adopt to take them over{}",
        count(objects.len(), "object"),
        first_few(objects),
        if objects.len() > SHOWN_OBJECTS { " (`-o json` lists every one)" } else { "" }
    )]
    Unmanaged { objects: Vec<String> },
    /// Some objects could not be applied or pruned (each is in the report).
    #[error(
        "{failed} objects failed; the report above names each with its cause; nothing applied was rolled back, a re-run continues"
    )]
    PartialFailure { failed: usize },
    /// A `verify` check failed (each is in the report).
    #[error(
        "verify {mode}: the job's identity is not what it must be; see the failed checks above"
    )]
    VerificationFailed { mode: &'static str },
    /// `job-started` refused a job: no workflow pod starts.
    #[error(
        "job-started: {reason}; the job is refused (no workflow pod starts): a repository runs in group `{group}` only when the configuration lists it there"
    )]
    JobRefused { group: String, reason: String },
    /// `diff --exit-code` found changes.
    #[error("diff: {changes} change(s) would be made (--exit-code)")]
    Drift { changes: usize },
    /// `doctor` found error-level findings.
    #[error("doctor: {errors} error-level finding(s); see above")]
    DiagnosisFailed { errors: usize },
    /// A defect of runner-identity itself (an invariant broken).
    #[error("internal error: {message}; please report it with the command that showed it")]
    Internal { message: String },
    /// The identity running `apply` may not write in namespaces the plan
    /// writes into (a least-privilege identity whose administrator has not
    /// granted it the new namespaces yet).
    #[error(
        "the identity running apply may not write in {}: {}; nothing was changed. {fix}",
        count(namespaces.len(), "namespace"),
        first_few(namespaces)
    )]
    MissingGrant {
        namespaces: Vec<String>,
        fix: String,
    },
    /// The cluster lacks what the plan needs.
    #[error("{what}; {fix}")]
    ClusterUnsupported { what: String, fix: String },
    /// The Kubernetes client could not be configured.
    #[error("cannot configure the Kubernetes client: {message}")]
    KubeConfig { message: String },
    /// A Kubernetes API request failed.
    #[error("{action} {kind} {object}", object = qualified(namespace, name))]
    Kube {
        action: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    /// The process exit code for this error (the README's exit code table):
    /// 1 when a check found the job, the cluster or the plan not as it must
    /// be; 2 for a local problem or a refusal before anything was written;
    /// 3 when an external system failed, refused, or lacks what the plan needs.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::VerificationFailed { .. }
            | Error::JobRefused { .. }
            | Error::DiagnosisFailed { .. }
            | Error::Drift { .. } => 1,
            Error::ConfigRead { .. }
            | Error::ConfigParse { .. }
            | Error::ConfigInvalid { .. }
            | Error::ConfigProblems { .. }
            | Error::NameCollision { .. }
            | Error::Template { .. }
            | Error::TemplateOutput { .. }
            | Error::Io { .. }
            | Error::Credentials { .. }
            | Error::Usage { .. }
            | Error::Serialize { .. }
            | Error::KubeConfig { .. }
            | Error::Unmanaged { .. }
            | Error::Internal { .. } => 2,
            Error::Kube { .. }
            | Error::PartialFailure { .. }
            | Error::Github { .. }
            | Error::ClusterUnsupported { .. }
            | Error::MissingGrant { .. }
            | Error::DiscoveryIncomplete { .. } => 3,
        }
    }
}

/// One problem of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigProblem {
    /// The key, as a path (`repositories[2].aws.tags`).
    pub field: String,
    /// `(line, column)` of the key, 1-based, when the file has it.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

/// `path:line:column: invalid `field`: message`, one line per problem.
fn problems_text(path: &std::path::Path, problems: &[ConfigProblem]) -> String {
    let line = |p: &ConfigProblem| {
        let at = p
            .location
            .map(|(l, c)| format!("{}:{l}:{c}", path.display()))
            .unwrap_or_else(|| path.display().to_string());
        format!("{at}: invalid `{}`: {}", p.field, p.message)
    };
    match problems {
        [one] => line(one),
        many => {
            let mut text = format!(
                "{} problems in {}; fix them all, then re-run:",
                many.len(),
                path.display()
            );
            for p in many {
                text.push_str(
                    "
  ",
                );
                text.push_str(&line(p));
            }
            text
        }
    }
}

/// An error and its causes, `: `-separated (what a user needs of a
/// transport error; never a `Debug` structure).
pub(crate) fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut messages = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        messages.push(s.to_string());
        source = s.source();
    }
    joined_causes(messages)
}

/// Messages of an error and its causes, `: `-separated, each said once: a
/// message that only prefixes its cause's (kube's `ServiceError: …`) or
/// repeats what was already said is left out.
pub fn joined_causes(messages: impl IntoIterator<Item = String>) -> String {
    let messages: Vec<String> = messages.into_iter().collect();
    let mut said: Vec<&str> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let restated_below = messages
            .get(i + 1)
            .is_some_and(|next| !next.is_empty() && message.ends_with(next.as_str()));
        let said_above = said.iter().any(|s| s.contains(message.as_str()));
        if !restated_below && !said_above && !message.is_empty() {
            said.push(message);
        }
    }
    said.join(": ")
}

/// How many objects an error message names before it only counts.
const SHOWN_OBJECTS: usize = 5;

/// The first [`SHOWN_OBJECTS`] items, and how many more there are.
fn first_few(items: &[String]) -> String {
    let shown = items
        .iter()
        .take(SHOWN_OBJECTS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(SHOWN_OBJECTS) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// `1 object`, `6000 objects`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let m = |v: &[&str]| joined_causes(v.iter().map(|s| s.to_string()));
        // kube's `Service` error prints its source, which follows again.
        assert_eq!(
            m(&[
                "list ConfigMap x",
                "ServiceError: server silent",
                "server silent",
                "io"
            ]),
            "list ConfigMap x: server silent: io"
        );
        assert_eq!(m(&["a", "b", "a"]), "a: b");
        assert_eq!(m(&["outer", "inner"]), "outer: inner");
    }

    #[test]
    fn an_error_about_many_objects_names_a_few_and_counts_the_rest() {
        let objects: Vec<String> = (0..6000)
            .map(|i| format!("ConfigMap ns-{i}/hooks"))
            .collect();
        let text = Error::Unmanaged { objects }.to_string();
        assert!(text.len() < 600, "{} bytes: {text}", text.len());
        assert!(text.contains("6000 objects"), "{text}");
        assert!(
            text.contains("ConfigMap ns-0/hooks, ConfigMap ns-1/hooks"),
            "{text}"
        );
        assert!(
            text.contains("ConfigMap ns-4/hooks and 5995 more"),
            "{text}"
        );
        assert!(!text.contains("ns-5/"), "{text}");
        let one = Error::Unmanaged {
            objects: vec!["ServiceAccount a/b".into()],
        }
        .to_string();
        assert!(
            one.contains("1 object runner-identity") && !one.contains("more"),
            "{one}"
        );
    }
}
