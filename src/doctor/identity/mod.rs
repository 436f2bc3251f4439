//! The job identity: the job ServiceAccount, its IAM role (IRSA annotation
//! or EKS Pod Identity association), the role's trust policy evaluated
//! against a freshly minted token's claims with each way it fails
//! explained; the cluster's IAM OIDC provider; and what else in the
//! namespace carries a role.

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

use super::{Finding, Options, Severity, object};
use crate::arn::RoleArn;
use crate::aws::Clients;
use crate::aws::decode_policy;
use crate::aws::error_kind::AwsErrorKind;
use crate::aws::error_kind::error_text;
use crate::policy::{self, Decision, WebIdentityRequest};

mod chain;
mod cluster;
mod pod_identity;
mod trust;

use self::chain::*;
pub use self::cluster::{cluster_issuer, oidc_provider};
use self::pod_identity::*;
pub use self::pod_identity::{association_settings, pod_identity_trust};
pub use self::trust::trust_findings;
use self::trust::*;

const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// The minted token's lifetime: the API server's minimum.
const TOKEN_SECONDS: i64 = 600;

/// The fix of an AWS call that failed, by the failure's kind.
fn aws_fix(kind: AwsErrorKind, permission: &str) -> String {
    match kind {
        AwsErrorKind::Credentials => "configure AWS credentials for the account (environment, \
             AWS_PROFILE, SSO; renew them when they expired), or pass --skip-aws"
            .to_owned(),
        AwsErrorKind::Transport => "check the network path to AWS (proxy, VPC endpoint, \
             AWS_ENDPOINT_URL), or pass --skip-aws"
            .to_owned(),
        AwsErrorKind::Throttled => "AWS throttled the call: run doctor again later".to_owned(),
        AwsErrorKind::AccessDenied | AwsErrorKind::NotFound | AwsErrorKind::Other => {
            format!("grant doctor {permission} (docs/reference.md: doctor)")
        }
    }
}

/// A warning that an AWS read failed: what could not be done, the error,
/// and the fix chosen by the error's kind.
fn unread<E>(check: &'static str, here: String, what: &str, e: &E, permission: &str) -> Finding
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    Finding::new(
        Severity::Warning,
        check,
        here,
        format!("cannot {what}: {}", error_text(e)),
        aws_fix(AwsErrorKind::of(e), permission),
    )
}

/// The trust policy of the role `name` (`None` when IAM returns none that
/// parses), or the IAM error as text and kind.
async fn role_trust(aws: &Clients, name: &str) -> Result<Option<Value>, (String, AwsErrorKind)> {
    aws.iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map(|got| {
            got.role()
                .and_then(|r| r.assume_role_policy_document())
                .and_then(decode_policy)
        })
        .map_err(|e| (error_text(&e), AwsErrorKind::of(&e)))
}

/// The ServiceAccounts of a namespace (one list), or why they cannot be read.
pub struct Accounts(Result<Vec<ServiceAccount>, String>);

impl Accounts {
    pub async fn list(client: &Client, namespace: &str) -> Accounts {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        Accounts(
            api.list(&ListParams::default())
                .await
                .map(|l| l.items)
                .map_err(|e| e.to_string()),
        )
    }

    fn named(&self, name: &str) -> Result<Option<&ServiceAccount>, &str> {
        match &self.0 {
            Ok(items) => Ok(items
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))),
            Err(e) => Err(e),
        }
    }
}

