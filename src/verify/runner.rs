//! `verify runner`: in the runner pod, before any workflow container starts
//! (ARC's `ACTIONS_RUNNER_HOOK_JOB_STARTED`), with the runner's own token.

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::authorization::v1::{
    SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SelfSubjectRulesReview,
    SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{AuthInfo, Kubeconfig};
use kube::{Client, Config};

use super::{Check, Subject, Verdict, VerifyError};
use crate::access::resource_attributes;
use crate::config::{RuleConfig, Settings};
use crate::jwt::claims as jwt_claims;
use crate::names::{RepoNames, for_repository};
use crate::plan::{
    HookRight, HookVersion, check_hook_template, hook_asks, hook_rights, hook_versions,
};

/// The token every pod gets for its ServiceAccount.
pub const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// What `verify runner` works from.
#[derive(Debug, Clone)]
pub struct RunnerInputs {
    pub settings: Settings,
    /// Out of a pod (tests): the kubeconfig that names the API server and CA.
    /// In a pod the in-cluster configuration is used explicitly, so a stray
    /// kubeconfig cannot redirect the checks.
    pub kubeconfig: Option<PathBuf>,
    /// The ServiceAccount token presented to the API server.
    pub token_file: PathBuf,
    /// `ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE`.
    pub hook_template: Option<PathBuf>,
    /// `GITHUB_REPOSITORY` of the job.
    pub repository: Option<String>,
    /// `ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER` of the runner.
    pub require_job_container: Option<String>,
    /// Excess rights fail instead of warn.
    pub strict: bool,
}

/// A client that authenticates with `token_file`.
pub async fn token_client(
    kubeconfig: Option<&std::path::Path>,
    token_file: &std::path::Path,
) -> Result<Client, VerifyError> {
    let client_error = |context: String, message: String| VerifyError::Client { context, message };
    let (mut config, cluster_proxy) = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| client_error(path.display().to_string(), e.to_string()))?;
            crate::net::kube::from_kubeconfig(kc, None)
                .await
                .map_err(|e| client_error(path.display().to_string(), e))?
        }
        None => {
            let config = Config::incluster().map_err(|e| {
                client_error(
                    "not in a pod (in-cluster configuration)".into(),
                    e.to_string(),
                )
            })?;
            (config, None)
        }
    };
    config.auth_info = AuthInfo {
        token_file: Some(token_file.display().to_string()),
        ..Default::default()
    };
    let timeouts = crate::net::KubeTimeouts::for_request(std::time::Duration::from_secs(10));
    crate::net::build_client(
        config,
        cluster_proxy.as_deref(),
        timeouts,
        crate::net::HttpVersions::Negotiated,
    )
    .map_err(|e| client_error("the Kubernetes client".into(), e))
}

/// What the runner checks read from the API server: both rules reviews and
/// the credential keys of the namespace's Secrets. They need the token's
/// namespace alone, so `job-started` starts them before it reads the
/// configuration.
pub struct Reads {
    namespace: String,
    own: Result<Rules, VerifyError>,
    elsewhere: Result<Rules, VerifyError>,
    credentials: Result<Vec<String>, kube::Error>,
}

/// The reads of the runner checks, in the token's `namespace`. Two
/// SelfSubjectRulesReviews: the runner's namespace, and one that is not its
/// own (rights there come from cluster-wide bindings). `verify runner` makes
/// them one after the other on one kept-alive connection (a second TLS
/// handshake costs more than the second round trip, scripts/bench-verify.sh);
/// `job-started` makes the first alone (it opens the connection, HTTP/2
/// where the server takes it) and the others `concurrent`ly on it, while it
/// reads its configuration (its claim shares the connection when that is up
/// by then, else opens another: hyper-util shares a connection only once
/// HTTP/2 is negotiated on it).
pub async fn read(client: &Client, namespace: &str, concurrent: bool) -> Reads {
    let probe = format!("{namespace}-runner-identity-probe");
    let own = rules(client, namespace).await;
    let (elsewhere, credentials) = if concurrent {
        tokio::join!(
            rules(client, &probe),
            readable_credentials(client, namespace)
        )
    } else {
        (
            rules(client, &probe).await,
            readable_credentials(client, namespace).await,
        )
    };
    Reads {
        namespace: namespace.to_owned(),
        own,
        elsewhere,
        credentials,
    }
}

