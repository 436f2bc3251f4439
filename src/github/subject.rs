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
use crate::subject::SubjectRepository;

/// The answer of the subject-customisation endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SubjectTemplate {
    /// GitHub's default template (`repo:…:<context>`). `false` without
    /// `include_claim_keys`: the organization's template, if it has one.
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

/// Checks whole subjects given for a customised template: each holds the
/// template's claims in its order (`context` is `pull_request`, or `ref:…` /
/// `environment:…`), and names this repository: by `repository_id` (its id),
/// else by `repo` (its name, or its immutable spelling with its ids). A
/// template that names no repository is refused: any repository whose
/// workflows produce the same values (an environment called `production`, an
/// owner, an actor) could assume the role. `Ok(true)`: the repository is
/// named by name only, which a recycled name meets.
pub fn check_custom(
    keys: &[String],
    subjects: &[String],
    repository: &SubjectRepository,
) -> std::result::Result<bool, String> {
    let named = |key: &str| keys.iter().any(|k| k == key);
    if !named("repository_id") && !named("repo") {
        return Err(format!(
            "the repository's subject template ({}) names no repository: any repository whose \
             workflows produce the same values could assume the role; add `repository_id` to \
             its include_claim_keys",
            keys.join(", ")
        ));
    }
    if named("repository_id") && repository.repo_id.is_none() {
        return Err(format!(
            "the subject template holds repository_id, but the id of {} is not known: pass \
             --github-repository OWNER@OWNER_ID/NAME@REPO_ID",
            repository.full_name()
        ));
    }
    let mut by_name_only = false;
    for subject in subjects {
        let wrong = |why: String| {
            format!(
                "`{subject}` is not a subject of this repository under its template ({}): {why}; \
                 pass the whole `sub` GitHub sends with --github-subject",
                keys.join(", ")
            )
        };
        if subject.contains(['*', '?']) {
            return Err(wrong("it holds a wildcard".into()));
        }
        let values = claim_values(keys, subject).map_err(wrong)?;
        for (key, value) in values {
            match key {
                "repository_id"
                    if Some(value) != repository.repo_id.map(|i| i.to_string()).as_deref() =>
                {
                    return Err(wrong(format!(
                        "repository_id `{value}` is not {}'s",
                        repository.full_name()
                    )));
                }
                "repo" => {
                    let spelled = SubjectRepository::parse(&format!("repo:{value}:"));
                    let ours = spelled.as_ref().is_some_and(|r| {
                        r.owner.eq_ignore_ascii_case(&repository.owner)
                            && r.repo.eq_ignore_ascii_case(&repository.repo)
                            && (r.repo_id.is_none() || r.repo_id == repository.repo_id)
                            && (r.owner_id.is_none() || r.owner_id == repository.owner_id)
                    });
                    if !ours {
                        return Err(wrong(format!(
                            "repo `{value}` is not {}",
                            repository.full_name()
                        )));
                    }
                    by_name_only |=
                        !named("repository_id") && spelled.is_some_and(|r| r.repo_id.is_none());
                }
                _ => {}
            }
        }
    }
    Ok(by_name_only)
}

/// The values of a customised subject, claim by claim in the template's
/// order; GitHub's claim values hold no `:`.
fn claim_values<'a>(
    keys: &'a [String],
    subject: &'a str,
) -> std::result::Result<Vec<(&'a str, &'a str)>, String> {
    let parts: Vec<&str> = subject.split(':').collect();
    let mut at = 0;
    let mut out = Vec::new();
    for key in keys {
        if key == "context" {
            match parts.get(at) {
                Some(&"pull_request") => at += 1,
                Some(&("ref" | "environment"))
                    if parts.get(at + 1).is_some_and(|v| !v.is_empty()) =>
                {
                    at += 2;
                }
                _ => {
                    return Err(
                        "the context is not `pull_request`, `ref:…` or `environment:…`".into(),
                    );
                }
            }
            continue;
        }
        match (parts.get(at), parts.get(at + 1)) {
            (Some(k), Some(v)) if *k == key && !v.is_empty() => {
                out.push((key.as_str(), *v));
                at += 2;
            }
            _ => return Err(format!("`{key}:<value>` is missing or out of order")),
        }
    }
    if at != parts.len() {
        return Err("it holds more than the template's claims".into());
    }
    Ok(out)
}

