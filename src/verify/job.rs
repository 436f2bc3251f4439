//! `verify job`: in the workflow pod (the container action or a CLI step):
//! the AWS mechanism, the projected token, and the role STS says this is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_config::BehaviorVersion;
use aws_sdk_sts::error::ProvideErrorMetadata;
use serde_json::Value;

use super::github_oidc::{self, OidcMode};
use super::{Check, Subject, Verdict, instance_metadata};
use crate::aws::error_kind::AwsErrorKind;
use crate::clock::now;
use crate::config::{Mode, Settings};
use crate::jwt::{audiences, claims as jwt_claims};
use crate::names::RepoNames;
use crate::plan;
use crate::templates::Templates;

/// A token must stay valid at least this long for the job to start.
const EXP_MARGIN_SECONDS: i64 = 60;
/// The audience EKS Pod Identity tokens carry.
const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// What `verify job` works from.
#[derive(Debug, Clone, Default)]
pub struct JobInputs {
    pub settings: Option<Settings>,
    pub expected_role_arn: Option<String>,
    /// The process environment (read once, by the caller).
    pub env: BTreeMap<String, String>,
    /// A Kubernetes API token mounted in the pod, if any.
    pub kubernetes_token: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    /// Whether the GitHub OIDC check runs.
    pub github_oidc: OidcMode,
    /// Templates directory (`--templates`) the trust policy in a diagnosis is
    /// rendered with.
    pub templates: Option<PathBuf>,
    /// A reachable instance metadata service fails instead of warning.
    pub strict: bool,
}

/// How the pod receives AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Irsa,
    PodIdentity,
}

/// Runs every job check.
pub async fn verify(inputs: &JobInputs) -> Verdict {
    let mut verdict = Verdict {
        mode: "job",
        checks: Vec::new(),
        facts: BTreeMap::new(),
    };
    let (mechanism, token_path) = match mechanism(&inputs.env) {
        Ok((mechanism, token_path, check)) => {
            verdict.checks.push(check);
            (mechanism, token_path)
        }
        Err(check) => {
            verdict.checks.push(check);
            return verdict;
        }
    };
    let subject = token_checks(&mut verdict, mechanism, &token_path, inputs);
    let bound = bound_repository(inputs, subject.as_ref());
    if let Some(b) = &bound {
        verdict.facts.insert("repository", b.repository.clone());
    }
    let chained_from = chained_from(inputs, bound.as_ref());
    if let Some((from, _)) = &chained_from {
        verdict.facts.insert("chained-from", from.clone());
    }
    let expected_role = expected_role(inputs, bound.as_ref(), chained_from.as_ref());
    match (&expected_role, &subject) {
        (Some(arn), _) => {
            verdict.facts.insert("role-arn", arn.clone());
        }
        (None, Some(s)) => verdict.checks.push(Check::fail(
            "expected-role",
            format!("no configured repository has job ServiceAccount {}/{}", s.namespace, s.service_account),
            "pass --expected-role-arn, or -c with the configuration; a pod running as `default` means the hook template lacks serviceAccountName",
        )),
        (None, None) => verdict.checks.push(Check::fail("expected-role", "no expected role: the token has no usable subject", "pass --expected-role-arn")),
    }
    verdict.checks.extend(role_annotation_check(
        mechanism,
        expected_role.as_deref(),
        &inputs.env,
    ));
    // Rendered only when STS refuses the job (the diagnosis shows it).
    let trust_policy = || expected_trust_policy(inputs, mechanism, bound.as_ref());
    // The IMDS probe may wait its whole timeout: it runs during the STS call.
    let (caller, instance_metadata) = tokio::join!(
        caller_check(
            &mut verdict.facts,
            expected_role.as_deref(),
            web_identity_first(mechanism, &inputs.env).then_some(token_path.as_path()),
            &inputs.env,
            chained_from.as_ref().map(|(from, _)| from.as_str()),
            trust_policy,
        ),
        instance_metadata::check(&inputs.env, inputs.strict)
    );
    verdict.checks.push(caller);
    verdict.checks.extend(instance_metadata);
    if let Some(check) = kubernetes_rights_check(inputs).await {
        verdict.checks.push(check);
    }
    let expectation = github_expectation(inputs, bound);
    if let Some(check) = github_oidc::check(inputs.github_oidc, &inputs.env, &expectation).await {
        verdict.checks.push(check);
    }
    verdict
}