/// The namespace of the ServiceAccount the token at `path` names.
pub fn token_namespace(path: &std::path::Path) -> Result<String, VerifyError> {
    read_subject(path).map(|s| s.namespace)
}

/// Runs every runner check.
pub async fn verify(inputs: &RunnerInputs) -> Verdict {
    verify_with(inputs, None, None).await
}

/// Runs every runner check on `client` when given (one connection for
/// job-started's claim and the checks), or on a client of the token; with
/// `reads` already made in the token's namespace, judges those.
pub async fn verify_with(
    inputs: &RunnerInputs,
    client: Option<Client>,
    reads: Option<Reads>,
) -> Verdict {
    let mut verdict = Verdict {
        mode: "runner",
        checks: Vec::new(),
        facts: Default::default(),
    };
    let subject = match read_subject(&inputs.token_file) {
        Ok(s) => {
            verdict.checks.push(Check::pass(
                "service-account-token",
                format!(
                    "system:serviceaccount:{}:{}",
                    s.namespace, s.service_account
                ),
            ));
            verdict.facts.insert("namespace", s.namespace.clone());
            verdict
                .facts
                .insert("service-account", s.service_account.clone());
            s
        }
        Err(e) => {
            verdict.checks.push(Check::fail(
                "service-account-token",
                e.to_string(),
                "run in the runner pod with its ServiceAccount token mounted (automountServiceAccountToken)",
            ));
            return verdict;
        }
    };

    // The repository this namespace and ServiceAccount belong to, from the
    // signed token; in a group's runner, the member whose job starts.
    let all = crate::names::all(&inputs.settings);
    let runs_here = |n: &&RepoNames| {
        n.namespace == subject.namespace && n.runner_service_account == subject.service_account
    };
    let served = all
        .iter()
        .filter(runs_here)
        .find(|n| {
            n.group.is_some()
                && inputs
                    .repository
                    .as_ref()
                    .is_some_and(|job| job.eq_ignore_ascii_case(&n.repository))
        })
        .or_else(|| all.iter().find(runs_here))
        .cloned();
    verdict
        .checks
        .push(repository_check(served.as_ref(), inputs));
    if let Some(n) = &served {
        verdict.facts.insert("repository", n.repository.clone());
        verdict.facts.insert("role-arn", n.iam_role_arn.clone());
    }
    verdict
        .checks
        .push(hook_template_check(served.as_ref(), inputs));
    verdict.checks.push(job_container_check(inputs));

    let client = match client {
        Some(c) => Ok(c),
        None => token_client(inputs.kubeconfig.as_deref(), &inputs.token_file).await,
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            verdict.checks.push(Check::fail(
                "hook-rights",
                format!("cannot reach the API server: {e}"),
                "check the pod's network and the API server address",
            ));
            return verdict;
        }
    };
    let flavour = inputs.settings.config.kubernetes.hooks;
    let rights = hook_rights(flavour);
    let Reads {
        own,
        elsewhere,
        credentials,
        ..
    } = match reads.filter(|r| r.namespace == subject.namespace) {
        Some(r) => r,
        None => read(&client, &subject.namespace, false).await,
    };
    verdict.checks.push(
        rights_check(
            &client,
            &subject.namespace,
            &hook_versions(flavour),
            own.as_ref().ok(),
        )
        .await,
    );
    let extra = served
        .as_ref()
        .and_then(|n| {
            inputs
                .settings
                .repositories
                .iter()
                .find(|r| r.full_name() == n.repository)
        })
        .map(|r| r.extra_rules.clone())
        .unwrap_or_default();
    // A group's runner holds no extra rules (plan).
    let mut extra = if served.as_ref().is_some_and(|s| s.group.is_some()) {
        Vec::new()
    } else {
        extra
    };
    if served.as_ref().is_some_and(|s| s.group.is_some())
        && inputs.settings.config.kubernetes.group_admission_policy
    {
        // job-started's claim (plan::group_admission::claim_rule).
        extra.push(RuleConfig {
            api_groups: vec![String::new()],
            resources: vec!["configmaps".into()],
            verbs: vec!["create".into()],
            resource_names: Vec::new(),
        });
    }
    verdict.checks.push(credentials_check(
        credentials,
        &subject.namespace,
        inputs.strict,
    ));
    // Other repositories' job ServiceAccounts in this namespace (a shared
    // namespace): creating pods here can take their identity.
    // (A group's members are the group's by design: not neighbours.)
    let neighbours: Vec<String> = all
        .iter()
        .filter(|n| {
            n.namespace == subject.namespace
                && served.as_ref().is_none_or(|s| {
                    s.repository != n.repository && (s.group.is_none() || s.group != n.group)
                })
        })
        .map(|n| format!("{} ({})", n.job_service_account, n.repository))
        .collect();
    verdict.checks.push(least_privilege_check(
        &subject.namespace,
        (own, elsewhere),
        &rights,
        &extra,
        &neighbours,
        inputs.strict,
    ));
    verdict
}

