//! How GitHub spells a repository's Actions OIDC `sub`: its subject template
//! (`GET /repos/{owner}/{repo}/actions/oidc/customization/sub`), read so a
//! trust matches what GitHub really sends. The answer carries `use_default`,
//! `include_claim_keys` (a customised template) and, since immutable
//! subjects, `use_immutable_subject` and `sub_claim_prefix`
//! (`repo:OWNER@OWNER_ID/REPO@REPO_ID` or `repo:OWNER/REPO`): the prefix is
//! what the tokens carry, whatever the flag says.

use serde::Deserialize;

use super::Github;
use crate::Result;
use crate::verify::github_oidc::SubjectRepository;

/// The answer of the subject-customisation endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SubjectTemplate {
    /// GitHub's default template (`repo:…:<context>`), or the organization's.
    #[serde(default)]
    pub use_default: bool,
    /// The claims a customised `sub` is made of, in order.
    #[serde(default)]
    pub include_claim_keys: Vec<String>,
    /// Whether the repository opted in to immutable subjects.
    #[serde(default)]
    pub use_immutable_subject: Option<bool>,
    /// What the default template's `sub` starts with.
    #[serde(default)]
    pub sub_claim_prefix: Option<String>,
}

/// What the trust of a repository's workflows is written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subjects {
    /// The default template: `<prefix>:<context>`; the repository as its
    /// prefix names it (with ids when GitHub sends the immutable form).
    Default(SubjectRepository),
    /// A customised template: the `sub` is the listed claims' values joined
    /// by `:`; the trust takes whole subjects, checked against the keys.
    Custom(Vec<String>),
}

impl SubjectTemplate {
    /// What GitHub sends for `repository` (`owner/name` as given), or why
    /// the answer does not fit it.
    pub fn subjects(
        &self,
        repository: &SubjectRepository,
    ) -> std::result::Result<Subjects, String> {
        if !self.use_default && !self.include_claim_keys.is_empty() {
            return Ok(Subjects::Custom(self.include_claim_keys.clone()));
        }
        let Some(prefix) = self.sub_claim_prefix.as_deref().filter(|p| !p.is_empty()) else {
            // Before immutable subjects the answer had no prefix: the name form.
            return Ok(Subjects::Default(SubjectRepository {
                owner_id: None,
                repo_id: None,
                ..repository.clone()
            }));
        };
        let named = SubjectRepository::parse(&format!("{prefix}:")).ok_or_else(|| {
            format!(
                "GitHub's sub_claim_prefix `{prefix}` is not `repo:OWNER/REPO` with or without ids"
            )
        })?;
        if !named.owner.eq_ignore_ascii_case(&repository.owner)
            || !named.repo.eq_ignore_ascii_case(&repository.repo)
        {
            return Err(format!(
                "GitHub's sub_claim_prefix `{prefix}` names another repository than {} (renamed or \
                 transferred?): pass its current name",
                repository.full_name()
            ));
        }
        for (given, sent, what) in [
            (repository.owner_id, named.owner_id, "owner"),
            (repository.repo_id, named.repo_id, "repository"),
        ] {
            if let (Some(given), Some(sent)) = (given, sent)
                && given != sent
            {
                return Err(format!(
                    "the {what} id {given} given for {} is not the {sent} GitHub sends \
                     (`{prefix}`): the name now belongs to another {what}",
                    repository.full_name()
                ));
            }
        }
        Ok(Subjects::Default(named))
    }
}

/// Checks whole subjects given for a customised template: each names the
/// template's claims in its order (`context` stands for `ref:…`,
/// `environment:…` or `pull_request`, so it is not a literal key).
pub fn check_custom(keys: &[String], subjects: &[String]) -> std::result::Result<(), String> {
    let literal: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| *k != "context")
        .collect();
    for subject in subjects {
        let mut rest = subject.as_str();
        for key in &literal {
            let found = if rest.starts_with(&format!("{key}:")) {
                Some(0)
            } else {
                rest.find(&format!(":{key}:")).map(|i| i + 1)
            };
            match found {
                Some(i) => rest = &rest[i + key.len() + 1..],
                None => {
                    return Err(format!(
                        "`{subject}` is not a subject of this repository's template \
                         ({}): `{key}:` is missing or out of order; pass the whole `sub` GitHub \
                         sends (a job's `verify job` output shows it)",
                        keys.join(", ")
                    ));
                }
            }
        }
        if subject.contains('*') || subject.contains('?') {
            return Err(format!(
                "`{subject}` holds a wildcard: the trust names whole subjects"
            ));
        }
    }
    Ok(())
}

/// Reads the subject template of `owner/repo`.
pub async fn read(github: &Github, repository: &SubjectRepository) -> Result<SubjectTemplate> {
    let path = format!(
        "/repos/{}/{}/actions/oidc/customization/sub",
        repository.owner, repository.repo
    );
    let (body, _) = github.get(&path).await?;
    serde_json::from_value(body).map_err(|e| {
        super::github_error(
            format!("GET {path}"),
            format!("not a subject template: {e}"),
            "check `github.url`",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(text: &str) -> SubjectRepository {
        SubjectRepository::parse(&format!("repo:{text}:")).unwrap()
    }

    fn template(json: &str) -> SubjectTemplate {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_prefix_github_sends_decides_the_form() {
        // The stored answer where the flag and the prefix disagree: the
        // prefix is what the tokens carry.
        let t = template(
            r#"{"use_default": true, "use_immutable_subject": false,
                "sub_claim_prefix": "repo:acme@42/api@99"}"#,
        );
        assert_eq!(
            t.subjects(&repo("acme/api")),
            Ok(Subjects::Default(repo("acme@42/api@99")))
        );
        // Names compare as GitHub does, without case.
        assert_eq!(
            t.subjects(&repo("Acme/API")),
            Ok(Subjects::Default(repo("acme@42/api@99")))
        );
        let name = template(r#"{"use_default": true, "sub_claim_prefix": "repo:acme/api"}"#);
        assert_eq!(
            name.subjects(&repo("acme@42/api@99")),
            Ok(Subjects::Default(repo("acme/api")))
        );
        // An older answer without a prefix: the name form.
        assert_eq!(
            template(r#"{"use_default": true}"#).subjects(&repo("acme@42/api@99")),
            Ok(Subjects::Default(repo("acme/api")))
        );
    }

    #[test]
    fn given_ids_that_github_contradicts_are_refused() {
        let t = template(r#"{"use_default": true, "sub_claim_prefix": "repo:acme@42/api@100"}"#);
        let e = t.subjects(&repo("acme@42/api@99")).unwrap_err();
        assert!(e.contains("repository id 99") && e.contains("100"), "{e}");
        let e = t.subjects(&repo("acme/web")).unwrap_err();
        assert!(e.contains("another repository"), "{e}");
    }

    #[test]
    fn a_customised_template_takes_whole_subjects_in_its_order() {
        let t = template(
            r#"{"use_default": false, "include_claim_keys": ["repository_owner", "context", "job_workflow_ref"]}"#,
        );
        let Ok(Subjects::Custom(keys)) = t.subjects(&repo("acme/api")) else {
            panic!("custom")
        };
        let ok = "repository_owner:acme:environment:prod:job_workflow_ref:acme/api/.github/workflows/a.yml@refs/heads/main";
        assert_eq!(check_custom(&keys, &[ok.to_owned()]), Ok(()));
        for bad in [
            "environment:prod",
            "job_workflow_ref:x:repository_owner:acme",
            "repository_owner:acme:environment:prod:job_workflow_ref:*",
        ] {
            assert!(check_custom(&keys, &[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
