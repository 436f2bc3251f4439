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
use crate::aws::Clients;
use crate::aws::decode_policy;
use crate::aws::error_kind::AwsErrorKind;
use crate::aws::error_kind::error_text;
use crate::policy::{self, Decision, WebIdentityRequest};

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

/// A role ARN, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    pub partition: String,
    pub account: String,
    pub name: String,
}

impl RoleArn {
    /// Parses `arn:<partition>:iam::<12 digits>:role/<path/>name`.
    pub fn parse(arn: &str) -> Option<RoleArn> {
        let arn = crate::arn::Arn::parse(arn).ok()?;
        let name = arn.role_name()?;
        (arn.region.is_empty() && arn.has_account_id()).then(|| RoleArn {
            partition: arn.partition.as_str().to_owned(),
            account: arn.account.clone(),
            name: name.to_owned(),
        })
    }
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
    let Some(role) = RoleArn::parse(arn) else {
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

/// The trust policy of `role` for a token with `claims` from `issuer`
/// (host and path): does it admit the token, and how it is too loose.
pub fn trust_findings(
    trust: &Value,
    role: &RoleArn,
    role_object: &str,
    claims: &Value,
    issuer: &str,
    service_account: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let sub = text("sub");
    let aud = crate::jwt::audiences(claims)
        .into_iter()
        .next()
        .unwrap_or_default();
    let provider_arn = format!(
        "arn:{}:iam::{}:oidc-provider/{issuer}",
        role.partition, role.account
    );
    let request = WebIdentityRequest {
        provider_arn: &provider_arn,
        issuer,
        sub: &sub,
        aud: &aud,
    };
    let statement = serde_json::json!({
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{issuer}:sub"): sub, format!("{issuer}:aud"): aud}}
    });
    // Why a statement does not admit the token, in the terms of the fix.
    let mut why: Vec<String> = Vec::new();
    for st in policy::statements(trust) {
        for federated in strings(st.pointer("/Principal/Federated")) {
            if let Some((arn_prefix, provider)) = federated.split_once(":oidc-provider/") {
                if provider != issuer {
                    why.push(format!(
                        "Federated names the OIDC provider `{provider}`, the cluster's issuer is `{issuer}`"
                    ));
                }
                let expected_prefix = format!("arn:{}:iam::{}", role.partition, role.account);
                if arn_prefix != expected_prefix {
                    why.push(format!(
                        "Federated `{federated}` is in another account or partition than the role ({expected_prefix})"
                    ));
                }
            }
        }
        for (operator, block) in st
            .get("Condition")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            for (key, value) in block.as_object().into_iter().flatten() {
                let Some((key_issuer, claim)) = key.rsplit_once(':') else {
                    continue;
                };
                if key_issuer.starts_with("https://") || key_issuer.ends_with('/') {
                    why.push(format!(
                        "the condition key `{key}` carries {}: IAM's keys are `{issuer}:{claim}`",
                        if key_issuer.starts_with("https://") {
                            "the scheme"
                        } else {
                            "a trailing slash"
                        }
                    ));
                }
                if claim == "sub" && operator.starts_with("StringLike") {
                    let wildcards: Vec<&str> = strings(Some(value))
                        .into_iter()
                        .filter(|v| v.contains('*') || v.contains('?'))
                        .collect();
                    if !wildcards.is_empty() {
                        out.push(Finding::new(
                            Severity::Warning,
                            "trust-policy",
                            role_object,
                            format!(
                                "StringLike `{key}` {wildcards:?} admits more than {service_account}: \
                                 any ServiceAccount it matches assumes the role"
                            ),
                            format!("use StringEquals `{issuer}:sub`: \"{sub}\""),
                        ));
                    }
                }
            }
        }
        let has_aud = st
            .get("Condition")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .any(|(_, block)| {
                block
                    .as_object()
                    .is_some_and(|b| b.keys().any(|k| k.ends_with(":aud")))
            });
        if !has_aud && st.get("Effect").and_then(Value::as_str) == Some("Allow") {
            out.push(Finding::new(
                Severity::Warning,
                "trust-policy",
                role_object,
                "a statement has no `:aud` condition: a token of the same subject minted for \
                 another audience is admitted too",
                format!("add StringEquals `{issuer}:aud`: \"{aud}\""),
            ));
        }
    }
    match policy::evaluate_web_identity(trust, &request) {
        Decision::Allowed(_) => {}
        Decision::Denied(i) => out.push(Finding::new(
            Severity::Error,
            "trust-policy",
            role_object,
            format!("statement {i} denies {service_account} (sub {sub}) explicitly: AccessDenied on AssumeRoleWithWebIdentity"),
            "remove the Deny statement, or use another role",
        )),
        Decision::NotAllowed(reasons) => {
            let mut evidence = format!(
                "the trust policy does not admit {service_account} (sub `{sub}`, aud `{aud}`): \
                 AccessDenied on AssumeRoleWithWebIdentity; {}",
                reasons.join("; ")
            );
            if !why.is_empty() {
                evidence.push_str(&format!("; in particular: {}", why.join("; ")));
            }
            out.push(Finding::new(
                Severity::Error,
                "trust-policy",
                role_object,
                evidence,
                format!(
                    "aws iam update-assume-role-policy --role-name {} --policy-document '{{\"Version\":\"2012-10-17\",\"Statement\":[{statement}]}}'",
                    role.name
                ),
            ));
        }
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
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

/// A job ServiceAccount without an IRSA annotation: its Pod Identity association.
async fn pod_identity(options: &Options<'_>, namespace: &str, account: &str) -> Vec<Finding> {
    let here = object("ServiceAccount", namespace, account);
    let none = |evidence: String| {
        Finding::new(
            Severity::Error,
            "job-identity",
            here.clone(),
            evidence,
            format!(
                "IRSA: kubectl annotate serviceaccount {account} -n {namespace} {ROLE_ANNOTATION}=<role ARN>; \
                 or EKS Pod Identity: aws eks create-pod-identity-association --cluster-name <cluster> \
                 --namespace {namespace} --service-account {account} --role-arn <role ARN> \
                 (`runner-identity apply` does either)"
            ),
        )
    };
    let (Some(aws), Some(cluster)) = (&options.aws, &options.cluster) else {
        return vec![none(format!(
            "no {ROLE_ANNOTATION} annotation, and EKS Pod Identity associations were not checked \
             (no --cluster): unless an association exists, jobs get no credentials \
             (NoCredentialProviders) or fall back to the node's role"
        ))];
    };
    let listed = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(namespace)
        .service_account(account)
        .send()
        .await;
    let associations = match listed {
        Ok(l) => l.associations().to_vec(),
        Err(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "job-identity",
                here,
                format!(
                    "cannot list EKS Pod Identity associations of {cluster}: {}",
                    error_text(&e)
                ),
                "grant doctor eks:ListPodIdentityAssociations and eks:DescribePodIdentityAssociation",
            )];
        }
    };
    let Some(id) = associations.first().and_then(|a| a.association_id()) else {
        return vec![none(format!(
            "no {ROLE_ANNOTATION} annotation and no EKS Pod Identity association in {cluster}: jobs \
             get no credentials (NoCredentialProviders) or fall back to the node's role"
        ))];
    };
    let described = aws
        .eks
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(id)
        .send()
        .await;
    let Some(association) = described.ok().and_then(|d| d.association().cloned()) else {
        return Vec::new();
    };
    let Some(role_arn) = association.role_arn().map(str::to_owned) else {
        return Vec::new();
    };
    let Some(role) = RoleArn::parse(&role_arn) else {
        return Vec::new();
    };
    let role_object = object("Role", "", &role.name);
    let trust = match role_trust(aws, &role.name).await {
        Ok(trust) => trust,
        Err((text, _)) => {
            return vec![Finding::new(
                Severity::Error,
                "trust-policy",
                role_object,
                format!("the Pod Identity association {id} names {role_arn}: {text}"),
                "create the role, or point the association at an existing one",
            )];
        }
    };
    let Some(trust) = trust else {
        return Vec::new();
    };
    let planned = planned_target(options, namespace, account);
    let mut findings = pod_identity_trust(&trust, &role_object);
    findings.extend(association_settings(
        &association,
        &trust,
        &role_object,
        planned.as_deref(),
    ));
    // The chain is checked when it is the one planned (or nothing is
    // planned: a diagnosis from outside); a target nobody planned is only
    // named, so that doctor never asks anyone to trust it.
    if let Some(target) = association
        .target_role_arn()
        .filter(|t| !t.is_empty())
        .filter(|t| options.settings.is_none() || planned.as_deref() == Some(*t))
    {
        let external_id = association.external_id().unwrap_or_default();
        findings.extend(target_chain(aws, &role_arn, target, external_id).await);
    }
    findings
}

/// The target role the configuration plans for the repository whose job
/// ServiceAccount is `namespace/account`.
fn planned_target(options: &Options<'_>, namespace: &str, account: &str) -> Option<String> {
    let settings = options.settings?;
    settings
        .repositories
        .iter()
        .find(|r| {
            let names = crate::names::RepoNames::new(settings, r);
            names.namespace == namespace && names.job_service_account == account
        })
        .and_then(|r| r.target_role_arn.clone())
}

/// The two links of a chain to a target role: the association's role may
/// assume and tag it (its inline policies), and the target's trust admits
/// that role with the association's `externalId`. A target in another
/// account cannot be read with doctor's credentials: its required trust is
/// shown instead.
async fn target_chain(
    aws: &Clients,
    role_arn: &str,
    target: &str,
    external_id: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(role), Some(target_role)) = (RoleArn::parse(role_arn), RoleArn::parse(target)) else {
        return out;
    };
    let role_object = object("Role", "", &role.name);
    let target_object = object("Role", "", &target_role.name);
    let required = crate::plan::target_trust_policy(role_arn, external_id);
    let required_text = serde_json::to_string(&required).unwrap_or_default();
    if let Some(missing) = chain_permission(aws, &role.name, target).await {
        out.push(Finding::new(
            Severity::Error,
            "target-role-permission",
            role_object,
            format!(
                "the Pod Identity association chains {role_arn} to {target}, but {missing}: EKS \
                 Pod Identity cannot assume the target and jobs get no credentials"
            ),
            format!(
                "allow sts:AssumeRole and sts:TagSession on {target} in the role's policy \
                 (runner-identity apply writes it from repositories[].aws.targetRoleArn)"
            ),
        ));
    }
    if target_role.account != role.account {
        out.push(Finding::new(
            Severity::Info,
            "target-role-trust",
            target_object,
            format!(
                "the target role is in account {}, which doctor's credentials do not read; its \
                 trust must hold: {required_text}",
                target_role.account
            ),
            format!(
                "ask the owner of account {} to compare the role's trust with it",
                target_role.account
            ),
        ));
        return out;
    }
    let trust = match role_trust(aws, &target_role.name).await {
        Ok(Some(trust)) => trust,
        Ok(None) => return out,
        Err((text, kind)) => {
            out.push(Finding::new(
                Severity::Error,
                "target-role-trust",
                target_object,
                format!("cannot read the target role {target}: {text}"),
                match kind {
                    AwsErrorKind::NotFound => format!(
                        "create the role with the trust {required_text}, or change \
                         repositories[].aws.targetRoleArn"
                    ),
                    _ => aws_fix(kind, "iam:GetRole"),
                },
            ));
            return out;
        }
    };
    // What STS puts in the request of a role in `account` with `external_id`.
    let ask = |arn: &str, account: &str, external_id: Option<&str>| {
        let mut context = vec![("aws:PrincipalArn", arn), ("aws:PrincipalAccount", account)];
        context.extend(external_id.map(|e| ("sts:ExternalId", e)));
        policy::evaluate_role_assume(
            &trust,
            &policy::RoleRequest {
                role_arn: arn,
                account,
                context: &context,
            },
        )
    };
    let decision = ask(role_arn, &role.account, Some(external_id));
    if let Some(why) = match decision {
        Decision::Allowed(_) => None,
        Decision::Denied(i) => Some(format!("statement {i} denies it")),
        Decision::NotAllowed(reasons) => Some(reasons.join("; ")),
    } {
        out.push(Finding::new(
            Severity::Error,
            "target-role-trust",
            target_object,
            format!(
                "the trust of the target role {target} does not let {role_arn} assume it with \
                 sts:ExternalId {external_id} and tag the session ({why}): every chain fails and \
                 jobs get no credentials"
            ),
            format!("set its trust to {required_text}"),
        ));
    } else if matches!(ask(role_arn, &role.account, None), Decision::Allowed(_)) {
        out.push(Finding::new(
            Severity::Warning,
            "target-role-external-id",
            target_object,
            format!(
                "the trust of the target role {target} admits {role_arn} without \
                 sts:ExternalId {external_id}: whatever else runs as that role, not only this \
                 association, can become the target (the confused deputy)"
            ),
            format!("set its trust to {required_text}"),
        ));
    } else {
        // The externalId is no secret (apply prints it, the association
        // returns it): a trust that admits other principals with it admits
        // them.
        let partition = &role.partition;
        let same_account = format!(
            "arn:{partition}:iam::{}:role/runner-identity-doctor-probe",
            role.account
        );
        let elsewhere =
            format!("arn:{partition}:iam::000000000000:role/runner-identity-doctor-probe");
        let wide: Vec<&str> = [
            (same_account.as_str(), role.account.as_str()),
            (elsewhere.as_str(), "000000000000"),
        ]
        .into_iter()
        .filter(|(arn, account)| {
            matches!(ask(arn, account, Some(external_id)), Decision::Allowed(_))
        })
        .map(|(arn, _)| arn)
        .collect();
        if !wide.is_empty() {
            out.push(Finding::new(
                Severity::Warning,
                "target-role-trust-wide",
                target_object,
                format!(
                    "the trust of the target role {target} admits other principals than {role_arn} \
                     that present sts:ExternalId {external_id} (e.g. {}): the externalId is no \
                     secret, so they can become the target",
                    wide.join(", ")
                ),
                format!("set its trust to {required_text}"),
            ));
        }
    }
    out
}