fn read_subject(path: &std::path::Path) -> Result<Subject, VerifyError> {
    let token = std::fs::read_to_string(path).map_err(|source| VerifyError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let claims = jwt_claims(&token)?;
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .unwrap_or_default();
    Subject::parse(sub).ok_or_else(|| VerifyError::NotAServiceAccount {
        sub: sub.to_owned(),
    })
}

/// Steps must run in job containers: with `ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER`
/// anything but `true`, a job without `container:` runs its steps in the
/// runner container, with the runner's token (pods and Secrets of the
/// namespace) instead of the job ServiceAccount.
fn job_container_check(inputs: &RunnerInputs) -> Check {
    const NAME: &str = "job-container";
    match inputs.require_job_container.as_deref().map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("true") => Check::pass(
            NAME,
            "ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER is true: steps run in job pods, as the job ServiceAccount",
        ),
        other => Check::fail(
            NAME,
            format!(
                "ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER is {}: a job without `container:` runs its \
                 steps in the runner container, with the runner's token and every Secret of the namespace",
                other.map_or_else(|| "not set".to_owned(), |v| format!("`{v}`"))
            ),
            "set containerMode.kubernetesModeRequireJobContainer / runner.kubernetesMode.requireJobContainer \
             to true (the charts' default), or remove ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER from the runner's variables",
        ),
    }
}

/// ARC's keys of a scale set's GitHub credentials in a Secret.
const CREDENTIAL_KEYS: [&str; 2] = ["github_app_private_key", "github_token"];

/// Whether the runner's own token can read a Secret holding GitHub
/// credentials (a list of its namespace's Secrets; values are never shown).
/// The Secrets of `namespace` the runner can list that hold GitHub
/// credentials (`namespace/name (keys)`; values are never kept).
async fn readable_credentials(
    client: &Client,
    namespace: &str,
) -> Result<Vec<String>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let listed = api.list(&ListParams::default()).await?;
    Ok(listed
        .items
        .iter()
        .filter_map(|secret| {
            let data = secret.data.as_ref()?;
            let keys: Vec<&str> = CREDENTIAL_KEYS
                .iter()
                .copied()
                .filter(|k| data.contains_key(*k))
                .collect();
            (!keys.is_empty()).then(|| {
                format!(
                    "{}/{} ({})",
                    namespace,
                    secret.metadata.name.as_deref().unwrap_or_default(),
                    keys.join(", ")
                )
            })
        })
        .collect())
}

fn credentials_check(
    listed: Result<Vec<String>, kube::Error>,
    namespace: &str,
    strict: bool,
) -> Check {
    const NAME: &str = "github-credentials";
    let readable = match listed {
        Ok(readable) => readable,
        Err(kube::Error::Api(e)) if e.code == 403 => {
            return Check::pass(
                NAME,
                format!("the runner cannot list Secrets in {namespace}"),
            );
        }
        Err(e) => {
            return Check::fail(
                NAME,
                format!("listing Secrets in {namespace} failed: {e}"),
                "check the API server's reachability; the hooks need to list Secrets too",
            );
        }
    };
    if readable.is_empty() {
        return Check::pass(
            NAME,
            format!("no Secret the runner can read in {namespace} holds GitHub credentials"),
        );
    }
    let detail = format!(
        "the runner's token can read GitHub credentials: {} (the hooks need secrets get/list in \
         the namespace, and ARC needs the scale set's Secret there)",
        readable.join(", ")
    );
    let fix = "give this repository its own credential that reaches nothing else: a fine-grained \
               token limited to this repository (repositories[].kubernetes.githubCredentials), or \
               a GitHub App installation limited to the selected repositories";
    if strict {
        Check::fail(NAME, detail, fix)
    } else {
        Check::warn(NAME, detail, fix)
    }
}

