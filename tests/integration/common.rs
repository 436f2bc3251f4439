//! Shared helpers of the integration tests: the real local stack
//! (`scripts/stack.sh up`) and small builders of test configurations.

pub mod cli;
pub mod jwt;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use runner_identity::config::{self, Settings};
use runner_identity::plan::{self, Plan};
use runner_identity::templates::Templates;

/// The kubeconfig the stack wrote. Panics (the test fails, it never skips)
/// when the stack is not running.
pub fn kubeconfig_path() -> PathBuf {
    let path = std::env::var_os("RUNNER_IDENTITY_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/runner-identity/stack/kubeconfig")
        });
    assert!(
        path.is_file(),
        "the local stack is not running ({} missing): run `scripts/stack.sh install && scripts/stack.sh up`, \
         or the README's test command",
        path.display()
    );
    path
}

/// The stack's service-account issuer (`https://127.0.0.1:<port>`), from the
/// env file `scripts/stack.sh up` writes; read from the kubeconfig otherwise.
pub fn stack_issuer() -> String {
    if let Ok(issuer) = std::env::var("RUNNER_IDENTITY_ISSUER") {
        return issuer;
    }
    let kc = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap()
}

/// A client authenticated as the stack's admin.
pub async fn admin_client() -> Client {
    let kc = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A client that presents `token` to the stack's API server.
pub async fn token_client(token: &str) -> Client {
    let mut kc = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let user = format!("users:\n- name: admin\n  user:\n    token: {token}\n");
    kc.auth_infos = Kubeconfig::from_yaml(&format!("{user}clusters: []\ncontexts: []\n"))
        .unwrap()
        .auth_infos;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A TokenRequest for `namespace/sa`, optionally with an audience.
pub async fn service_account_token(
    admin: &Client,
    namespace: &str,
    sa: &str,
    audience: Option<&str>,
) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]).unwrap_or_default(),
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let response = api
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .unwrap();
    response.status.unwrap().token
}

/// The (unverified) claims of a JWT.
pub fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A name unique to this test process and call, for isolating tests that
/// share one API server.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{:x}{:x}{}",
        std::process::id() % 4096,
        nanos % 65536,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A minimal IRSA configuration for `owner` with `repos`.
pub fn irsa_config(owner: &str, repos: &[&str], issuer: &str) -> String {
    let list: String = repos.iter().map(|r| format!("  - {r}\n")).collect();
    format!(
        "github:\n  owner: {owner}\nrepositories:\n{list}cluster:\n  name: test\n  oidcIssuer: {issuer}\n\
         aws:\n  accountId: \"111122223333\"\n  mode: irsa\n  permissionsBoundary: arn:aws:iam::111122223333:policy/gha-boundary\nkubernetes:\n  namespace: \"{{owner}}-{{repo}}\"\n"
    )
}

/// A test configuration built typed: a minimal valid one, changed field by
/// field through [`runner_identity::config::Config`], written as YAML only
/// where a file is needed.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub config: runner_identity::config::Config,
}

impl TestConfig {
    /// IRSA for `owner`'s `repos`, one namespace per repository.
    pub fn irsa(owner: &str, repos: &[&str], issuer: &str) -> TestConfig {
        let config = serde_yaml::from_str(&irsa_config(owner, repos, issuer)).unwrap();
        TestConfig { config }
    }

    /// Any typed change.
    pub fn with(mut self, change: impl FnOnce(&mut runner_identity::config::Config)) -> TestConfig {
        change(&mut self.config);
        self
    }

    /// The AWS account.
    pub fn account(self, id: &str) -> TestConfig {
        self.with(|c| c.aws.account_id = id.to_owned())
    }

    /// `github.url` (GitHub Enterprise Server).
    pub fn github_url(self, url: &str) -> TestConfig {
        self.with(|c| c.github.url = url.to_owned())
    }

    /// Repositories from `select:` by topic instead of a list.
    pub fn selecting_topic(self, topic: &str) -> TestConfig {
        self.with(|c| {
            c.repositories.clear();
            c.select = Some(runner_identity::config::Selector {
                topics: vec![topic.to_owned()],
                ..Default::default()
            });
        })
    }

    /// The configuration file's text.
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.config).unwrap()
    }

    /// Validated settings.
    pub fn settings(&self) -> Settings {
        settings(&self.yaml())
    }

    /// The plan with the embedded templates.
    pub fn plan(&self) -> Plan {
        plan_text(&self.yaml())
    }
}