/// Why the role `name`'s inline policies do not allow chaining to `target`
/// (`None`: they do, or they cannot be read, which other checks report).
async fn chain_permission(aws: &Clients, name: &str, target: &str) -> Option<String> {
    let listed = aws
        .iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .ok()?;
    let mut documents = Vec::new();
    for policy_name in listed.policy_names() {
        let got = aws
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
            .ok()?;
        documents.extend(decode_policy(got.policy_document()));
    }
    let missing: Vec<&str> = ["sts:AssumeRole", "sts:TagSession"]
        .into_iter()
        .filter(|action| {
            !documents.iter().any(|doc| {
                matches!(
                    policy::evaluate_identity(
                        doc,
                        &policy::ApiRequest {
                            action,
                            resource: target,
                            context: &[],
                        }
                    ),
                    Decision::Allowed(_)
                )
            })
        })
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "its inline policies do not allow {} on it (attached managed policies were not read)",
            missing.join(" and ")
        )
    })
}

/// What an association's settings do to the chain: session tags off while
/// the trust conditions on them (every assume fails), a target role (the
/// job ends as another role), a session policy (fewer rights than the role).
pub fn association_settings(
    association: &aws_sdk_eks::types::PodIdentityAssociation,
    trust: &Value,
    role_object: &str,
    planned_target: Option<&str>,
) -> Vec<Finding> {
    let id = association.association_id().unwrap_or("?");
    let cluster = association.cluster_name().unwrap_or("<cluster>");
    let mut out = Vec::new();
    let trust_text = trust.to_string();
    if association.disable_session_tags() == Some(true) && trust_text.contains("aws:RequestTag/") {
        out.push(Finding::new(
            Severity::Error,
            "association-session-tags",
            role_object,
            format!(
                "the Pod Identity association {id} has session tags disabled, but the role's \
                 trust conditions on aws:RequestTag/… tags: every assume is refused and jobs \
                 get no credentials"
            ),
            format!(
                "aws eks update-pod-identity-association --cluster-name {cluster} \
                 --association-id {id} --no-disable-session-tags (or runner-identity apply)"
            ),
        ));
    }
    let target = association.target_role_arn().filter(|t| !t.is_empty());
    if target != planned_target {
        let planned = match planned_target {
            Some(p) => format!("the configuration plans {p}"),
            None => "the configuration plans none".to_owned(),
        };
        out.push(Finding::new(
            Severity::Warning,
            "association-target-role",
            role_object,
            match target {
                Some(target) => format!(
                    "the Pod Identity association {id} chains to the target role {target} \
                     ({planned}): jobs run as that role, not as {role_object}; its trust must \
                     allow this role with sts:ExternalId {}",
                    association
                        .external_id()
                        .unwrap_or("(the association's externalId)")
                ),
                None => format!(
                    "the Pod Identity association {id} chains to no target role ({planned}): \
                     jobs run as {role_object}"
                ),
            },
            "run runner-identity apply to restore the planned association",
        ));
    }
    if association.policy().is_some_and(|p| !p.is_empty()) {
        out.push(Finding::new(
            Severity::Info,
            "association-policy",
            role_object,
            format!(
                "the Pod Identity association {id} carries a session policy: jobs get only what \
                 both it and the role allow"
            ),
            "expected only when you set it; runner-identity apply removes a policy it did not plan",
        ));
    }
    out
}