fn repository_check(served: Option<&RepoNames>, inputs: &RunnerInputs) -> Check {
    let Some(served) = served else {
        return Check::fail(
            "repository",
            "this runner's namespace and ServiceAccount belong to no repository of the configuration",
            "run the scale set with the runner ServiceAccount `runner-identity plan` generated for its repository",
        );
    };
    match &inputs.repository {
        Some(job) if job.eq_ignore_ascii_case(&served.repository) => Check::pass(
            "repository",
            format!("{job} runs in its own namespace {}", served.namespace),
        ),
        Some(job) => {
            let fix = match for_repository(&inputs.settings, job) {
                Some(n) => format!(
                    "{job} has its own scale set `{}` in namespace {}: use `runs-on: {}`",
                    n.scale_set, n.namespace, n.scale_set
                ),
                None => format!(
                    "{job} is not in the configuration: add it and run `runner-identity apply`"
                ),
            };
            Check::fail(
                "repository",
                format!(
                    "this runner serves {} (namespace {}), but the job belongs to {job}",
                    served.repository, served.namespace
                ),
                fix,
            )
        }
        None => Check::fail(
            "repository",
            "GITHUB_REPOSITORY is not set",
            "run as the runner's job-started hook, which sets it",
        ),
    }
}

fn hook_template_check(served: Option<&RepoNames>, inputs: &RunnerInputs) -> Check {
    const NAME: &str = "hook-template";
    let Some(path) = &inputs.hook_template else {
        return Check::fail(
            NAME,
            "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE is not set: the workflow pod will run as the namespace's `default` ServiceAccount",
            "use the Helm values from `runner-identity plan`, which mount the hook template and set the variable",
        );
    };
    let Some(names) = served else {
        return Check::fail(
            NAME,
            "no repository to compare the template with",
            "see the repository check",
        );
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot read {}: {e}", path.display()),
                "mount the hook template ConfigMap where the variable points",
            );
        }
    };
    match check_hook_template(&text, names) {
        Ok(_) => Check::pass(
            NAME,
            format!(
                "{} sets serviceAccountName {} and fsGroup",
                path.display(),
                names.job_service_account
            ),
        ),
        Err(e) => Check::fail(
            NAME,
            format!("{}: {e}", path.display()),
            "use the hook template from `runner-identity plan`",
        ),
    }
}

/// One SelfSubjectAccessReview: may the client's identity do `verb` on the resource?
pub async fn can(
    client: &Client,
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    subresource: &str,
    verb: &str,
) -> Result<bool, VerifyError> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(resource_attributes(
                namespace,
                group,
                resource,
                subresource,
                verb,
            )),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let out = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|source| VerifyError::Review {
            review: format!("SelfSubjectAccessReview {verb} {resource}"),
            source: Box::new(source),
        })?;
    Ok(out.status.is_some_and(|s| s.allowed))
}