/// How the pod receives AWS credentials, as the SDK's chain decides, and
/// its token file; or the failed check.
fn mechanism(env: &BTreeMap<String, String>) -> Result<(Mechanism, PathBuf, Check), Check> {
    let env = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    match (
        env("AWS_ROLE_ARN"),
        env("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
    ) {
        (Some(_), Some(file), pi_uri, _) => {
            let note = if pi_uri.is_some() {
                "; Pod Identity variables are present too, and the SDK's chain prefers web identity"
            } else {
                ""
            };
            Ok((
                Mechanism::Irsa,
                PathBuf::from(file),
                Check::pass(
                    "mechanism",
                    format!("IRSA (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE){note}"),
                ),
            ))
        }
        // The SDK's chain uses web identity only with both variables; else
        // the container credentials come next (a step's stray AWS_ROLE_ARN
        // does not change that).
        (role_arn, _, Some(_), Some(file)) => {
            let note = if role_arn.is_some() {
                "; AWS_ROLE_ARN is set but no AWS_WEB_IDENTITY_TOKEN_FILE, so the SDK's chain \
                 does not use it"
            } else {
                ""
            };
            Ok((
                Mechanism::PodIdentity,
                PathBuf::from(file),
                Check::pass(
                    "mechanism",
                    format!("EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI){note}"),
                ),
            ))
        }
        _ => Err(Check::fail(
            "mechanism",
            "neither IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) nor EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) is configured in this pod",
            "usually: the hook template lacks `spec.serviceAccountName`, so the pod runs as `default`; or the job ServiceAccount lacks `eks.amazonaws.com/role-arn` (IRSA) or a pod identity association; or the pod identity webhook / EKS Pod Identity Agent is not installed",
        )),
    }
}

/// The repository this job's identity is bound to: the signed subject
/// mapped through the configured naming rules.
fn bound_repository(inputs: &JobInputs, subject: Option<&Subject>) -> Option<RepoNames> {
    let (s, settings) = (subject?, inputs.settings.as_ref()?);
    crate::names::all(settings)
        .into_iter()
        .find(|n| n.namespace == s.namespace && n.job_service_account == s.service_account)
}

/// A Pod Identity target role: the job ends as it, chained from the
/// repository's role (`(repository's role, target)`).
fn chained_from(inputs: &JobInputs, bound: Option<&RepoNames>) -> Option<(String, String)> {
    let (b, settings) = (bound?, inputs.settings.as_ref()?);
    let target = settings
        .repositories
        .iter()
        .find(|r| r.full_name() == b.repository)?
        .target_role_arn
        .clone()?;
    Some((b.iam_role_arn.clone(), target))
}

/// The role the job must end as: `--expected-role-arn`, else the bound
/// repository's target role, else its own.
fn expected_role(
    inputs: &JobInputs,
    bound: Option<&RepoNames>,
    chained_from: Option<&(String, String)>,
) -> Option<String> {
    inputs.expected_role_arn.clone().or_else(|| {
        chained_from
            .map(|(_, target)| target.clone())
            .or_else(|| bound.map(|b| b.iam_role_arn.clone()))
    })
}

/// IRSA: the role the webhook put in `AWS_ROLE_ARN` is the expected one.
fn role_annotation_check(
    mechanism: Mechanism,
    expected: Option<&str>,
    env: &BTreeMap<String, String>,
) -> Option<Check> {
    let have = env.get("AWS_ROLE_ARN").filter(|v| !v.is_empty())?;
    let want = expected?;
    if mechanism != Mechanism::Irsa {
        return None;
    }
    Some(if have == want {
        Check::pass("role-annotation", format!("AWS_ROLE_ARN is {have}"))
    } else {
        Check::fail(
            "role-annotation",
            format!("AWS_ROLE_ARN is {have}, expected {want}"),
            "fix the job ServiceAccount's eks.amazonaws.com/role-arn annotation (`runner-identity apply`)",
        )
    })
}

/// What the job's GitHub OIDC token must say: the configured issuer, and
/// the bound repository with its ids where they are known.
fn github_expectation(inputs: &JobInputs, bound: Option<RepoNames>) -> github_oidc::Expectation {
    let settings = inputs.settings.as_ref();
    github_oidc::Expectation {
        issuer: match settings {
            Some(s) => s.config.github.actions_issuer.as_ref().map_or_else(
                || github_oidc::issuer_for(&s.github_url),
                |i| i.trim_end_matches('/').to_owned(),
            ),
            None => github_oidc::GITHUB_COM_ISSUER.to_owned(),
        },
        repository_id: bound.as_ref().and_then(|b| {
            settings?
                .repositories
                .iter()
                .find(|r| r.full_name() == b.repository)
                .and_then(|r| r.id)
        }),
        owner_id: settings.and_then(|s| s.config.github.owner_id),
        repository: bound.map(|b| b.repository),
    }
}

/// The trust policy planned for the repository the job's token belongs to
/// (for diagnoses), rendered with the configured templates.
fn expected_trust_policy(
    inputs: &JobInputs,
    mechanism: Mechanism,
    bound: Option<&RepoNames>,
) -> Option<Value> {
    let settings = inputs.settings.as_ref()?;
    let bound = bound?;
    if (mechanism == Mechanism::Irsa) != (settings.config.aws.mode == Mode::Irsa) {
        return None;
    }
    let repo = settings
        .repositories
        .iter()
        .find(|r| r.full_name() == bound.repository)?;
    let templates = match Templates::load(inputs.templates.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("the trust policy cannot be shown: {e}");
            return None;
        }
    };
    match plan::trust_policy(settings, repo, bound, &templates) {
        Ok(policy) => Some(policy),
        Err(e) => {
            tracing::warn!("the trust policy cannot be shown: {e}");
            None
        }
    }
}

