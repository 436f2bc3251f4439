//! The GitHub side: an authenticated API client (token or GitHub App via
//! octocrab) whose requests follow pagination to the end, wait out primary and
//! secondary rate limits with a message, and retry server errors with
//! backoff; [`discover`] lists and selects the owner's repositories.
//!
//! Credentials are read from their configured source when the client is
//! built and never appear in output, logs or errors.

pub mod credentials;
pub mod discover;
pub mod runner_groups;
pub mod select;
pub mod subject;

use std::time::Duration;

use http::HeaderMap;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::service::middleware::retry::RetryConfig;
use serde_json::Value;

use crate::config::{ApiAuth, Secret, Settings};
use crate::{Error, Result};

pub use discover::{Discovery, discover};

/// How long and how often requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts for server errors and transport failures.
    pub attempts: u32,
    /// Bound of the first backoff after a server error (doubles each time;
    /// the wait is random below it: full jitter).
    pub backoff: Duration,
    /// Wait after a secondary rate limit without `retry-after` or reset time; doubles.
    pub secondary_wait: Duration,
    /// Rate-limit waits in a row before giving up.
    pub max_rate_limit_waits: u32,
    /// The longest single wait for a rate limit to reset.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(500),
            secondary_wait: Duration::from_secs(60),
            max_rate_limit_waits: 10,
            max_wait: Duration::from_secs(3600),
        }
    }
}

/// The HTTP methods runner-identity sends to GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Put => "PUT",
        }
    }
}

/// An authenticated GitHub API client.
pub struct Github {
    crab: Octocrab,
    policy: RetryPolicy,
    /// `https://api.github.com` or `<url>/api/v3`.
    pub api_base: String,
    /// Whether the client acts as a GitHub App installation.
    pub app_installation: bool,
}

/// An unauthenticated octocrab builder.
type Builder = octocrab::OctocrabBuilder<
    octocrab::NoSvc,
    octocrab::DefaultOctocrabBuilderConfig,
    octocrab::NoAuth,
    octocrab::NotLayerReady,
>;

/// The REST API base of a GitHub instance (`github.url` without a trailing slash).
pub fn api_base(github_url: &str) -> String {
    if github_url == "https://github.com" {
        "https://api.github.com".to_owned()
    } else {
        format!("{github_url}/api/v3")
    }
}