/// Whether the runner has the rights of a hooks release the flavour may run:
/// pass for the release the runner image ships, a warning naming what the
/// other release lacks when only a newer one is satisfied, a failure naming
/// every missing right otherwise.
async fn rights_check(
    client: &Client,
    namespace: &str,
    versions: &[HookVersion],
    own: Option<&Rules>,
) -> Check {
    const NAME: &str = "hook-rights";
    let asks = hook_asks(versions);
    // The rules review answers every question at once when it is complete
    // (RBAC only); otherwise one SelfSubjectAccessReview per right, in parallel.
    let answers: Vec<Result<bool, VerifyError>> = match own {
        Some(r) if !r.incomplete => asks
            .iter()
            .map(|(right, verb)| Ok(r.covers(right.group, &right.resource_path(), verb)))
            .collect(),
        _ => {
            futures::future::join_all(asks.iter().map(|(r, v)| {
                can(
                    client,
                    Some(namespace),
                    r.group,
                    r.resource,
                    r.subresource,
                    v,
                )
            }))
            .await
        }
    };
    let mut missing: Vec<(HookRight, &str)> = Vec::new();
    for ((right, verb), answer) in asks.iter().zip(answers) {
        match answer {
            Ok(true) => {}
            Ok(false) => missing.push((*right, verb)),
            Err(e) => {
                return Check::fail(
                    NAME,
                    format!("SelfSubjectAccessReview failed: {e}"),
                    "the runner must be able to create SelfSubjectAccessReviews",
                );
            }
        }
    }
    if missing.is_empty() {
        return Check::pass(
            NAME,
            format!(
                "all {} rights the hooks check are granted in {namespace}",
                asks.len()
            ),
        );
    }
    let lacks = |v: &HookVersion| missing.iter().any(|(r, _)| v.rights.contains(r));
    if let Some(satisfied) = versions.iter().find(|v| !lacks(v)) {
        let unsatisfied: Vec<&str> = versions
            .iter()
            .filter(|v| lacks(v))
            .map(|v| v.name)
            .collect();
        let listed: Vec<String> = missing
            .iter()
            .map(|(r, v)| format!("{v} {}", r.resource_path()))
            .collect();
        return Check::warn(
            NAME,
            format!(
                "granted in {namespace} for hooks {}; hooks {} (what the runner image ships in \
                 /home/runner/k8s) also check {} and refuse to start without them",
                satisfied.name,
                unsatisfied.join(", "),
                listed.join(", ")
            ),
            "run hooks v0.8 or later in the runner image, or re-run `runner-identity apply` to \
             restore the planned Role",
        );
    }
    let listed: Vec<String> = missing
        .iter()
        .map(|(r, v)| format!("{v} {}", r.resource_path()))
        .collect();
    let mut fix = String::from("add to the runner's Role (or re-run `runner-identity apply`):\n");
    let paths: BTreeSet<String> = missing.iter().map(|(r, _)| r.resource_path()).collect();
    for path in paths {
        let right = missing
            .iter()
            .find(|(r, _)| r.resource_path() == path)
            .map(|(r, _)| *r);
        let verbs: Vec<&str> = missing
            .iter()
            .filter(|(r, _)| r.resource_path() == path)
            .map(|(_, v)| *v)
            .collect();
        if let Some(r) = right {
            fix.push_str(&format!(
                "- apiGroups: [\"{}\"]\n  resources: [\"{path}\"]\n  verbs: [{}]\n",
                r.group,
                verbs.join(", ")
            ));
        }
    }
    Check::fail(
        NAME,
        format!("missing in {namespace}: {}", listed.join(", ")),
        fix.trim_end().to_owned(),
    )
}

/// Rights every authenticated user has (system:basic-user).
fn baseline(group: &str, resource: &str) -> bool {
    group == "authorization.k8s.io"
        && matches!(
            resource,
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        )
}

/// A SelfSubjectRulesReview, expanded to `(group, resource, verb)` triples.
#[derive(Debug)]
struct Rules {
    rules: Vec<(String, String, String)>,
    /// The authorizer could not list everything (e.g. a webhook authorizer).
    incomplete: bool,
}

impl Rules {
    /// Whether some rule grants `verb` on `group`/`resource` (wildcards included).
    fn covers(&self, group: &str, resource: &str, verb: &str) -> bool {
        self.rules.iter().any(|(g, r, v)| {
            (g == group || g == "*") && (r == resource || r == "*") && (v == verb || v == "*")
        })
    }
}