fn token_checks(
    verdict: &mut Verdict,
    mechanism: Mechanism,
    path: &Path,
    inputs: &JobInputs,
) -> Option<Subject> {
    let token = match std::fs::read_to_string(path) {
        Ok(t) => {
            verdict.checks.push(Check::pass(
                "token-file",
                format!("{} is readable", path.display()),
            ));
            t
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            verdict.checks.push(Check::fail(
                "token-file",
                format!("{} is not readable by uid {} gid {}: {}", path.display(), ids().0, ids().1, owner_of(path)),
                "set `spec.securityContext.fsGroup` in the hook template (runner-identity's template sets 1001) so the projected token is group-readable, or run the job with runAsGroup equal to that fsGroup",
            ));
            return None;
        }
        Err(e) => {
            verdict.checks.push(Check::fail(
                "token-file",
                format!("cannot read {}: {e}", path.display()),
                "check that the token volume is mounted (EKS webhook or Pod Identity Agent)",
            ));
            return None;
        }
    };
    let claims = match jwt_claims(&token) {
        Ok(c) => c,
        Err(e) => {
            verdict.checks.push(Check::fail(
                "token-claims",
                format!("{}: {e}", path.display()),
                "the file must hold a ServiceAccount token",
            ));
            return None;
        }
    };
    let want_aud = match mechanism {
        Mechanism::Irsa => inputs.settings.as_ref().map_or_else(
            || "sts.amazonaws.com".to_owned(),
            |s| s.config.kubernetes.irsa.audience.clone(),
        ),
        Mechanism::PodIdentity => POD_IDENTITY_AUDIENCE.to_owned(),
    };
    let auds = audiences(&claims);
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let subject = Subject::parse(&sub);
    let mut problems = Vec::new();
    if !auds.contains(&want_aud) {
        problems.push(format!("audience {auds:?} does not include `{want_aud}`"));
    }
    if exp <= now() + EXP_MARGIN_SECONDS {
        problems.push(format!(
            "token expired or expires within {EXP_MARGIN_SECONDS} s (exp {exp}, now {})",
            now()
        ));
    }
    if subject.is_none() {
        problems.push(format!("subject `{sub}` is not a ServiceAccount"));
    }
    if let Some(s) = &subject {
        verdict.facts.insert("namespace", s.namespace.clone());
        verdict
            .facts
            .insert("service-account", s.service_account.clone());
    }
    if problems.is_empty() {
        verdict.checks.push(Check::pass(
            "token-claims",
            format!("sub {sub}, aud {want_aud}, valid for {} s", exp - now()),
        ));
    } else {
        verdict.checks.push(Check::fail(
            "token-claims",
            problems.join("; "),
            format!("the projected token must have audience `{want_aud}` (eks.amazonaws.com/audience on the job ServiceAccount) and be refreshed by the kubelet"),
        ));
    }
    subject
}