/// Checks the job ServiceAccount `namespace/account` (one of `accounts`);
/// also returns the issuer (host and path) of its tokens, when one was minted.
pub async fn check(
    client: &Client,
    options: &Options<'_>,
    namespace: &str,
    account: &str,
    accounts: &Accounts,
) -> (Vec<Finding>, Option<String>) {
    let here = object("ServiceAccount", namespace, account);
    let mut out = Vec::new();
    let sa = match accounts.named(account) {
        Ok(Some(sa)) => sa,
        Ok(None) => {
            let which = if account == "default" {
                "the namespace's `default` ServiceAccount, which workflow pods run as here, does \
                 not exist"
            } else {
                "the job ServiceAccount the hook template names does not exist"
            };
            out.push(Finding::new(
                Severity::Error,
                "job-identity",
                here,
                format!("{which}: the API server refuses every workflow pod"),
                format!("kubectl create serviceaccount {account} -n {namespace} (or `runner-identity apply`)"),
            ));
            return (out, None);
        }
        Err(e) => {
            out.push(Finding::new(
                Severity::Warning,
                "job-identity",
                here,
                format!("cannot read the job ServiceAccount: {e}"),
                "grant doctor list on serviceaccounts (docs/reference.md: doctor)",
            ));
            return (out, None);
        }
    };
    let annotations = sa.metadata.annotations.clone().unwrap_or_default();
    let audience = annotations
        .get(AUDIENCE_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| STS_AUDIENCE.to_owned());
    let claims = match mint(client, namespace, account).await {
        // The claims a workflow pod's token carries: the same, for its audience.
        Ok(mut c) => {
            c["aud"] = Value::String(audience.clone());
            Some(c)
        }
        Err(e) => {
            out.push(Finding::new(
                Severity::Warning,
                "job-identity",
                here.clone(),
                format!(
                    "cannot mint a token for the job ServiceAccount to test its trust policy: {e}"
                ),
                "grant doctor create on serviceaccounts/token (docs/reference.md: doctor)",
            ));
            None
        }
    };
    let issuer = claims
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(Value::as_str)
        .map(|i| {
            i.trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned()
        });

    let Some(arn) = annotations.get(ROLE_ANNOTATION) else {
        out.extend(pod_identity(options, namespace, account).await);
        return (out, issuer);
    };
    let Ok(role) = RoleArn::parse(arn) else {
        out.push(Finding::new(
            Severity::Error,
            "job-identity",
            here,
            format!("{ROLE_ANNOTATION} is `{arn}`, not a role ARN (arn:aws:iam::<account>:role/<name>)"),
            format!("kubectl annotate serviceaccount {account} -n {namespace} --overwrite {ROLE_ANNOTATION}=arn:aws:iam::<account>:role/<name>"),
        ));
        return (out, issuer);
    };
    let Some(aws) = &options.aws else {
        return (out, issuer);
    };
    let role_object = object("Role", "", &role.name);
    let trust = match role_trust(aws, &role.name).await {
        Ok(trust) => trust,
        Err((text, kind)) => {
            let missing = kind == AwsErrorKind::NotFound;
            out.push(Finding::new(
                if missing {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                "trust-policy",
                role_object,
                if missing {
                    format!("{ROLE_ANNOTATION} on {here} names a role that does not exist: {text}")
                } else {
                    format!("cannot read the role: {text}")
                },
                if missing {
                    "create the role (`runner-identity apply`), or fix the annotation".to_owned()
                } else {
                    aws_fix(kind, "iam:GetRole")
                },
            ));
            return (out, issuer);
        }
    };
    let (Some(trust), Some(claims), Some(issuer_key)) = (trust, &claims, &issuer) else {
        return (out, issuer);
    };
    out.extend(trust_findings(
        &trust,
        &role,
        &role_object,
        claims,
        issuer_key,
        &here,
    ));
    (out, issuer)
}

/// The audience of the tokens doctor mints: one that neither AWS (whose
/// trust policies pin `sts.amazonaws.com` or the annotation's) nor the API
/// server accepts, so the token is worth nothing to anyone who sees it.
pub const DOCTOR_AUDIENCE: &str = "runner-identity-doctor.invalid";

/// The TokenRequest doctor sends: its own audience, the shortest lifetime.
fn token_request() -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![DOCTOR_AUDIENCE.to_owned()],
            expiration_seconds: Some(TOKEN_SECONDS),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A TokenRequest for the ServiceAccount; its claims (the token is dropped).
async fn mint(client: &Client, namespace: &str, account: &str) -> Result<Value, String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = token_request();
    let response = api
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .map_err(|e| e.to_string())?;
    let token = response.status.map(|s| s.token).unwrap_or_default();
    crate::jwt::claims(&token).map_err(|e| e.to_string())
}

