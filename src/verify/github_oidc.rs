//! The GitHub OIDC check of `verify job`: fetch the job's ID token the way
//! the actions toolkit does (`ACTIONS_ID_TOKEN_REQUEST_URL` with the bearer
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN`), verify its signature against the
//! configured issuer's JWKS, its `iss`/`aud`/`exp`/`iat`, and that its
//! `repository` claim is the repository this identity is bound to.
//!
//! The issuer comes from the configuration (`github.url`), never from the
//! token or the environment: a workflow can set variables, it cannot sign.
//! Neither token is ever logged or printed.

use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::Value;

use super::Check;
use crate::clock::now;
use crate::subject::SubjectRepository;

/// The audience runner-identity asks GitHub to put in the token.
pub const AUDIENCE: &str = "runner-identity";
/// The issuer of github.com's Actions tokens.
pub const GITHUB_COM_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECONDS: u64 = 60;
const CHECK: &str = "github-oidc";
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `github-oidc` input: whether the check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OidcMode {
    /// Run when the job may request a token (`permissions: id-token: write`).
    #[default]
    Auto,
    /// Fail when the job cannot request a token.
    Require,
    /// Do not check.
    Off,
}

/// The issuer of a GitHub instance's Actions tokens (`github.url` without a
/// trailing slash): github.com's, or `<url>/_services/token` on GHES.
pub fn issuer_for(github_url: &str) -> String {
    if github_url == "https://github.com" {
        GITHUB_COM_ISSUER.to_owned()
    } else {
        format!("{github_url}/_services/token")
    }
}

/// What the token must show.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Issuer URL (no trailing slash).
    pub issuer: String,
    /// `owner/repo` this identity belongs to, when known.
    pub repository: Option<String>,
    /// GitHub's immutable id of that repository, when known (`repository_id`).
    pub repository_id: Option<u64>,
    /// GitHub's immutable id of its owner, when known (`repository_owner_id`).
    pub owner_id: Option<u64>,
}

/// Runs the check; `None` when `mode` is off.
pub async fn check(
    mode: OidcMode,
    env: &BTreeMap<String, String>,
    expect: &Expectation,
) -> Option<Check> {
    if mode == OidcMode::Off {
        return None;
    }
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty());
    let (Some(url), Some(bearer)) = (
        var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Some(match mode {
            OidcMode::Require => Check::fail(
                CHECK,
                "the job cannot request a GitHub OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN are not set)",
                "grant the job `permissions: id-token: write`, or set `github-oidc: auto`",
            ),
            _ => Check::skip(
                CHECK,
                "the job has no `id-token: write` permission; skipped (github-oidc: auto)",
            ),
        });
    };
    let Some(repository) = &expect.repository else {
        return Some(Check::fail(
            CHECK,
            "a GitHub OIDC token is available but no repository is expected: the job ServiceAccount matches no configured repository",
            "pass -c with the configuration, or set `github-oidc: off`",
        ));
    };
    Some(match verify(url, bearer, expect, repository).await {
        Ok(detail) => Check::pass(CHECK, detail),
        Err(failure) => Check::fail(CHECK, failure.detail, failure.fix),
    })
}

struct Failure {
    detail: String,
    fix: String,
}

fn failure(detail: impl Into<String>, fix: impl Into<String>) -> Failure {
    Failure {
        detail: detail.into(),
        fix: fix.into(),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    value: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

async fn verify(
    request_url: &str,
    bearer: &str,
    expect: &Expectation,
    repository: &str,
) -> Result<String, Failure> {
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("runner-identity/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            failure(
                format!("cannot build an HTTP client: {e}"),
                "report this bug",
            )
        })?;
    let separator = if request_url.contains('?') { '&' } else { '?' };
    let token: TokenResponse = get_json(
        &http,
        &format!("{request_url}{separator}audience={AUDIENCE}"),
        Some(bearer),
        "the GitHub OIDC token request",
    )
    .await?;

    let header = jsonwebtoken::decode_header(&token.value).map_err(|e| {
        failure(
            format!("the GitHub OIDC token is not a JWT: {e}"),
            "check ACTIONS_ID_TOKEN_REQUEST_URL: it must be the runner's token endpoint",
        )
    })?;
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::ES256
    ) {
        return Err(failure(
            format!(
                "the GitHub OIDC token is signed with {:?}; only asymmetric algorithms are accepted",
                header.alg
            ),
            "the token does not come from GitHub",
        ));
    }

    let discovery_url = format!("{}/.well-known/openid-configuration", expect.issuer);
    let discovery: Discovery = get_json(
        &http,
        &discovery_url,
        None,
        "the issuer's discovery document",
    )
    .await?;
    if discovery.issuer.trim_end_matches('/') != expect.issuer {
        return Err(failure(
            format!(
                "{discovery_url} names issuer {}, expected {}",
                discovery.issuer, expect.issuer
            ),
            "check `github.url` in the configuration",
        ));
    }
    let jwks: JwkSet = get_json(&http, &discovery.jwks_uri, None, "the issuer's JWKS").await?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| {
        failure(
            format!(
                "the issuer's JWKS ({}) has no key {}: the token was not signed by {}",
                discovery.jwks_uri,
                header.kid.as_deref().unwrap_or("(token has no kid)"),
                expect.issuer
            ),
            "the token comes from another issuer; check `github.url`",
        )
    })?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| {
        failure(
            format!("unusable key in the issuer's JWKS: {e}"),
            "the issuer's JWKS is broken",
        )
    })?;

    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[&expect.issuer]);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(&token.value, &key, &validation)
        .map_err(|e| claim_failure(e.kind(), expect))?
        .claims;

    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or(60);
    if iat > now() + leeway {
        return Err(failure(
            format!(
                "the GitHub OIDC token is issued in the future (iat {iat}, now {})",
                now()
            ),
            "check the clock of the node",
        ));
    }
    let claimed = claims
        .get("repository")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !claimed.eq_ignore_ascii_case(repository) {
        return Err(failure(
            format!(
                "the GitHub OIDC token is for repository `{claimed}` (sub {sub}), but this identity belongs to `{repository}`"
            ),
            format!(
                "a job of `{claimed}` runs on the runner scale set of `{repository}`: point the workflow's `runs-on` at its own scale set, and limit the scale set's runner group to `{repository}`"
            ),
        ));
    }
    pinned_claims(&claims, expect, claimed, sub)?;
    Ok(format!(
        "signed by {}, repository {claimed}{}, sub {sub} ({})",
        expect.issuer,
        expect
            .repository_id
            .map_or_else(String::new, |id| format!(" (id {id})")),
        subject_form(sub)
    ))
}

/// Which form a `sub` has, in words a trust policy's author can act on.
pub fn subject_form(sub: &str) -> &'static str {
    match SubjectRepository::parse(sub) {
        Some(s) if s.repo_id.is_some() => {
            "the immutable form, with the owner's and repository's ids: a trust must name them \
             (repo:OWNER@OWNER_ID/REPO@REPO_ID:…)"
        }
        Some(_) => {
            "the name form: a trust written for the immutable form does not match it; GitHub \
             sends it for repositories created before 2026-07-15 that did not opt in"
        }
        None => "a customised subject (include_claim_keys): a trust must match that template",
    }
}

/// What a name cannot pin: the runner environment, GitHub's immutable ids
/// of the repository and its owner (when known), and a `sub` that names the
/// same repository in either format.
fn pinned_claims(
    claims: &Value,
    expect: &Expectation,
    claimed: &str,
    sub: &str,
) -> Result<(), Failure> {
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    match text("runner_environment") {
        Some("self-hosted") => {}
        other => {
            return Err(failure(
                format!(
                    "the GitHub OIDC token's runner_environment is {}, not `self-hosted`: the job \
                     does not run on this scale set",
                    other.map_or_else(|| "missing".to_owned(), |v| format!("`{v}`"))
                ),
                "do not trust this job; a token of another job was presented",
            ));
        }
    }
    // GitHub sends the ids as strings; accept numbers too.
    let id = |k: &str| {
        claims.get(k).and_then(|v| match v {
            Value::String(s) => s.parse::<u64>().ok(),
            other => other.as_u64(),
        })
    };
    for (claim, want, what) in [
        ("repository_id", expect.repository_id, "repository"),
        ("repository_owner_id", expect.owner_id, "owner"),
    ] {
        let Some(want) = want else { continue };
        if id(claim) != Some(want) {
            return Err(failure(
                format!(
                    "the GitHub OIDC token's {claim} is {}, but the {what} of this identity has id {want}: \
                     `{claimed}` was renamed, transferred or re-created",
                    id(claim).map_or_else(|| "missing".to_owned(), |v| v.to_string())
                ),
                "if the repository was re-created on purpose, run `runner-identity discover` again (or fix \
                 `repositories[].id` / `github.ownerId`) and re-apply; otherwise do not trust this job",
            ));
        }
    }
    if let Some(subject) = SubjectRepository::parse(sub) {
        let ids_agree = [
            (subject.repo_id, id("repository_id")),
            (subject.owner_id, id("repository_owner_id")),
        ]
        .iter()
        .all(|(in_sub, claim)| in_sub.is_none() || claim.is_none() || in_sub == claim);
        if !subject.full_name().eq_ignore_ascii_case(claimed) || !ids_agree {
            return Err(failure(
                format!(
                    "the GitHub OIDC token's sub `{sub}` ({}) names another repository than \
                     `{claimed}`",
                    subject_form(sub)
                ),
                "the token does not come from GitHub Actions",
            ));
        }
    }
    Ok(())
}

fn claim_failure(kind: &ErrorKind, expect: &Expectation) -> Failure {
    match kind {
        ErrorKind::InvalidSignature => failure(
            "the GitHub OIDC token's signature does not verify against the issuer's JWKS",
            format!(
                "the token was not issued by {}; do not trust this job",
                expect.issuer
            ),
        ),
        ErrorKind::ExpiredSignature => failure(
            "the GitHub OIDC token has expired",
            "tokens live minutes: check the node's clock",
        ),
        ErrorKind::ImmatureSignature => failure(
            "the GitHub OIDC token is not valid yet (nbf)",
            "check the node's clock",
        ),
        ErrorKind::InvalidAudience => failure(
            format!("the GitHub OIDC token's audience is not `{AUDIENCE}`"),
            "the token endpoint ignored the requested audience; check ACTIONS_ID_TOKEN_REQUEST_URL",
        ),
        ErrorKind::InvalidIssuer => failure(
            format!("the GitHub OIDC token's issuer is not {}", expect.issuer),
            "set `github.url` to the GitHub instance that runs this workflow",
        ),
        ErrorKind::MissingRequiredClaim(claim) => failure(
            format!("the GitHub OIDC token has no `{claim}` claim"),
            "the token does not come from GitHub Actions",
        ),
        other => failure(
            format!("the GitHub OIDC token is invalid: {other:?}"),
            "the token does not come from GitHub Actions",
        ),
    }
}

/// GETs a JSON document. Errors name the document, never the bearer.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    what: &str,
) -> Result<T, Failure> {
    let mut request = http.get(url).header("accept", "application/json");
    if let Some(b) = bearer {
        request = request.bearer_auth(b);
    }
    let fix = "check the network path from the pod to GitHub (proxy, egress policy)";
    let response = request
        .send()
        .await
        .map_err(|e| failure(format!("{what} failed: {}", e.without_url()), fix))?;
    let status = response.status();
    if !status.is_success() {
        let fix = if bearer.is_some() && matches!(status.as_u16(), 401 | 403) {
            "the job's `id-token: write` permission is missing or its request token expired"
        } else {
            fix
        };
        return Err(failure(format!("{what} returned HTTP {status}"), fix));
    }
    response.json().await.map_err(|e| {
        failure(
            format!("{what} is not the expected JSON: {}", e.without_url()),
            fix,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_subject_formats_name_their_repository() {
        let classic = SubjectRepository::parse("repo:acme/api:ref:refs/heads/main").unwrap();
        assert_eq!(classic.full_name(), "acme/api");
        assert_eq!((classic.owner_id, classic.repo_id), (None, None));
        let immutable =
            SubjectRepository::parse("repo:acme@4242/api@987654:environment:prod").unwrap();
        assert_eq!(immutable.full_name(), "acme/api");
        assert_eq!(
            (immutable.owner_id, immutable.repo_id),
            (Some(4242), Some(987654))
        );
        assert_eq!(SubjectRepository::parse("repo:acme@x/api:ref:main"), None);
        assert!(
            subject_form("repo:acme@1/api@2:ref:refs/heads/main").starts_with("the immutable form")
        );
        assert!(subject_form("repo:acme/api:pull_request").starts_with("the name form"));
        assert!(subject_form("repository_owner:acme:environment:prod").starts_with("a customised"));
        assert_eq!(
            SubjectRepository::parse("system:serviceaccount:ns:sa"),
            None
        );
    }

    #[test]
    fn issuers() {
        assert_eq!(issuer_for("https://github.com"), GITHUB_COM_ISSUER);
        assert_eq!(
            issuer_for("https://ghe.example.com"),
            "https://ghe.example.com/_services/token"
        );
    }
}
