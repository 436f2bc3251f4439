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

pub use self::iam::{iam_policy, iam_policy_for};
pub use self::kubernetes::{
    Grants, apply_grants, apply_grants_of, doctor_grants, kubernetes_objects, planned_names,
};
use crate::config::{Settings, SubjectForms};
use crate::subject::SubjectRepository;

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
/// The `sub` values a trust of `repository` accepts for each context in
/// `subjects` (`ref:refs/heads/main`…), in the forms `forms` allows; an
/// error when the immutable form alone is asked for without the ids.
pub fn github_subjects(
    repository: &SubjectRepository,
    subjects: &[String],
    forms: SubjectForms,
) -> Result<Vec<String>, String> {
    let name = format!("repo:{}", repository.full_name());
    let immutable = match (repository.owner_id, repository.repo_id) {
        (Some(owner_id), Some(repo_id)) => Some(format!(
            "repo:{}@{owner_id}/{}@{repo_id}",
            repository.owner, repository.repo
        )),
        _ => None,
    };
    let prefixes: Vec<String> = match (forms, immutable) {
        (SubjectForms::Name, _) => vec![name],
        (SubjectForms::Both, Some(immutable)) => vec![immutable, name],
        (SubjectForms::Both, None) => vec![name],
        (SubjectForms::Immutable, Some(immutable)) => vec![immutable],
        (SubjectForms::Immutable, None) => {
            return Err(format!(
                "github.oidcSubjects is `immutable`, but the ids of {} are not known; pass \
                 --github-repository OWNER@OWNER_ID/REPO@REPO_ID (GitHub's \
                 `GET /repos/{}/actions/oidc/customization/sub` says it as sub_claim_prefix)",
                repository.full_name(),
                repository.full_name()
            ));
        }
    };
    Ok(prefixes
        .iter()
        .flat_map(|p| subjects.iter().map(move |s| format!("{p}:{s}")))
        .collect())
}

pub fn github_trust_policy(
    settings: &Settings,
    repository: &SubjectRepository,
    subjects: &[String],
) -> Result<Value, String> {
    let subs = github_subjects(repository, subjects, settings.config.github.oidc_subjects)?;
    Ok(github_trust_policy_exact(settings, &subs))
}

/// A trust policy for GitHub workflows whose token's `sub` is one of `subs`
/// exactly (a customised subject template: the whole subjects).
pub fn github_trust_policy_exact(settings: &Settings, subs: &[String]) -> Value {
    let aws = &settings.config.aws;
    let issuer = settings
        .config
        .github
        .actions_issuer
        .clone()
        .unwrap_or_else(|| crate::verify::github_oidc::issuer_for(&settings.github_url));
    let host = issuer.trim_start_matches("https://").trim_end_matches('/');
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
            &SubjectRepository::parse("repo:acme/platform:x").unwrap(),
            &["ref:refs/heads/main".to_owned()],
        )
        .unwrap();
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