/// A Pod Identity role's trust: `pods.eks.amazonaws.com` with
/// `sts:AssumeRole` and `sts:TagSession`.
pub fn pod_identity_trust(trust: &Value, role_object: &str) -> Vec<Finding> {
    let admits = policy::statements(trust).iter().any(|st| {
        let service = strings(st.pointer("/Principal/Service"));
        let actions: Vec<String> = strings(st.get("Action"))
            .iter()
            .map(|a| a.to_lowercase())
            .collect();
        st.get("Effect").and_then(Value::as_str) == Some("Allow")
            && service.contains(&"pods.eks.amazonaws.com")
            && ["sts:assumerole", "sts:tagsession"]
                .iter()
                .all(|a| actions.iter().any(|x| policy::glob_match(x, a)))
    });
    if admits {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Error,
        "trust-policy",
        role_object,
        "the trust policy does not allow pods.eks.amazonaws.com both sts:AssumeRole and \
         sts:TagSession: the Pod Identity agent cannot assume the role",
        "add {\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"pods.eks.amazonaws.com\"},\"Action\":[\"sts:AssumeRole\",\"sts:TagSession\"]}",
    )]
}

/// The cluster's IAM OIDC provider for `issuer` (host and path): it exists,
/// with client id `sts.amazonaws.com`.
pub async fn oidc_provider(aws: &Clients, issuer: &str, options: &Options<'_>) -> Vec<Finding> {
    let here = object("OpenIDConnectProvider", "", issuer);
    let providers = match aws.iam.list_open_id_connect_providers().send().await {
        Ok(l) => l.open_id_connect_provider_list().to_vec(),
        Err(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "oidc-provider",
                here,
                format!("cannot list IAM OIDC providers: {}", error_text(&e)),
                aws_fix(
                    AwsErrorKind::of(&e),
                    "iam:ListOpenIDConnectProviders and iam:GetOpenIDConnectProvider",
                ),
            )];
        }
    };
    let Some(arn) = providers
        .iter()
        .filter_map(|p| p.arn())
        .find(|arn| arn.ends_with(&format!(":oidc-provider/{issuer}")))
    else {
        let cluster = options.cluster.as_deref().unwrap_or("<cluster>");
        return vec![Finding::new(
            Severity::Error,
            "oidc-provider",
            here,
            format!(
                "no IAM OIDC provider for the cluster's issuer https://{issuer}: every IRSA \
                 AssumeRoleWithWebIdentity fails (InvalidIdentityToken: no OpenIDConnect provider found)"
            ),
            format!("eksctl utils associate-iam-oidc-provider --cluster {cluster} --approve"),
        )];
    };
    match aws
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
    {
        Ok(p) if !p.client_id_list().iter().any(|c| c == STS_AUDIENCE) => vec![Finding::new(
            Severity::Error,
            "oidc-provider",
            here,
            format!(
                "the provider's client ids {:?} lack {STS_AUDIENCE}",
                p.client_id_list()
            ),
            format!(
                "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} --client-id {STS_AUDIENCE}"
            ),
        )],
        Ok(_) => Vec::new(),
        Err(e) => vec![Finding::new(
            Severity::Warning,
            "oidc-provider",
            here,
            format!("cannot read the provider: {}", error_text(&e)),
            aws_fix(AwsErrorKind::of(&e), "iam:GetOpenIDConnectProvider"),
        )],
    }
}