pub(crate) fn github_error(
    what: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Error {
    Error::Github {
        what: what.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// A missing or malformed local credential: exit 2, with the fix.
pub(crate) fn credential_error(
    what: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Error {
    Error::Credentials {
        what: what.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// Reads a secret from its source; the error names the source, never the value.
pub fn read_secret(source: &Secret, field: &str) -> Result<String> {
    let value = match source {
        Secret::Env(var) => std::env::var(var).map_err(|e| {
            credential_error(
                field,
                match e {
                    std::env::VarError::NotPresent => {
                        format!("environment variable {var} is not set")
                    }
                    std::env::VarError::NotUnicode(_) => {
                        format!("environment variable {var} is not valid UTF-8")
                    }
                },
                format!("export {var}, or point `{field}` at a file"),
            )
        })?,
        Secret::File(path) => std::fs::read_to_string(path).map_err(|e| {
            credential_error(
                field,
                format!("cannot read {}: {e}", path.display()),
                "check the path and its permissions",
            )
        })?,
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(credential_error(
            field,
            "the secret is empty",
            "check its source",
        ));
    }
    Ok(value)
}

/// The HTTP client under octocrab: reqwest, which sets `TCP_NODELAY` and
/// takes `HTTPS_PROXY`/`NO_PROXY` from the environment (octocrab's own
/// hyper client does neither).
fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| github_error("the GitHub client", e.to_string(), "report this bug"))
}

impl Github {
    /// Builds the client `settings` configure (default: a token in `GITHUB_TOKEN`).
    pub async fn connect(settings: &Settings, policy: RetryPolicy) -> Result<Github> {
        let api = api_base(&settings.github_url);
        let builder = || {
            Octocrab::builder()
                .add_retry_config(RetryConfig::None)
                .set_connect_timeout(Some(Duration::from_secs(10)))
                .set_read_timeout(Some(Duration::from_secs(30)))
                .base_uri(api.as_str())
                .map_err(|e| credential_error("github.url", e.to_string(), "check `github.url`"))
        };
        let build_error = |e: octocrab::Error| {
            github_error("the GitHub client", e.to_string(), "report this bug")
        };
        match &settings.github_auth {
            ApiAuth::App {
                id,
                installation_id,
                private_key,
            } => {
                let app_crab = Self::app_client(builder()?, *id, private_key)?;
                let mut github = Github {
                    crab: app_crab,
                    policy,
                    api_base: api.clone(),
                    app_installation: false,
                };
                let id = match installation_id {
                    Some(id) => *id,
                    None => {
                        github
                            .installation_of(&settings.config.github.owner)
                            .await?
                    }
                };
                github.crab = github
                    .crab
                    .installation(InstallationId(id))
                    .map_err(build_error)?;
                github.app_installation = true;
                Ok(github)
            }
            ApiAuth::Token(token) => {
                let token = read_secret(token, "github.auth.token")?;
                let crab = builder()?
                    .personal_token(token)
                    .build_with_reqwest(http_client()?)
                    .map_err(build_error)?;
                Ok(Github {
                    crab,
                    policy,
                    api_base: api,
                    app_installation: false,
                })
            }
        }
    }

    fn app_client(builder: Builder, app_id: u64, private_key: &Secret) -> Result<Octocrab> {
        let pem = read_secret(private_key, "github.auth.app.privateKey")?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            credential_error(
                "github.auth.app.privateKey",
                format!("not an RSA private key in PEM: {e}"),
                "use the .pem file GitHub generated for the App",
            )
        })?;
        builder
            .app(AppId(app_id), key)
            .build_with_reqwest(http_client()?)
            .map_err(|e| github_error("the GitHub App client", e.to_string(), "report this bug"))
    }

    /// The App's installation on `owner` (an organization, else a user).
    async fn installation_of(&self, owner: &str) -> Result<u64> {
        let mut last = None;
        for path in [
            format!("/orgs/{owner}/installation"),
            format!("/users/{owner}/installation"),
        ] {
            match self.get(&path).await {
                Ok((body, _)) => {
                    if let Some(id) = body.get("id").and_then(Value::as_u64) {
                        return Ok(id);
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            github_error(
                format!("the GitHub App installation on {owner}"),
                "not found",
                "install the App on the owner",
            )
        }))
    }

    /// GETs `path` (relative to the API base, or a next-page link), waiting
    /// out rate limits and retrying server errors. Returns the JSON body and
    /// the `rel="next"` link, if any.
    pub async fn get(&self, path: &str) -> Result<(Value, Option<String>)> {
        self.request(Method::Get, path, None).await
    }

    /// Sends `method` to `path` with the JSON `body`, as [`Github::get`]
    /// does (rate limits waited out; server errors retried, except for a
    /// POST, which might have been done). An empty answer (`204`) is `null`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(Value, Option<String>)> {
        let path = relative(path);
        let what = format!("{} {path}", method.as_str());
        let mut failures = 0u32;
        let mut rate_waits = 0u32;
        let attempts = match method {
            Method::Post => 1,
            _ => self.policy.attempts,
        };
        loop {
            let sent = match method {
                Method::Get => self.crab._get(path.as_str()).await,
                Method::Post => self.crab._post(path.as_str(), body).await,
                Method::Patch => self.crab._patch(path.as_str(), body).await,
                Method::Put => self.crab._put(path.as_str(), body).await,
            };
            let outcome = match sent {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match self.crab.body_to_string(response).await {
                        Ok(body) => Ok((status, headers, body)),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let (status, headers, body) = match outcome {
                Ok(r) => r,
                Err(message) => {
                    failures += 1;
                    if failures >= attempts {
                        return Err(github_error(
                            what,
                            message,
                            "check the network path to the GitHub API",
                        ));
                    }
                    self.backoff(&path, failures, "transport error").await;
                    continue;
                }
            };
            if status.is_success() {
                if body.trim().is_empty() {
                    return Ok((Value::Null, None));
                }
                let json = serde_json::from_str(&body).map_err(|e| {
                    github_error(
                        what.clone(),
                        format!("the answer is not JSON: {e}"),
                        "check `github.url`",
                    )
                })?;
                return Ok((json, next_link(&headers)));
            }
            if let Some(wait) =
                rate_limit_wait(status.as_u16(), &headers, &body, rate_waits, &self.policy)
            {
                rate_waits += 1;
                if rate_waits > self.policy.max_rate_limit_waits || wait > self.policy.max_wait {
                    return Err(github_error(
                        what,
                        format!(
                            "rate limited (HTTP {status}); the limit resets in {} s",
                            wait.as_secs()
                        ),
                        "retry later, or use a GitHub App (higher limits)",
                    ));
                }
                tracing::warn!(
                    "GitHub rate limit (HTTP {}) on {path}: waiting {} s before retrying",
                    status.as_u16(),
                    wait.as_secs_f32().ceil()
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() {
                failures += 1;
                if failures < attempts {
                    self.backoff(&path, failures, &format!("HTTP {}", status.as_u16()))
                        .await;
                    continue;
                }
            }
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            let runner_groups = path.contains("/actions/runner-groups");
            let fix = match status.as_u16() {
                401 => "the credentials are invalid or expired",
                403 | 404 if runner_groups => {
                    "the credentials lack the organisation's self-hosted runners permission (a token needs `admin:org`; a GitHub App, Organization permissions: Self-hosted runners, read and write)"
                }
                403 => {
                    "the credentials lack the permission (a token needs `repo` / `read:org`; an App needs Metadata: read and, for custom properties, Custom properties: read)"
                }
                404 => "check `github.owner`, and that the credentials can see it",
                _ => "retry later",
            };
            return Err(github_error(
                what,
                format!("HTTP {} {message}", status.as_u16()),
                fix,
            ));
        }
    }

    async fn backoff(&self, path: &str, failures: u32, why: &str) {
        let wait = crate::retry::jittered_backoff(
            self.policy.backoff,
            self.policy.max_wait,
            failures.saturating_sub(1),
        );
        tracing::warn!(
            "GitHub {why} on {path}: retrying in {:.1} s ({failures}/{})",
            wait.as_secs_f32(),
            self.policy.attempts
        );
        tokio::time::sleep(wait).await;
    }
}

/// How long to wait before retrying a rate-limited answer, or `None` when
/// the answer is not a rate limit (a plain 403 is a permission problem).
fn rate_limit_wait(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    waits_so_far: u32,
    policy: &RetryPolicy,
) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .and_then(|v| v.parse::<i64>().ok())
    };
    if let Some(secs) = header("retry-after") {
        return Some(Duration::from_secs(secs.max(1).unsigned_abs()));
    }
    if let (Some(0), Some(reset)) = (header("x-ratelimit-remaining"), header("x-ratelimit-reset")) {
        let secs = (reset - crate::clock::now()).max(0) + 1;
        return Some(Duration::from_secs(secs.unsigned_abs()));
    }
    if status == 429 || body.to_lowercase().contains("rate limit") {
        return Some(policy.secondary_wait * 2u32.saturating_pow(waits_so_far));
    }
    None
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// A link's path and query: octocrab sends credentials only to relative
/// URIs (joined to the API base) and to api.github.com.
fn relative(link: &str) -> String {
    match link.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_owned(),
            None => "/".to_owned(),
        },
        None => link.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_and_relative_paths() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://ghe.example/api/v3/orgs/a/repos?page=3>; rel=\"next\", <https://ghe.example/api/v3/orgs/a/repos?page=9>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        let next = next_link(&h).unwrap();
        assert_eq!(relative(&next), "/api/v3/orgs/a/repos?page=3");
        h.insert(
            "link",
            "<https://x/y?page=1>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(next_link(&h), None);
        assert_eq!(api_base("https://github.com"), "https://api.github.com");
        assert_eq!(
            api_base("https://ghe.example"),
            "https://ghe.example/api/v3"
        );
    }

    #[test]
    fn rate_limit_waits() {
        let p = RetryPolicy::default();
        let mut h = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(403, &h, "Resource not accessible", 0, &p),
            None
        );
        assert_eq!(rate_limit_wait(500, &h, "", 0, &p), None);
        assert_eq!(
            rate_limit_wait(403, &h, "You have exceeded a secondary rate limit", 1, &p),
            Some(Duration::from_secs(120))
        );
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            rate_limit_wait(429, &h, "", 0, &p),
            Some(Duration::from_secs(7))
        );
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert(
            "x-ratelimit-reset",
            (crate::clock::now() + 30).to_string().parse().unwrap(),
        );
        let w = rate_limit_wait(403, &h, "", 0, &p).unwrap();
        assert!((30..=32).contains(&w.as_secs()), "{w:?}");
    }
}