/// The web identity token to assume the role with directly when the SDK's
/// default chain would resolve this pod's credentials from it: IRSA, and
/// nothing the chain tries first (access keys in the environment, a profile
/// or a shared configuration file) is present. Then one STS request
/// (`AssumeRoleWithWebIdentity`, whose answer names the assumed role) tells
/// the caller; otherwise the chain's credentials and `GetCallerIdentity` do.
fn web_identity_first(mechanism: Mechanism, env: &BTreeMap<String, String>) -> bool {
    let set = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
    let home_file = |name: &str| {
        env.get("HOME")
            .is_some_and(|home| Path::new(home).join(".aws").join(name).exists())
    };
    mechanism == Mechanism::Irsa
        && ![
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ]
        .iter()
        .any(|k| set(k))
        && !home_file("config")
        && !home_file("credentials")
}

/// Why an STS call failed, decided once from the SDK's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StsFailureKind {
    /// The job's projected token file could not be read.
    TokenUnreadable,
    /// STS does not trust the token's issuer (no IAM OIDC provider for it,
    /// or one that does not match): `InvalidIdentityToken`.
    IssuerNotTrusted,
    /// A service answer of the given kind.
    Aws(AwsErrorKind),
}

/// An STS call's failure: the operation, its kind, and the text to show
/// (`Code: message` for a refusal; the endpoint and the cause for a
/// request that never reached STS, never the SDK's debug structures).
#[derive(Debug)]
struct StsFailure {
    operation: &'static str,
    kind: StsFailureKind,
    text: String,
}

impl StsFailure {
    fn of<E, R>(
        operation: &'static str,
        error: &aws_sdk_sts::error::SdkError<E, R>,
        endpoint: &str,
    ) -> StsFailure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        use aws_sdk_sts::error::SdkError;
        let text = match error {
            SdkError::DispatchFailure(_) => format!(
                "cannot reach STS at {endpoint}: {}",
                crate::cause_chain(error)
            ),
            SdkError::TimeoutError(_) => format!("STS at {endpoint} did not answer in time"),
            _ => crate::aws::error_kind::error_text(error),
        };
        let kind = match error.code() {
            Some("InvalidIdentityToken") => StsFailureKind::IssuerNotTrusted,
            _ => StsFailureKind::Aws(AwsErrorKind::of(error)),
        };
        StsFailure {
            operation,
            kind,
            text,
        }
    }

    /// What to do about it; `statement` is the trust statement that would
    /// admit this job, if known.
    fn fix(&self, token: Option<&Path>, statement: &str) -> String {
        match self.kind {
            StsFailureKind::TokenUnreadable => format!(
                "the job cannot read its projected token{}: the pod's fsGroup must be a group of the job's user (the hook template `runner-identity apply` writes sets it)",
                token.map(|p| format!(" at {}", p.display())).unwrap_or_default()
            ),
            StsFailureKind::IssuerNotTrusted => format!(
                "the IAM OIDC provider of the cluster's issuer is missing, does not match the token's `iss`, or does not list the token's audience (`aud`, by default sts.amazonaws.com) as a client id: `eksctl utils associate-iam-oidc-provider --cluster <name> --approve`{statement}"
            ),
            StsFailureKind::Aws(AwsErrorKind::AccessDenied) => format!(
                "the role's trust policy does not admit this token: its `:sub` must be system:serviceaccount:<namespace>:<job ServiceAccount> and `:aud` the token's audience (`runner-identity apply` writes it){statement}"
            ),
            StsFailureKind::Aws(AwsErrorKind::Credentials) => match token {
                Some(_) => "STS rejected the token as expired or malformed: the kubelet refreshes the projected token in place, so read it from AWS_WEB_IDENTITY_TOKEN_FILE at each call, never a copy".to_owned(),
                None => "the job has no credentials STS accepts: check the Pod Identity agent (AWS_CONTAINER_CREDENTIALS_FULL_URI) or the web identity variables the webhook injects".to_owned(),
            },
            StsFailureKind::Aws(AwsErrorKind::Transport) => format!(
                "check the network path to STS (AWS_ENDPOINT_URL, AWS_REGION, regional endpoints, the namespace's NetworkPolicy){statement}"
            ),
            StsFailureKind::Aws(AwsErrorKind::Throttled) => {
                "STS throttled the call: retry the job".to_owned()
            }
            StsFailureKind::Aws(AwsErrorKind::NotFound | AwsErrorKind::Other) => format!(
                "STS refused the call for the reason above{statement}"
            ),
        }
    }
}

