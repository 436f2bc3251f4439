//! The GitHub OIDC check of `verify job` against a wiremock GitHub (issuer
//! discovery, JWKS, the runner's ID-token endpoint) with a test key pair.

use std::collections::BTreeMap;

use crate::common::jwt::{
    OWNER_ID, REPOSITORY_ID, REQUEST_TOKEN, TestKey, actions_claims, github_oidc, serve_id_token,
};
use runner_identity::verify::github_oidc::{Expectation, OidcMode, check, issuer_for};
use runner_identity::verify::{Check, Status};

const REPO: &str = "acme/app";

fn job_env(server: &wiremock::MockServer, bearer: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL".to_owned(),
            format!("{}/idtoken?api-version=2.0", server.uri()),
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN".to_owned(),
            bearer.to_owned(),
        ),
    ])
}

/// Serves the token `id_token(issuer)` from a GitHub whose JWKS holds `key`,
/// and checks it.
async fn run(key: &TestKey, id_token: impl Fn(&str) -> String, mode: OidcMode) -> Check {
    let server = github_oidc(key).await;
    serve_id_token(&server, &id_token(&issuer_for(&server.uri()))).await;
    check(mode, &job_env(&server, REQUEST_TOKEN), &expect_for(&server))
        .await
        .expect("the check runs unless off")
}

/// Checks a token of `repository` for `audience`, expiring in `exp_in`
/// seconds, signed by `signer`, from a GitHub that publishes `published`.
async fn signed(
    published: &TestKey,
    signer: &TestKey,
    repository: &str,
    audience: &str,
    exp_in: i64,
    mode: OidcMode,
) -> Check {
    run(
        published,
        |iss| signer.sign(&actions_claims(iss, repository, audience, exp_in)),
        mode,
    )
    .await
}

fn assert_fails(c: &Check, needle: &str) {
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.detail.contains(needle), "`{needle}` not in {c:?}");
    assert!(c.remediation.is_some());
}

#[tokio::test]
async fn a_token_of_this_repository_passes() {
    let key = TestKey::generate("k1");
    let c = signed(&key, &key, REPO, "runner-identity", 300, OidcMode::Auto).await;
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains("repository acme/app"), "{c:?}");
    // Case differs, as GitHub allows: still this repository.
    let c = signed(
        &key,
        &key,
        "Acme/App",
        "runner-identity",
        300,
        OidcMode::Require,
    )
    .await;
    assert_eq!(c.status, Status::Pass, "{c:?}");
}

#[tokio::test]
async fn a_token_of_another_repository_fails() {
    let key = TestKey::generate("k1");
    let c = signed(
        &key,
        &key,
        "acme/intruder",
        "runner-identity",
        300,
        OidcMode::Auto,
    )
    .await;
    assert_fails(&c, "is for repository `acme/intruder`");
    assert!(c.remediation.as_ref().unwrap().contains("runner group"));
}

#[tokio::test]
async fn a_token_signed_by_another_key_fails() {
    let published = TestKey::generate("k1");
    let forger = TestKey::generate("k1");
    let c = signed(
        &published,
        &forger,
        REPO,
        "runner-identity",
        300,
        OidcMode::Auto,
    )
    .await;
    assert_fails(&c, "signature does not verify");
    // And a key id the issuer never published.
    let stranger = TestKey::generate("unknown-kid");
    let c = signed(
        &published,
        &stranger,
        REPO,
        "runner-identity",
        300,
        OidcMode::Auto,
    )
    .await;
    assert_fails(&c, "has no key unknown-kid");
}

#[tokio::test]
async fn wrong_audience_issuer_or_expiry_fails() {
    let key = TestKey::generate("k1");
    let c = signed(&key, &key, REPO, "sts.amazonaws.com", 300, OidcMode::Auto).await;
    assert_fails(&c, "audience is not `runner-identity`");

    let c = run(
        &key,
        |_| {
            key.sign(&actions_claims(
                "https://token.actions.githubusercontent.com",
                REPO,
                "runner-identity",
                300,
            ))
        },
        OidcMode::Auto,
    )
    .await;
    assert_fails(&c, "issuer is not");

    // Expired beyond the 60 s leeway.
    let c = signed(&key, &key, REPO, "runner-identity", -120, OidcMode::Auto).await;
    assert_fails(&c, "has expired");
}