async fn rules(client: &Client, namespace: &str) -> Result<Rules, VerifyError> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_owned()),
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let out = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|source| VerifyError::Review {
            review: format!("SelfSubjectRulesReview in {namespace}"),
            source: Box::new(source),
        })?;
    let status = out.status.unwrap_or_default();
    let mut expanded = Vec::new();
    for rule in status.resource_rules {
        let groups = rule.api_groups.unwrap_or_else(|| vec![String::new()]);
        let resources = rule.resources.unwrap_or_default();
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    expanded.push((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    Ok(Rules {
        rules: expanded,
        incomplete: status.incomplete,
    })
}

fn least_privilege_check(
    namespace: &str,
    reviews: (Result<Rules, VerifyError>, Result<Rules, VerifyError>),
    rights: &[HookRight],
    extra: &[RuleConfig],
    neighbours: &[String],
    strict: bool,
) -> Check {
    const NAME: &str = "least-privilege";
    let mut allowed: BTreeSet<(String, String, String)> = BTreeSet::new();
    for r in rights {
        for v in r.verbs {
            allowed.insert((r.group.to_owned(), r.resource_path(), (*v).to_owned()));
        }
    }
    for rule in extra {
        for g in &rule.api_groups {
            for r in &rule.resources {
                for v in &rule.verbs {
                    allowed.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    let (own, elsewhere, incomplete) = match reviews {
        (Ok(a), Ok(b)) => (a.rules, b.rules, a.incomplete || b.incomplete),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail(
                NAME,
                format!("SelfSubjectRulesReview failed: {e}"),
                "the runner must be able to create SelfSubjectRulesReviews",
            );
        }
    };
    let mut excess = BTreeSet::new();
    for (g, r, v) in &own {
        let risky = [g, r, v].iter().any(|x| x.contains('*'))
            || matches!(v.as_str(), "escalate" | "bind" | "impersonate");
        if risky || (!allowed.contains(&(g.clone(), r.clone(), v.clone())) && !baseline(g, r)) {
            excess.insert(format!(
                "{v} {}{r} in {namespace}",
                if g.is_empty() {
                    String::new()
                } else {
                    format!("{g}/")
                }
            ));
        }
    }
    for (g, r, v) in &elsewhere {
        if !baseline(g, r) {
            excess.insert(format!(
                "{v} {}{r} in every namespace",
                if g.is_empty() {
                    String::new()
                } else {
                    format!("{g}/")
                }
            ));
        }
    }
    let creates_pods = own.iter().any(|(g, r, v)| {
        (g.is_empty() || g == "*") && (r == "pods" || r == "*") && (v == "create" || v == "*")
    });
    if creates_pods && !neighbours.is_empty() {
        excess.insert(format!(
            "create pods in {namespace}, which holds the job ServiceAccount of other repositories: {} \
             (a pod started as one of them gets its IAM role; only a ValidatingAdmissionPolicy \
             stops that, see kubernetes.sharedNamespace)",
            neighbours.join(", ")
        ));
    }
    if excess.is_empty() && incomplete {
        // Another authorizer (a webhook) may grant more than RBAC lists:
        // an incomplete answer cannot prove an absence.
        let detail = format!(
            "the API server's rules review of the runner is incomplete (an authorizer besides \
             RBAC, such as a webhook, answered for part of it): no right beyond the hooks' is \
             listed in {namespace} or elsewhere, but that does not prove there is none"
        );
        let fix = "check what the other authorizer grants the runner ServiceAccount (on EKS: \
                   access entries and aws-auth), or run `runner-identity doctor`, which asks \
                   per right";
        return if strict {
            Check::fail(NAME, detail, fix)
        } else {
            Check::warn(NAME, detail, fix)
        };
    }
    if excess.is_empty() {
        return Check::pass(
            NAME,
            format!("no rights beyond the hooks' in {namespace}, none elsewhere"),
        );
    }
    let detail = format!(
        "the runner has rights the hooks do not need: {}",
        excess.into_iter().collect::<Vec<_>>().join(", ")
    );
    let fix = "remove the extra RoleBindings/ClusterRoleBindings of the runner ServiceAccount (never grant cluster-admin); `runner-identity plan` shows the exact Role";
    if strict {
        Check::fail(NAME, detail, fix)
    } else {
        Check::warn(NAME, detail, fix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_rules_review_proves_no_absence() {
        use crate::verify::report::Status;
        let hooks = [HookRight {
            group: "",
            resource: "pods",
            subresource: "",
            verbs: &["get"],
        }];
        let rules = |incomplete| Rules {
            rules: vec![("".into(), "pods".into(), "get".into())],
            incomplete,
        };
        let check = |incomplete, strict| {
            least_privilege_check(
                "ns",
                (
                    Ok(rules(incomplete)),
                    Ok(Rules {
                        rules: vec![],
                        incomplete: false,
                    }),
                ),
                &hooks,
                &[],
                &[],
                strict,
            )
        };
        // Complete: passes. Incomplete: a warning, a failure with --strict.
        assert_eq!(check(false, false).status, Status::Pass);
        let warned = check(true, false);
        assert_eq!(warned.status, Status::Warn, "{warned:?}");
        assert!(warned.detail.contains("incomplete"), "{warned:?}");
        assert_eq!(check(true, true).status, Status::Fail);
    }

    #[test]
    fn rules_cover_exact_and_wildcard_grants() {
        let t = |g: &str, r: &str, v: &str| (g.to_owned(), r.to_owned(), v.to_owned());
        let rules = Rules {
            rules: vec![
                t("", "pods", "get"),
                t("batch", "*", "list"),
                t("", "secrets", "*"),
            ],
            incomplete: false,
        };
        assert!(rules.covers("", "pods", "get"));
        assert!(
            !rules.covers("", "pods/exec", "get"),
            "a subresource is its own resource"
        );
        assert!(rules.covers("batch", "jobs", "list"));
        assert!(rules.covers("", "secrets", "delete"));
        assert!(!rules.covers("batch", "jobs", "create"));
    }
}