/// Parses configuration text.
pub fn settings(text: &str) -> Settings {
    config::parse(text, Path::new("test.yaml")).unwrap()
}

/// Plans configuration text with the embedded templates.
pub fn plan_text(text: &str) -> Plan {
    plan::plan(&settings(text), &Templates::load(None).unwrap()).unwrap()
}

/// The plan of `settings` with the scale sets' GitHub credentials Secrets.
pub fn plan_with_credentials(
    settings: &Settings,
    credentials: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
) -> Plan {
    let templates = Templates::load(None).unwrap();
    plan::Planner::new(settings, &templates)
        .unwrap()
        .with_credentials(credentials)
        .plan()
        .unwrap()
}

/// The repository root (for examples).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Applies a plan with default options (or a dry run) and returns every
/// object's result; panics on any failure.
pub async fn apply_plan(
    client: &Client,
    plan: &Plan,
    dry_run: bool,
) -> Vec<runner_identity::apply::ObjectResult> {
    let options = runner_identity::apply::Options {
        dry_run,
        ..Default::default()
    };
    let report = runner_identity::apply::apply(client, plan, &options)
        .await
        .unwrap();
    assert!(!report.failed(), "{}", report.table());
    report
        .repositories
        .into_iter()
        .flat_map(|r| r.objects)
        .collect()
}

/// The audit log's completed requests after byte `from`: `(verb, URI)`.
fn audited(from: u64) -> Vec<(String, String)> {
    let path = std::env::var_os("RUNNER_IDENTITY_AUDIT_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| kubeconfig_path().with_file_name("audit.log"));
    let text = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&text[usize::try_from(from).unwrap().min(text.len())..])
        .into_owned();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter_map(|e| {
            Some((
                e["verb"].as_str()?.to_owned(),
                e["requestURI"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Write requests (create, update, patch, delete) the API server's audit log
/// recorded after byte `from` whose URI contains `marker`.
pub fn audited_writes(from: u64, marker: &str) -> Vec<String> {
    audited(from)
        .into_iter()
        .filter(|(verb, _)| {
            matches!(
                verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
        })
        .map(|(_, uri)| uri)
        .filter(|uri| uri.contains(marker))
        .collect()
}

/// Every request the audit log recorded after byte `from` whose URI
/// contains `marker`.
pub fn audited_requests(from: u64, marker: &str) -> Vec<String> {
    audited(from)
        .into_iter()
        .map(|(_, uri)| uri)
        .filter(|uri| uri.contains(marker))
        .collect()
}

/// The audit log's current size: the offset to pass to [`audited_writes`].
pub fn audit_offset() -> u64 {
    let path = std::env::var_os("RUNNER_IDENTITY_AUDIT_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| kubeconfig_path().with_file_name("audit.log"));
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The instance metadata endpoint every test process uses: a loopback port
/// nothing listens on (never 169.254.169.254).
pub const IMDS_FAKE: &str = "http://127.0.0.1:1";

/// The moto server's URL (from the stack's env file, or its default port).
pub fn moto_url() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:15000".into())
}

/// AWS configuration pointing at the stack's moto server, with moto's test
/// credentials. Panics when moto does not answer (the test fails, never skips).
pub async fn moto_config() -> aws_config::SdkConfig {
    let url = moto_url();
    let reachable = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .is_ok();
    assert!(
        reachable,
        "moto is not running at {url}: run `scripts/stack.sh up`, or the README's test command"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// Creates the namespace `name` (as the admin).
pub async fn create_namespace(name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(admin_client().await);
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns).await.unwrap();
}

/// Replaces the Role `namespace/name` without the rules `drop` picks (as a
/// hand edit would), returning how many were dropped.
pub async fn drop_role_rules(
    namespace: &str,
    name: &str,
    drop: impl Fn(&k8s_openapi::api::rbac::v1::PolicyRule) -> bool,
) -> usize {
    use k8s_openapi::api::rbac::v1::Role;
    let roles: Api<Role> = Api::namespaced(admin_client().await, namespace);
    let mut role = roles.get(name).await.unwrap();
    let rules = role.rules.as_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| !drop(r));
    let dropped = before - rules.len();
    role.metadata.managed_fields = None;
    roles
        .replace(name, &PostParams::default(), &role)
        .await
        .unwrap();
    dropped
}

/// Whether a rule covers exactly `resource`.
pub fn rule_for(resource: &str) -> impl Fn(&k8s_openapi::api::rbac::v1::PolicyRule) -> bool + '_ {
    move |r| r.resources.as_deref() == Some(&[resource.to_owned()])
}