#[tokio::test]
async fn availability_decides_between_skip_and_failure() {
    let expect = Expectation {
        issuer: "https://token.actions.githubusercontent.com".into(),
        repository: Some(REPO.into()),
        repository_id: None,
        owner_id: None,
    };
    let none = BTreeMap::new();
    assert!(check(OidcMode::Off, &none, &expect).await.is_none());
    let c = check(OidcMode::Auto, &none, &expect).await.unwrap();
    assert_eq!(c.status, Status::Skip, "{c:?}");
    let c = check(OidcMode::Require, &none, &expect).await.unwrap();
    assert_fails(&c, "cannot request a GitHub OIDC token");
    assert!(c.remediation.unwrap().contains("id-token: write"));

    // A token is available but the identity has no known repository: fail closed.
    let key = TestKey::generate("k1");
    let server = github_oidc(&key).await;
    serve_id_token(&server, "unused").await;
    let unbound = Expectation {
        issuer: issuer_for(&server.uri()),
        repository: None,
        repository_id: None,
        owner_id: None,
    };
    let c = check(OidcMode::Auto, &job_env(&server, REQUEST_TOKEN), &unbound)
        .await
        .unwrap();
    assert_fails(&c, "no repository is expected");

    // The wrong request bearer: the endpoint refuses, the bearer is not echoed.
    let c = check(
        OidcMode::Auto,
        &job_env(&server, "not-the-bearer"),
        &expect_for(&server),
    )
    .await
    .unwrap();
    assert_fails(&c, "token request returned HTTP 404");
    assert!(!format!("{c:?}").contains("not-the-bearer"));
}

fn expect_for(server: &wiremock::MockServer) -> Expectation {
    Expectation {
        issuer: issuer_for(&server.uri()),
        repository: Some(REPO.into()),
        repository_id: Some(REPOSITORY_ID),
        owner_id: Some(OWNER_ID),
    }
}

/// A JWT with `header` over the claims, with `signature` (base64url) appended.
fn forged(header: serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

#[tokio::test]
async fn a_token_signed_with_hs256_or_alg_none_is_rejected() {
    let key = TestKey::generate("k1");
    // HS256 keyed with the published public key's JWK text: the classic
    // algorithm-confusion forgery.
    let secret = key.jwk().to_string();
    let c = run(
        &key,
        |iss| {
            let header = jsonwebtoken::Header {
                kid: Some("k1".into()),
                ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
            };
            jsonwebtoken::encode(
                &header,
                &actions_claims(iss, REPO, "runner-identity", 300),
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        },
        OidcMode::Require,
    )
    .await;
    assert_fails(&c, "HS256");
    // `alg: none` with an empty signature, and with a stray one.
    for signature in [&b""[..], b"x"] {
        let c = run(
            &key,
            |iss| {
                forged(
                    serde_json::json!({"alg": "none", "typ": "JWT", "kid": "k1"}),
                    &actions_claims(iss, REPO, "runner-identity", 300),
                    signature,
                )
            },
            OidcMode::Require,
        )
        .await;
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.detail.contains("not a JWT") || c.detail.contains("None"),
            "{c:?}"
        );
    }
}

/// Checks a token of this repository whose claims `change` alters.
async fn altered(change: impl Fn(&mut serde_json::Value)) -> Check {
    let key = TestKey::generate("k1");
    run(
        &key,
        |iss| {
            let mut claims = actions_claims(iss, REPO, "runner-identity", 300);
            change(&mut claims);
            key.sign(&claims)
        },
        OidcMode::Auto,
    )
    .await
}

#[tokio::test]
async fn a_renamed_transferred_or_github_hosted_job_fails() {
    // Same name, another repository (re-created, or transferred in).
    let c = altered(|c| c["repository_id"] = "111".into()).await;
    assert_fails(&c, "repository_id is 111");
    // Same name, another owner.
    let c = altered(|c| c["repository_owner_id"] = "7".into()).await;
    assert_fails(&c, "repository_owner_id is 7");
    // A GitHub-hosted runner's job, or a token without the claim.
    let c = altered(|c| c["runner_environment"] = "github-hosted".into()).await;
    assert_fails(&c, "`github-hosted`");
    let c = altered(|c| {
        c.as_object_mut().unwrap().remove("runner_environment");
    })
    .await;
    assert_fails(&c, "runner_environment is missing");
    // A sub that names another repository than the claim.
    let c = altered(|c| c["sub"] = "repo:acme/other:ref:refs/heads/main".into()).await;
    assert_fails(&c, "names another repository");
}

#[tokio::test]
async fn the_immutable_subject_format_is_accepted() {
    let c = altered(|c| {
        c["sub"] = format!("repo:acme@{OWNER_ID}/app@{REPOSITORY_ID}:ref:refs/heads/main").into();
    })
    .await;
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains(&format!("(id {REPOSITORY_ID})")), "{c:?}");
    // Its ids must agree with the claims.
    let c = altered(|c| {
        c["sub"] = format!("repo:acme@{OWNER_ID}/app@1:ref:refs/heads/main").into();
    })
    .await;
    assert_fails(&c, "names another repository");
}
