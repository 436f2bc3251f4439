//! A test-only RSA key pair that signs JWTs the way GitHub does (RS256),
//! publishes its JWK, and exports its private key as PEM (GitHub App keys).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use serde_json::{Value, json};

pub struct TestKey {
    pair: KeyPair,
    pub kid: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        TestKey {
            pair: KeyPair::generate(KeySize::Rsa2048).unwrap(),
            kid: kid.to_owned(),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// A compact RS256 JWT of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{input}.{}", b64(&signature))
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_pem(&self) -> String {
        let der = self.pair.as_der().unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    /// Verifies an RS256 JWT signed by this key; returns its claims.
    pub fn verify(&self, jwt: &str) -> Value {
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public_key().as_ref(),
        );
        public
            .verify(input.as_bytes(), &signature)
            .expect("the JWT's signature does not verify");
        let payload = input.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    }
}

/// The bearer a job presents to the runner's token endpoint in these tests.
pub const REQUEST_TOKEN: &str = "test-request-bearer-7c1d";

/// A GHES-shaped GitHub's Actions token issuer (`<uri>/_services/token`:
/// discovery and the JWKS of `key`).
pub async fn github_oidc(key: &TestKey) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let server = wiremock::MockServer::start().await;
    let issuer = format!("{}/_services/token", server.uri());
    Mock::given(method("GET"))
        .and(path("/_services/token/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks"),
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/_services/token/.well-known/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [key.jwk()]})))
        .mount(&server)
        .await;
    server
}

/// The runner's ID-token endpoint at `<uri>/idtoken?api-version=2.0`: answers
/// `id_token` to the bearer [`REQUEST_TOKEN`] asking for audience `runner-identity`.
pub async fn serve_id_token(server: &wiremock::MockServer, id_token: &str) {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, ResponseTemplate};
    Mock::given(method("GET"))
        .and(path("/idtoken"))
        .and(query_param("api-version", "2.0"))
        .and(query_param("audience", "runner-identity"))
        .and(header(
            "authorization",
            format!("Bearer {REQUEST_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": id_token})))
        .mount(server)
        .await;
}

/// Claims GitHub puts in an Actions ID token, for `repository` at `issuer`.
/// The repository id GitHub puts in the test tokens (`repository_id`).
pub const REPOSITORY_ID: u64 = 987_654;
/// The owner id GitHub puts in the test tokens (`repository_owner_id`).
pub const OWNER_ID: u64 = 4242;

/// The claims of a GitHub Actions ID token of a job of `repository` on a
/// self-hosted runner (ids as GitHub sends them: strings).
pub fn actions_claims(issuer: &str, repository: &str, audience: &str, exp_in: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": format!("repo:{repository}:ref:refs/heads/main"),
        "repository": repository,
        "repository_owner": repository.split('/').next().unwrap(),
        "repository_id": REPOSITORY_ID.to_string(),
        "repository_owner_id": OWNER_ID.to_string(),
        "runner_environment": "self-hosted",
        "ref": "refs/heads/main",
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + exp_in,
    })
}