/// Reads the subject template of `owner/repo`.
pub async fn read(github: &Github, repository: &SubjectRepository) -> Result<SubjectTemplate> {
    let path = format!(
        "/repos/{}/{}/actions/oidc/customization/sub",
        repository.owner, repository.repo
    );
    let (body, _) = github.get(&path).await?;
    let mut template: SubjectTemplate = serde_json::from_value(body).map_err(|e| {
        super::github_error(
            format!("GET {path}"),
            format!("not a subject template: {e}"),
            "check `github.url`",
        )
    })?;
    if !template.use_default && template.include_claim_keys.is_empty() {
        // The organization's template, if it has one, else GitHub's default.
        let path = format!("/orgs/{}/actions/oidc/customization/sub", repository.owner);
        let (body, _) = github.get(&path).await?;
        let organization: SubjectTemplate = serde_json::from_value(body).map_err(|e| {
            super::github_error(
                format!("GET {path}"),
                format!("not a subject template: {e}"),
                "check `github.url`",
            )
        })?;
        template.include_claim_keys = organization.include_claim_keys;
        template.use_default = template.include_claim_keys.is_empty();
    }
    Ok(template)
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
    fn a_customised_template_takes_whole_subjects_that_name_this_repository() {
        let keys = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let subjects = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let ours = repo("acme@42/api@99");
        // The template names no repository: any repository with an
        // environment `production` would match, so it is refused.
        for template in [
            &["context"][..],
            &["repository_owner", "context"],
            &["actor", "context"],
        ] {
            let e = check_custom(
                &keys(template),
                &subjects(&["environment:production"]),
                &ours,
            )
            .unwrap_err();
            assert!(e.contains("names no repository"), "{e}");
        }
        let by_id = keys(&["repository_id", "context", "job_workflow_ref"]);
        let ok = "repository_id:99:environment:prod:job_workflow_ref:acme/api/.github/workflows/a.yml@refs/heads/main";
        assert_eq!(check_custom(&by_id, &subjects(&[ok]), &ours), Ok(false));
        for bad in [
            "repository_id:100:environment:prod:job_workflow_ref:x",
            "environment:prod",
            "",
            "repository_id:99:environment:prod",
            "repository_id:99:environment:prod:job_workflow_ref:x:extra:y",
            "repository_id:99:environment:prod:job_workflow_ref:*",
            "repository_id:99:branch:main:job_workflow_ref:x",
        ] {
            assert!(
                check_custom(&by_id, &subjects(&[bad]), &ours).is_err(),
                "{bad}"
            );
        }
        // Without the id, repository_id cannot be pinned.
        assert!(check_custom(&by_id, &subjects(&[ok]), &repo("acme/api")).is_err());
        // By `repo`: the name (met by a recycled name: said) or the ids.
        let by_repo = keys(&["repo", "context"]);
        assert_eq!(
            check_custom(&by_repo, &subjects(&["repo:acme/api:pull_request"]), &ours),
            Ok(true)
        );
        assert_eq!(
            check_custom(
                &by_repo,
                &subjects(&["repo:acme@42/api@99:ref:refs/heads/main"]),
                &ours
            ),
            Ok(false)
        );
        for bad in [
            "repo:evil/x:environment:production",
            "repo:acme@42/api@100:pull_request",
            "repo:acme/api-fork:pull_request",
        ] {
            assert!(
                check_custom(&by_repo, &subjects(&[bad]), &ours).is_err(),
                "{bad}"
            );
        }
    }
}