/// Who STS says the caller is: `(arn, account)`, or `(operation, code,
/// message)` of the refusal.
async fn caller(
    web_identity_token: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<(String, Option<String>), StsFailure> {
    // The region without the instance metadata service (the namespace's
    // NetworkPolicy blocks it, so the SDK would wait for its timeout): the
    // environment's or profile's, else the role's partition's own.
    let partition = env
        .get("AWS_ROLE_ARN")
        .and_then(|arn| crate::arn::Arn::parse(arn).ok())
        .map(|arn| arn.partition)
        .unwrap_or_default();
    let region = crate::aws::configured_region()
        .await
        .unwrap_or_else(|| partition.default_region().to_owned());
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let endpoint = shared.endpoint_url().map_or_else(
        || format!("https://sts.{region}.amazonaws.com"),
        str::to_owned,
    );

    let sts = aws_sdk_sts::Client::new(&shared);
    let role_arn = env.get("AWS_ROLE_ARN").filter(|v| !v.is_empty());
    match (web_identity_token, role_arn) {
        (Some(path), Some(role_arn)) => {
            const OPERATION: &str = "AssumeRoleWithWebIdentity";
            let token = std::fs::read_to_string(path).map_err(|e| StsFailure {
                operation: OPERATION,
                kind: StsFailureKind::TokenUnreadable,
                text: format!("cannot read {}: {e}", path.display()),
            })?;
            let session = env
                .get("AWS_ROLE_SESSION_NAME")
                .filter(|v| !v.is_empty())
                .map_or("runner-identity-verify", String::as_str);
            let out = sts
                .assume_role_with_web_identity()
                .role_arn(role_arn)
                .role_session_name(session)
                .web_identity_token(token.trim())
                .send()
                .await
                .map_err(|e| StsFailure::of(OPERATION, &e, &endpoint))?;
            let arn = out
                .assumed_role_user()
                .map(|u| u.arn().to_owned())
                .unwrap_or_default();
            let account = crate::arn::Arn::parse(&arn).ok().map(|a| a.account);
            Ok((arn, account))
        }
        _ => {
            let out = sts
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| StsFailure::of("GetCallerIdentity", &e, &endpoint))?;
            Ok((
                out.arn().unwrap_or_default().to_owned(),
                out.account().map(str::to_owned),
            ))
        }
    }
}

