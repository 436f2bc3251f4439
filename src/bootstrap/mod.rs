//! `bootstrap`: what the identity that runs `apply` (and, read-only, `diff`
//! and `doctor`) must be allowed to do for one configuration, as objects to
//! apply and IAM documents. Pure: a plan in, documents out.
//!
//! Kubernetes ([`kubernetes`]): every right is limited to the object names
//! the plan holds (`resourceNames`), except `list`, which cannot be; every
//! write inside a namespace is bound in the planned namespaces only.

pub mod iam;
pub mod kubernetes;

use serde_json::{Value, json};

pub use self::iam::{iam_policy, iam_policy_for, requirements};
pub use self::kubernetes::{
    Grants, apply_grants, apply_grants_of, doctor_grants, kubernetes_objects, planned_names,
};
use crate::config::Settings;

/// The bootstrap objects' names.
pub const APPLY_NAME: &str = "runner-identity-apply";
pub const READONLY_NAME: &str = "runner-identity-readonly";
pub const DOCTOR_NAME: &str = "runner-identity-doctor";
/// Where the tool's own ServiceAccount lives by default.
pub const NAMESPACE: &str = "runner-identity";

/// A trust policy for running `apply` (or, read-only, `diff`) from GitHub
/// workflows of `repository`, pinned to `subjects` (what follows
/// `repo:<owner/name>:` in the token's `sub`: `environment:production`,
/// `pull_request`, `ref:refs/heads/main`), through GitHub's OIDC provider.
pub fn github_trust_policy(settings: &Settings, repository: &str, subjects: &[String]) -> Value {
    let aws = &settings.config.aws;
    let issuer = settings
        .config
        .github
        .actions_issuer
        .clone()
        .unwrap_or_else(|| crate::verify::github_oidc::issuer_for(&settings.github_url));
    let host = issuer.trim_start_matches("https://").trim_end_matches('/');
    let subs: Vec<String> = subjects
        .iter()
        .map(|s| format!("repo:{repository}:{s}"))
        .collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:{}:iam::{}:oidc-provider/{host}", aws.partition.as_str(), aws.account_id)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{host}:aud"): "sts.amazonaws.com",
                format!("{host}:sub"): subs,
            }},
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        let text = format!(
            "github: {{owner: acme}}\nrepositories: [api]\ncluster: {{name: prod, region: eu-west-1, oidcIssuer: https://o.example/id/1}}\n\
             aws:\n  accountId: '111122223333'\n  rolePath: /ci/\n{extra}"
        );
        crate::config::parse(&text, std::path::Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn the_github_trust_pins_repository_and_ref() {
        let trust = github_trust_policy(
            &settings("  mode: irsa\n"),
            "acme/platform",
            &["ref:refs/heads/main".to_owned()],
        );
        let condition = &trust["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(
            condition["token.actions.githubusercontent.com:sub"],
            json!(["repo:acme/platform:ref:refs/heads/main"])
        );
        assert_eq!(
            condition["token.actions.githubusercontent.com:aud"],
            "sts.amazonaws.com"
        );
    }
}
