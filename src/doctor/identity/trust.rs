//! An IRSA role's trust policy, evaluated against the claims of a token
//! minted for the job ServiceAccount: each way it refuses the job, explained.

use super::*;

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

pub(super) fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
