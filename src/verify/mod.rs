//! Verify: the identity a job actually has, checked at job start.
//!
//! - [`runner`]: in the runner pod (ARC's job-started hook), with the runner's
//!   own ServiceAccount token: the hooks' rights, least privilege, the hook
//!   template, and that the job's repository is the one this runner serves.
//! - [`job`]: in the workflow pod: the AWS mechanism, the projected token,
//!   and the role STS says the job has.
//!
//! Bindings are decided from signed facts (a token the API server or STS
//! accepted, the STS caller ARN) and configured expectations, never from
//! variables a workflow can set. A check that cannot run fails (fail closed).

pub mod github_oidc;
pub mod instance_metadata;
pub mod job;
pub mod report;
pub mod runner;

use std::path::PathBuf;

pub use report::{Check, Status, Verdict};

/// Why a fact a check needs could not be read. A check that meets one of
/// these fails (fail closed) and shows it.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A token file could not be read.
    #[error("cannot read {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A token is not a JWT whose payload is JSON.
    #[error(transparent)]
    NotAJwt(#[from] crate::jwt::NotAJwt),
    /// A token's subject is not a ServiceAccount.
    #[error("token subject `{sub}` is not a ServiceAccount")]
    NotAServiceAccount { sub: String },
    /// No client for the API server could be configured.
    #[error("{context}: {message}")]
    Client { context: String, message: String },
    /// A review request to the API server failed.
    #[error("{review}: {source}")]
    Review {
        review: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// A ServiceAccount subject: `system:serviceaccount:<namespace>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub namespace: String,
    pub service_account: String,
}

impl Subject {
    /// Parses a token's `sub`.
    pub fn parse(sub: &str) -> Option<Subject> {
        let rest = sub.strip_prefix("system:serviceaccount:")?;
        let (namespace, service_account) = rest.split_once(':')?;
        (!namespace.is_empty() && !service_account.is_empty()).then(|| Subject {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        let s = Subject::parse("system:serviceaccount:gha-api:gha-job").unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.service_account.as_str()),
            ("gha-api", "gha-job")
        );
        assert!(Subject::parse("system:serviceaccount:gha-api").is_none());
        assert!(Subject::parse("repo:acme/api:ref:refs/heads/main").is_none());
    }
}