async fn caller_check(
    facts: &mut BTreeMap<&'static str, String>,
    expected_role: Option<&str>,
    web_identity_token: Option<&Path>,
    env: &BTreeMap<String, String>,
    chained_from: Option<&str>,
    trust: impl FnOnce() -> Option<Value>,
) -> Check {
    const NAME: &str = "caller-identity";
    let (arn, account) = match caller(web_identity_token, env).await {
        Ok(c) => c,
        Err(failure) => {
            let statement = trust()
                .as_ref()
                .and_then(|t| t.pointer("/Statement/0"))
                .and_then(|s| serde_json::to_string_pretty(s).ok())
                .map(|s| format!("\nthe trust policy statement that would match this job:\n{s}"))
                .unwrap_or_default();
            return Check::fail(
                NAME,
                format!("STS {} failed: {}", failure.operation, failure.text),
                failure.fix(web_identity_token, &statement),
            );
        }
    };
    facts.insert("caller-arn", arn.clone());
    if let Some(account) = account {
        facts.insert("account-id", account);
    }

    let Some(expected) = expected_role else {
        return Check::fail(
            NAME,
            format!("caller is {arn}, but no role is expected"),
            "pass --expected-role-arn or -c",
        );
    };
    if let Some(mismatch) = role_mismatch(expected, &arn) {
        let caller = crate::arn::Arn::parse(&arn).ok();
        let session = caller
            .as_ref()
            .and_then(|c| c.assumed_role())
            .and_then(|(_, s)| s);
        if session.is_some_and(|s| s.starts_with("i-")) {
            return Check::fail(
                NAME,
                format!(
                    "caller is the node's instance role {arn}: the pod fell back to the EC2 instance metadata credentials"
                ),
                "the pod has no IRSA/Pod Identity credentials the SDK accepts; block IMDS for pods (hop limit 1) and fix the job ServiceAccount",
            );
        }
        if let Some(from) = chained_from.filter(|from| role_mismatch(from, &arn).is_none()) {
            return Check::fail(
                NAME,
                format!(
                    "caller is {arn}, the repository's own role: EKS Pod Identity did not chain \
                     to the target role {expected}"
                ),
                format!(
                    "the job's Pod Identity association has no targetRoleArn {expected}: run \
                     `runner-identity apply`; `runner-identity doctor` checks both links ({from} \
                     may assume it; its trust admits {from} with the association's externalId)"
                ),
            );
        }
        return Check::fail(
            NAME,
            format!("caller is {arn}, expected the role {expected} ({mismatch})"),
            "the job runs with another identity: check the job ServiceAccount and the hook template",
        );
    }
    match chained_from {
        Some(from) => Check::pass(
            NAME,
            format!("caller is {arn}: the target role, chained by EKS Pod Identity from {from}"),
        ),
        None => Check::pass(NAME, format!("caller is {arn}")),
    }
}

/// How an STS caller ARN differs from a session of the expected IAM role
/// (`None`: it is one): the same partition, account and role name (a role of the same name in another
/// account or partition is another identity).
fn role_mismatch(expected_role_arn: &str, caller_arn: &str) -> Option<String> {
    use crate::arn::{Arn, RoleArn};
    let want = match RoleArn::parse(expected_role_arn) {
        Ok(a) => a,
        Err(e) => return Some(e),
    };
    let want_name = want.name.as_str();
    let caller = match Arn::parse(caller_arn) {
        Ok(a) => a,
        Err(e) => return Some(e),
    };
    let role = caller.assumed_role().map(|(role, _)| role);
    let (partition, account) = (caller.partition.as_str(), caller.account.as_str());
    let (want_partition, want_account) = (want.partition.as_str(), want.account.as_str());
    let mut problems = Vec::new();
    if role != Some(want_name) {
        problems.push(format!(
            "role {} is not {want_name}",
            role.unwrap_or("(not an assumed role)")
        ));
    }
    if account != want_account {
        problems.push(format!("account {account} is not {want_account}"));
    }
    if partition != want_partition {
        problems.push(format!("partition {partition} is not {want_partition}"));
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

async fn kubernetes_rights_check(inputs: &JobInputs) -> Option<Check> {
    const NAME: &str = "kubernetes-rights";
    let token = inputs.kubernetes_token.as_ref()?;
    if !token.exists() {
        return Some(Check::pass(
            NAME,
            "no Kubernetes API token is mounted in the workflow pod",
        ));
    }
    let client = match super::runner::token_client(inputs.kubeconfig.as_deref(), token).await {
        Ok(c) => c,
        Err(e) => {
            return Some(Check::fail(
                NAME,
                format!("a Kubernetes token is mounted but the API server cannot be asked: {e}"),
                "set automountServiceAccountToken: false on the job ServiceAccount",
            ));
        }
    };
    // The namespace comes from the token's own signed subject, never from a
    // variable the workflow can set (POD_NAMESPACE), and never `default`.
    let subject = std::fs::read_to_string(token)
        .ok()
        .and_then(|t| jwt_claims(&t).ok())
        .and_then(|c| {
            c.get("sub")
                .and_then(Value::as_str)
                .and_then(Subject::parse)
        });
    let Some(Subject { namespace, .. }) = subject else {
        return Some(Check::fail(
            NAME,
            format!(
                "the Kubernetes API token {} has no ServiceAccount subject, so the namespace its rights apply in is unknown",
                token.display()
            ),
            "set automountServiceAccountToken: false on the job ServiceAccount",
        ));
    };
    let review = k8s_openapi::api::authorization::v1::SelfSubjectRulesReview {
        spec: k8s_openapi::api::authorization::v1::SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.clone()),
        },
        ..Default::default()
    };
    let api: kube::Api<k8s_openapi::api::authorization::v1::SelfSubjectRulesReview> =
        kube::Api::all(client);
    match api.create(&Default::default(), &review).await {
        Ok(out) => {
            let extra: Vec<String> = out
                .status
                .map(|s| s.resource_rules)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| {
                    !r.resources
                        .iter()
                        .flatten()
                        .all(|x| x.starts_with("selfsubject"))
                })
                .map(|r| {
                    format!(
                        "{} {}",
                        r.verbs.join(","),
                        r.resources.unwrap_or_default().join(",")
                    )
                })
                .collect();
            Some(if extra.is_empty() {
                Check::pass(NAME, "the job ServiceAccount has no Kubernetes rights")
            } else {
                Check::fail(
                    NAME,
                    format!(
                        "the job ServiceAccount has Kubernetes rights: {}",
                        extra.join("; ")
                    ),
                    "remove the RoleBindings of the job ServiceAccount: the workflow must not control the cluster",
                )
            })
        }
        Err(e) => Some(Check::fail(
            NAME,
            format!("SelfSubjectRulesReview failed: {e}"),
            "set automountServiceAccountToken: false on the job ServiceAccount",
        )),
    }
}