/// The EKS cluster's issuer equals the one its tokens carry and the configured one.
pub async fn cluster_issuer<'a>(
    aws: &Clients,
    cluster: &str,
    seen: impl Iterator<Item = &'a String>,
    options: &Options<'_>,
) -> Vec<Finding> {
    let here = object("Cluster", "", cluster);
    let described = match aws.eks.describe_cluster().name(cluster).send().await {
        Ok(d) => d,
        Err(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "cluster-identity",
                here,
                format!("cannot describe the cluster: {}", error_text(&e)),
                aws_fix(
                    AwsErrorKind::of(&e),
                    "eks:DescribeCluster (or check --cluster)",
                ),
            )];
        }
    };
    let Some(issuer) = described
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .map(|i| {
            i.trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned()
        })
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for token_issuer in seen {
        if *token_issuer != issuer {
            out.push(Finding::new(
                Severity::Error,
                "cluster-identity",
                here.clone(),
                format!("the cluster's tokens are issued by {token_issuer}, but EKS reports {issuer}: this kubeconfig is not the cluster --cluster names"),
                "check --cluster and --context",
            ));
        }
    }
    if let Some(configured) = options
        .settings
        .and_then(|s| s.issuer_host_path.as_deref())
        .filter(|c| *c != issuer)
    {
        out.push(Finding::new(
            Severity::Error,
            "cluster-identity",
            here,
            format!("cluster.oidcIssuer is {configured}, EKS reports {issuer}: planned trust policies name the wrong provider"),
            format!("set cluster.oidcIssuer: https://{issuer} and re-apply"),
        ));
    }
    out
}

/// What else in the namespace carries an IAM role.
pub fn exposure(namespace: &str, job: Option<&str>, accounts: &Accounts) -> Vec<Finding> {
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
        .filter(|(name, _)| name.as_str() != "default" && Some(name.as_str()) != job)
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
    if let Some(job) = job
        && job != "default"
        && let Ok(Some(sa)) = accounts.named(job)
        && sa.automount_service_account_token != Some(false)
    {
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

    use super::*;

    #[test]
    fn role_arns_are_split_or_refused() {
        let r = RoleArn::parse("arn:aws:iam::111122223333:role/ci/gha-app").unwrap();
        assert_eq!(
            (r.partition.as_str(), r.account.as_str(), r.name.as_str()),
            ("aws", "111122223333", "gha-app")
        );
        for bad in [
            "arn:aws:iam::1111:role/x",
            "arn:aws:sts::111122223333:assumed-role/x/y",
            "arn:aws:iam::111122223333:user/x",
            "gha-app",
            "arn:aws-xx:iam::111122223333:role/x",
        ] {
            assert_eq!(RoleArn::parse(bad), None, "{bad}");
        }
    }
}