/// What else in the namespace carries an IAM role.
pub fn exposure(namespace: &str, jobs: &[&str], accounts: &Accounts) -> Vec<Finding> {
    let Ok(items) = &accounts.0 else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let roles: BTreeMap<String, String> = items
        .iter()
        .filter_map(|sa| {
            let name = sa.metadata.name.clone()?;
            let arn = sa
                .metadata
                .annotations
                .as_ref()?
                .get(ROLE_ANNOTATION)?
                .clone();
            Some((name, arn))
        })
        .collect();
    if let Some(arn) = roles.get("default") {
        out.push(Finding::new(
            Severity::Warning,
            "exposure",
            object("ServiceAccount", namespace, "default"),
            format!("the namespace's `default` ServiceAccount carries {arn}: every pod without a ServiceAccount of its own gets that role"),
            format!("kubectl annotate serviceaccount default -n {namespace} {ROLE_ANNOTATION}-"),
        ));
    }
    let others: Vec<String> = roles
        .iter()
        .filter(|(name, _)| name.as_str() != "default" && !jobs.contains(&name.as_str()))
        .map(|(name, arn)| format!("{name} ({arn})"))
        .collect();
    if !others.is_empty() {
        out.push(Finding::new(
            Severity::Info,
            "exposure",
            object("Namespace", "", namespace),
            format!(
                "other ServiceAccounts here carry roles: {}; the runner may start pods as them",
                others.join(", ")
            ),
            "keep one repository's identities per namespace",
        ));
    }
    for job in jobs {
        let job = *job;
        if job == "default"
            || !matches!(accounts.named(job), Ok(Some(sa)) if sa.automount_service_account_token != Some(false))
        {
            continue;
        }
        out.push(Finding::new(
            Severity::Warning,
            "exposure",
            object("ServiceAccount", namespace, job),
            "the job ServiceAccount automounts a Kubernetes API token into every workflow pod",
            format!("kubectl patch serviceaccount {job} -n {namespace} -p '{{\"automountServiceAccountToken\": false}}'"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_expired_token_gets_the_credentials_fix_not_a_permission_to_grant() {
        use aws_sdk_iam::error::ErrorMetadata;
        use aws_sdk_iam::operation::get_role::GetRoleError;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let fix_for = |code: &'static str, message: &'static str| async move {
            let rule = mock!(aws_sdk_iam::Client::get_role).then_error(move || {
                GetRoleError::generic(ErrorMetadata::builder().code(code).message(message).build())
            });
            let clients = Clients {
                iam: mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&rule]),
                eks: mock_client!(aws_sdk_eks, RuleMode::MatchAny, []),
            };
            let (_, kind) = role_trust(&clients, "gha-app").await.unwrap_err();
            aws_fix(kind, "iam:GetRole")
        };
        // Before, the fix was chosen by finding "credentials" in the text.
        let expired = fix_for(
            "ExpiredToken",
            "The security token included in the request is expired",
        )
        .await;
        assert!(expired.contains("configure AWS credentials"), "{expired}");
        let denied = fix_for(
            "AccessDenied",
            "User is not authorized to perform iam:GetRole",
        )
        .await;
        assert!(denied.contains("grant doctor iam:GetRole"), "{denied}");
    }

    #[test]
    fn association_settings_that_break_or_bend_the_chain_are_named() {
        use aws_sdk_eks::types::PodIdentityAssociation;
        let trust = serde_json::json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"aws:RequestTag/kubernetes-namespace": "ns"}}}]});
        let base = || {
            PodIdentityAssociation::builder()
                .association_id("a-1")
                .cluster_name("ci")
                .role_arn("arn:aws:iam::111122223333:role/r")
        };
        assert!(association_settings(&base().build(), &trust, "Role/r", None).is_empty());
        let untagged = base().disable_session_tags(true).build();
        let f = association_settings(&untagged, &trust, "Role/r", None);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].fix.contains("--no-disable-session-tags"), "{f:?}");
        // Without tag conditions, disabled tags break nothing.
        let plain = serde_json::json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
        assert!(association_settings(&untagged, &plain, "Role/r", None).is_empty());
        let chained = base()
            .target_role_arn("arn:aws:iam::999999999999:role/t")
            .external_id("ext-1")
            .build();
        let f = association_settings(&chained, &trust, "Role/r", None);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].evidence.contains("999999999999:role/t") && f[0].evidence.contains("ext-1"));
        // The planned target is no finding; a missing planned one is.
        let planned = Some("arn:aws:iam::999999999999:role/t");
        assert!(association_settings(&chained, &trust, "Role/r", planned).is_empty());
        let f = association_settings(&base().build(), &trust, "Role/r", planned);
        assert!(f[0].evidence.contains("chains to no target role"), "{f:?}");
    }
}