/// This process's uid and gid (from /proc, no libc needed).
fn ids() -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("?")
            .to_owned()
    };
    (field("Uid:"), field("Gid:"))
}

fn owner_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "the file is owned by uid {} gid {} with mode {:o}",
            m.uid(),
            m.gid(),
            m.mode() & 0o777
        ),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_members_job_is_bound_to_that_member_and_its_ids() {
        let text = "github: {owner: acme, ownerId: 9}\nrepositories: [{name: api, id: 41}, {name: web, id: 42}]\n\
                    groups: [{name: platform, repositories: [api, web]}]\n\
                    cluster: {name: prod, oidcIssuer: https://o.example/id/1}\n\
                    aws: {accountId: '111122223333', mode: irsa}\n";
        let settings = crate::config::parse(text, Path::new("t.yaml")).unwrap();
        let web = crate::names::all(&settings).remove(1);
        let inputs = JobInputs {
            settings: Some(settings),
            expected_role_arn: None,
            env: BTreeMap::new(),
            kubernetes_token: None,
            kubeconfig: None,
            github_oidc: OidcMode::Auto,
            templates: None,
            strict: false,
        };
        // The token's ServiceAccount is web's job account in the group's namespace.
        let subject = Subject {
            namespace: web.namespace.clone(),
            service_account: web.job_service_account.clone(),
        };
        let bound = bound_repository(&inputs, Some(&subject)).unwrap();
        assert_eq!(bound.repository, "acme/web");
        let expected = github_expectation(&inputs, Some(bound));
        assert_eq!(expected.repository_id, Some(42));
        assert_eq!(expected.owner_id, Some(9));
        // The group's runner account is no member's job.
        let runner = Subject {
            namespace: web.namespace.clone(),
            service_account: web.runner_service_account.clone(),
        };
        assert!(bound_repository(&inputs, Some(&runner)).is_none());
    }

    #[tokio::test]
    async fn an_sts_refusal_gets_the_fix_of_its_kind_not_the_network_advice() {
        use aws_sdk_sts::error::ErrorMetadata;
        use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let fail_with = |code: &'static str, message: &'static str| async move {
            let rule =
                mock!(aws_sdk_sts::Client::assume_role_with_web_identity).then_error(move || {
                    AssumeRoleWithWebIdentityError::generic(
                        ErrorMetadata::builder().code(code).message(message).build(),
                    )
                });
            let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
            let e = sts
                .assume_role_with_web_identity()
                .role_arn("arn:aws:iam::111122223333:role/gha-app")
                .role_session_name("s")
                .web_identity_token("t")
                .send()
                .await
                .unwrap_err();
            let failure = StsFailure::of("AssumeRoleWithWebIdentity", &e, "http://sts");
            (
                failure.text.clone(),
                failure.fix(Some(Path::new("/var/run/secrets/token")), ""),
            )
        };
        // Before, every code but two got "check the network path to STS".
        let (text, fix) = fail_with(
            "ExpiredTokenException",
            "Token expired: current date/time 1 must be before the expiration date/time 0",
        )
        .await;
        assert!(
            text.starts_with("ExpiredTokenException: Token expired"),
            "{text}"
        );
        assert!(fix.contains("expired or malformed"), "{fix}");
        assert!(!fix.contains("network"), "{fix}");
        let (_, fix) = fail_with("InvalidIdentityToken", "No OpenIDConnect provider found").await;
        assert!(
            fix.contains("eksctl utils associate-iam-oidc-provider"),
            "{fix}"
        );
        let (_, fix) = fail_with(
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        )
        .await;
        assert!(
            fix.contains("trust policy does not admit this token"),
            "{fix}"
        );
        let (_, fix) = fail_with("Throttling", "Rate exceeded").await;
        assert!(fix.contains("throttled"), "{fix}");
    }

    #[test]
    fn an_unreadable_token_is_named_with_the_fsgroup_fix() {
        let failure = StsFailure {
            operation: "AssumeRoleWithWebIdentity",
            kind: StsFailureKind::TokenUnreadable,
            text: "cannot read /t: Permission denied".to_owned(),
        };
        let fix = failure.fix(Some(Path::new("/t")), "");
        assert!(fix.contains("at /t") && fix.contains("fsGroup"), "{fix}");
    }

    #[test]
    fn the_role_is_assumed_directly_only_when_the_chain_would_use_web_identity() {
        let home = tempfile::tempdir().unwrap();
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            [("HOME", home.path().to_str().unwrap())]
                .iter()
                .chain(pairs)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(web_identity_first(Mechanism::Irsa, &env(&[])));
        assert!(web_identity_first(
            Mechanism::Irsa,
            &env(&[("AWS_PROFILE", "")])
        ));
        // Whatever the SDK's chain tries before web identity wins over it.
        for key in [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ] {
            assert!(
                !web_identity_first(Mechanism::Irsa, &env(&[(key, "x")])),
                "{key}"
            );
        }
        assert!(!web_identity_first(Mechanism::PodIdentity, &env(&[])));
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(home.path().join(".aws").join("credentials"), "[default]\n").unwrap();
        assert!(!web_identity_first(Mechanism::Irsa, &env(&[])));
    }

    #[test]
    fn a_same_named_role_in_another_account_or_partition_is_another_identity() {
        let want = "arn:aws:iam::111122223333:role/ci/gha-acme-api";
        assert_eq!(
            role_mismatch(
                want,
                "arn:aws:sts::111122223333:assumed-role/gha-acme-api/s1"
            ),
            None
        );
        let other_account = role_mismatch(
            want,
            "arn:aws:sts::999988887777:assumed-role/gha-acme-api/s1",
        );
        assert_eq!(
            other_account,
            Some("account 999988887777 is not 111122223333".to_owned())
        );
        let other_partition = role_mismatch(
            want,
            "arn:aws-cn:sts::111122223333:assumed-role/gha-acme-api/s1",
        );
        assert_eq!(
            other_partition,
            Some("partition aws-cn is not aws".to_owned())
        );
        assert_eq!(
            role_mismatch(
                want,
                "arn:aws:sts::111122223333:assumed-role/gha-acme-web/s1"
            ),
            Some("role gha-acme-web is not gha-acme-api".to_owned())
        );
        assert!(role_mismatch(want, "arn:aws:iam::111122223333:user/gha-acme-api").is_some());
        assert!(
            role_mismatch(
                "gha-acme-api",
                "arn:aws:sts::111122223333:assumed-role/gha-acme-api/s"
            )
            .is_some()
        );
    }

    #[test]
    fn assumed_role_arns() {
        let assumed = |arn: &str| {
            crate::arn::Arn::parse(arn).ok().and_then(|a| {
                a.assumed_role()
                    .map(|(r, s)| (r.to_owned(), s.map(str::to_owned)))
            })
        };
        assert_eq!(
            assumed("arn:aws:sts::1:assumed-role/gha-x/botocore-session-1"),
            Some(("gha-x".into(), Some("botocore-session-1".into())))
        );
        assert_eq!(
            assumed("arn:aws:sts::1:assumed-role/eks-node/i-0123"),
            Some(("eks-node".into(), Some("i-0123".into())))
        );
        assert_eq!(assumed("arn:aws:iam::1:user/bob"), None);
    }
}
