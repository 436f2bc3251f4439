//! IAM policy documents: a small, strict evaluator for the trust policies
//! runner-identity writes and diagnoses. Pure: a JSON document and a request
//! in, a decision (and the statement that decided it) out.
//!
//! moto does not enforce trust policies, so this evaluator is what the tests
//! use to prove that a planned trust policy admits exactly the job
//! ServiceAccount. It implements the subset IAM applies to
//! `sts:AssumeRoleWithWebIdentity`: Allow/Deny, `Principal.Federated`,
//! `Action`, and the `StringEquals`, `StringLike`, `StringNotEquals`,
//! `StringNotLike` operators (case-sensitive, as IAM's are). Any other
//! operator makes a statement not match and is reported.

#[cfg(any(test, feature = "test-support"))]
pub mod iam_context;

use serde_json::Value;

/// A web-identity assume-role request as STS sees it.
#[derive(Debug, Clone)]
pub struct WebIdentityRequest<'a> {
    /// ARN of the IAM OIDC provider the token's issuer maps to.
    pub provider_arn: &'a str,
    /// Issuer without `https://`, the prefix of the condition keys.
    pub issuer: &'a str,
    /// The token's `sub` claim.
    pub sub: &'a str,
    /// The token's `aud` claim.
    pub aud: &'a str,
}

/// The outcome of evaluating a trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the statement at this index.
    Allowed(usize),
    /// Explicitly denied by the statement at this index.
    Denied(usize),
    /// No statement allows the request; the reasons, one per statement.
    NotAllowed(Vec<String>),
}

/// Evaluates `policy` for a web-identity request.
pub fn evaluate_web_identity(policy: &Value, req: &WebIdentityRequest) -> Decision {
    let statements = statements(policy);
    let mut allowed = None;
    let mut reasons = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        match statement_matches(st, req) {
            Ok(()) => {
                if st.get("Effect").and_then(Value::as_str) == Some("Deny") {
                    return Decision::Denied(i);
                }
                if st.get("Effect").and_then(Value::as_str) == Some("Allow") && allowed.is_none() {
                    allowed = Some(i);
                }
            }
            Err(reason) => reasons.push(format!("statement {i}: {reason}")),
        }
    }
    match allowed {
        Some(i) => Decision::Allowed(i),
        None => Decision::NotAllowed(reasons),
    }
}

/// An `sts:AssumeRole` (with `sts:TagSession`) by an AWS service principal,
/// as EKS Pod Identity makes it: the condition keys it carries
/// (`aws:SourceAccount`, `aws:RequestTag/…` unless session tags are off).
#[derive(Debug, Clone)]
pub struct ServiceRequest<'a> {
    /// `pods.eks.amazonaws.com`.
    pub service: &'a str,
    pub context: &'a [(&'a str, &'a str)],
}

/// Evaluates a trust policy for a service principal's `sts:AssumeRole` and
/// `sts:TagSession`: both must be allowed (Pod Identity makes both).
pub fn evaluate_service_assume(policy: &Value, req: &ServiceRequest) -> Decision {
    evaluate_assume(policy, req.context, |st| {
        let service = st.get("Principal").and_then(|p| p.get("Service"));
        if strings(service).contains(&req.service) {
            Ok(())
        } else {
            Err(format!("Principal.Service is not `{}`", req.service))
        }
    })
}

/// An `sts:AssumeRole` (with `sts:TagSession`) by an IAM role, as EKS Pod
/// Identity makes it when it chains to a target role.
#[derive(Debug, Clone)]
pub struct RoleRequest<'a> {
    /// The calling role's ARN (`arn:aws:iam::111122223333:role/path/name`).
    pub role_arn: &'a str,
    /// Its account.
    pub account: &'a str,
    /// `sts:ExternalId` and the other keys the request carries.
    pub context: &'a [(&'a str, &'a str)],
}

/// Evaluates a trust policy for an IAM role's `sts:AssumeRole` and
/// `sts:TagSession` (both must be allowed). `Principal.AWS` matches the
/// role's ARN, its account (`arn:…:iam::<account>:root` or the bare id) or
/// `*`; a condition on a key the request lacks does not hold.
pub fn evaluate_role_assume(policy: &Value, req: &RoleRequest) -> Decision {
    evaluate_assume(policy, req.context, |st| {
        let aws = st.get("Principal").and_then(|p| match p {
            Value::String(s) if s == "*" => Some(p),
            _ => p.get("AWS"),
        });
        let matches = strings(aws).iter().any(|p| {
            *p == "*"
                || *p == req.role_arn
                || *p == req.account
                || p.strip_suffix(&format!(":iam::{}:root", req.account))
                    .is_some_and(|prefix| prefix.starts_with("arn:") && !prefix[4..].contains(':'))
        });
        if matches {
            Ok(())
        } else {
            Err(format!("Principal.AWS does not name `{}`", req.role_arn))
        }
    })
}

/// Both `sts:AssumeRole` and `sts:TagSession`, each allowed by a statement
/// whose principal `principal` accepts and whose conditions hold.
fn evaluate_assume(
    policy: &Value,
    context: &[(&str, &str)],
    principal: impl Fn(&Value) -> Result<(), String>,
) -> Decision {
    let mut decision = Decision::NotAllowed(Vec::new());
    for action in ["sts:assumerole", "sts:tagsession"] {
        let mut allowed = None;
        let mut reasons = Vec::new();
        for (i, st) in statements(policy).iter().enumerate() {
            let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
            let unsupported = ["NotPrincipal", "NotAction"]
                .into_iter()
                .find(|k| st.get(*k).is_some());
            if let Some(key) = unsupported {
                if deny {
                    // A Deny this evaluator cannot decide may deny: never
                    // report Allowed past it.
                    return Decision::NotAllowed(vec![format!(
                        "statement {i}: a Deny with `{key}`, which this evaluator does not decide"
                    )]);
                }
                reasons.push(format!("statement {i}: `{key}` is not supported here"));
                continue;
            }
            let applies = principal(st).and_then(|()| {
                if strings(st.get("Action"))
                    .iter()
                    .any(|a| glob_match(&a.to_lowercase(), action))
                {
                    Ok(())
                } else {
                    Err(format!("Action does not include {action}"))
                }
            });
            let conditions = applies
                .is_ok()
                .then(|| conditions_hold(st, |key| context_values(context, key)));
            if let (true, Some(Err(reason))) = (deny, &conditions)
                && !reason.contains("does not match")
            {
                // A Deny whose conditions cannot be decided here (a key the
                // request does not model, an operator not supported) may
                // deny: never report Allowed past it.
                return Decision::NotAllowed(vec![format!(
                    "statement {i}: a Deny this evaluator cannot decide ({reason})"
                )]);
            }
            let matched = applies.and_then(|()| conditions.unwrap_or(Ok(())));
            match matched {
                Ok(()) => match st.get("Effect").and_then(Value::as_str) {
                    Some("Deny") => return Decision::Denied(i),
                    Some("Allow") if allowed.is_none() => allowed = Some(i),
                    _ => {}
                },
                Err(reason) => reasons.push(format!("statement {i}: {reason}")),
            }
        }
        decision = match allowed {
            Some(i) => Decision::Allowed(i),
            None => return Decision::NotAllowed(reasons),
        };
    }
    decision
}

/// The statements of a policy (a single object or an array).
pub fn statements(policy: &Value) -> Vec<Value> {
    match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    }
}

fn statement_matches(st: &Value, req: &WebIdentityRequest) -> Result<(), String> {
    let federated = st.get("Principal").and_then(|p| p.get("Federated"));
    if !strings(federated).contains(&req.provider_arn) {
        return Err(format!("Principal.Federated is not `{}`", req.provider_arn));
    }
    let actions = strings(st.get("Action"));
    if !actions
        .iter()
        .any(|a| glob_match(&a.to_lowercase(), "sts:assumerolewithwebidentity"))
    {
        return Err("Action does not include sts:AssumeRoleWithWebIdentity".into());
    }
    conditions_hold(st, |key| context_value(key, req).into_iter().collect())
}

fn context_value<'a>(key: &str, req: &WebIdentityRequest<'a>) -> Option<&'a str> {
    let (issuer, claim) = key.rsplit_once(':')?;
    if issuer != req.issuer {
        return None;
    }
    match claim {
        "sub" => Some(req.sub),
        "aud" => Some(req.aud),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// IAM wildcard match: `*` any run of characters, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One request to an AWS API as an identity policy sees it.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    /// `service:Action`, e.g. `iam:CreateRole`.
    pub action: &'a str,
    /// The resource ARN (`*` for actions without one).
    pub resource: &'a str,
    /// Condition keys the request carries (`iam:PermissionsBoundary`…).
    pub context: &'a [(&'a str, &'a str)],
}

/// Evaluates an identity policy for one request: an explicit Deny wins, then
/// any Allow; otherwise the implicit deny, with the reasons. Supports
/// `Action`/`Resource` (strings or lists, `*` and `?` wildcards, actions
/// case-insensitive) and the `String(Not)Equals`, `String(Not)Like`,
/// `ArnEquals` and `ArnLike` operators; a statement with anything else
/// (`NotAction`, `NotResource`, another operator) never matches and says so.
pub fn evaluate_identity(policy: &Value, req: &ApiRequest) -> Decision {
    let mut allowed = None;
    let mut reasons = Vec::new();
    for (i, st) in statements(policy).iter().enumerate() {
        match identity_statement_matches(st, req) {
            Ok(()) => match st.get("Effect").and_then(Value::as_str) {
                Some("Deny") => return Decision::Denied(i),
                Some("Allow") if allowed.is_none() => allowed = Some(i),
                _ => {}
            },
            Err(reason) => reasons.push(format!("statement {i}: {reason}")),
        }
    }
    match allowed {
        Some(i) => Decision::Allowed(i),
        None => Decision::NotAllowed(reasons),
    }
}

fn identity_statement_matches(st: &Value, req: &ApiRequest) -> Result<(), String> {
    for unsupported in ["NotAction", "NotResource", "Principal", "NotPrincipal"] {
        if st.get(unsupported).is_some() {
            return Err(format!("`{unsupported}` is not supported here"));
        }
    }
    let action = req.action.to_lowercase();
    if !strings(st.get("Action"))
        .iter()
        .any(|a| glob_match(&a.to_lowercase(), &action))
    {
        return Err(format!("Action does not include {}", req.action));
    }
    if !strings(st.get("Resource"))
        .iter()
        .any(|r| glob_match(r, req.resource))
    {
        return Err(format!("Resource does not include {}", req.resource));
    }
    conditions_hold(st, |key| context_values(req.context, key))
}

/// The values a request's context holds for a condition key (keys compare
/// case-insensitively, as IAM's do).
fn context_values<'a>(context: &[(&'a str, &'a str)], key: &str) -> Vec<&'a str> {
    context
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| *v)
        .collect()
}

/// Whether every condition of `st` holds, `lookup` giving the request's
/// values of a condition key (several for a multi-valued key such as
/// `aws:TagKeys`); the first that does not, and why.
fn conditions_hold<'a>(st: &Value, lookup: impl Fn(&str) -> Vec<&'a str>) -> Result<(), String> {
    let Some(conditions) = st.get("Condition") else {
        return Ok(());
    };
    let Some(conditions) = conditions.as_object() else {
        return Err("Condition is not an object".into());
    };
    for (operator, block) in conditions {
        let Some(block) = block.as_object() else {
            return Err(format!("Condition.{operator} is not an object"));
        };
        // `ForAllValues:`/`ForAnyValue:` for multi-valued keys.
        let (set, operator) = match operator.split_once(':') {
            Some((set @ ("ForAllValues" | "ForAnyValue"), op)) => (Some(set), op),
            _ => (None, operator.as_str()),
        };
        // `…IfExists`: a key the request does not carry satisfies it.
        let (operator, if_exists) = match operator.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (operator, false),
        };
        for (key, expected) in block {
            let actual = lookup(key);
            let expected = strings(Some(expected));
            let matches = |value: &str| -> Result<bool, String> {
                Ok(match operator {
                    // IAM matches `*` and `?` in ArnEquals as in ArnLike.
                    "StringEquals" => expected.contains(&value),
                    "StringLike" | "ArnLike" | "ArnEquals" => {
                        expected.iter().any(|e| glob_match(e, value))
                    }
                    "StringNotEquals" => expected.iter().all(|e| *e != value),
                    "StringNotLike" => expected.iter().all(|e| !glob_match(e, value)),
                    other => {
                        return Err(format!(
                            "condition operator `{other}` is not supported here"
                        ));
                    }
                })
            };
            let ok = match set {
                // Every value among the expected ones (no value: true).
                Some("ForAllValues") => actual
                    .iter()
                    .map(|v| matches(v))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .all(|m| m),
                Some(_) => actual
                    .iter()
                    .map(|v| matches(v))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .any(|m| m),
                None => match actual.first() {
                    Some(value) => matches(value)?,
                    // IAM: a negated operator holds for a key the request lacks.
                    None if if_exists || operator.contains("Not") => true,
                    None => {
                        return Err(format!(
                            "condition key `{key}` is not present in the request"
                        ));
                    }
                },
            };
            if !ok {
                return Err(format!(
                    "{operator} `{key}`: {actual:?} does not match {expected:?}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_role_principal_is_its_arn_its_account_or_everyone() {
        let role = "arn:aws:iam::111122223333:role/ci/app";
        let request = |context: &'static [(&'static str, &'static str)]| RoleRequest {
            role_arn: role,
            account: "111122223333",
            context,
        };
        let trust = |principal: Value| {
            json!({"Statement": [{"Effect": "Allow", "Principal": principal,
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
        };
        for principal in [
            json!({"AWS": role}),
            json!({"AWS": "arn:aws:iam::111122223333:root"}),
            json!({"AWS": ["111122223333"]}),
            json!("*"),
        ] {
            let d = evaluate_role_assume(&trust(principal.clone()), &request(&[]));
            assert!(matches!(d, Decision::Allowed(0)), "{principal}: {d:?}");
        }
        for principal in [
            json!({"AWS": "arn:aws:iam::111122223333:role/ci/other"}),
            json!({"AWS": "arn:aws:iam::999999999999:root"}),
            json!({"AWS": "arn:aws:iam::111122223333:user/root"}),
            json!({"Service": "pods.eks.amazonaws.com"}),
        ] {
            let d = evaluate_role_assume(&trust(principal.clone()), &request(&[]));
            assert!(matches!(d, Decision::NotAllowed(_)), "{principal}: {d:?}");
        }
        // AssumeRole alone is not enough: the session is tagged too.
        let untagged = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": role},
            "Action": "sts:AssumeRole"}]});
        assert!(matches!(
            evaluate_role_assume(&untagged, &request(&[])),
            Decision::NotAllowed(_)
        ));
        // A Deny it cannot decide is never passed as Allowed.
        for deny in [
            json!({"Effect": "Deny", "NotPrincipal": {"AWS": "x"}, "Action": "sts:AssumeRole"}),
            json!({"Effect": "Deny", "Principal": {"AWS": role}, "Action": "sts:AssumeRole",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
        ] {
            let mut policy = trust(json!({"AWS": role}));
            policy["Statement"]
                .as_array_mut()
                .unwrap()
                .push(deny.clone());
            assert!(
                matches!(
                    evaluate_role_assume(&policy, &request(&[])),
                    Decision::NotAllowed(_)
                ),
                "{deny}"
            );
        }
        // An ExternalId condition holds only with that id.
        let pinned = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": role},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"sts:ExternalId": "e-1"}}}]});
        assert!(matches!(
            evaluate_role_assume(&pinned, &request(&[("sts:ExternalId", "e-1")])),
            Decision::Allowed(0)
        ));
        for context in [&[][..], &[("sts:ExternalId", "e-2")][..]] {
            let context: &'static [(&str, &str)] = Box::leak(context.to_vec().into_boxed_slice());
            assert!(matches!(
                evaluate_role_assume(&pinned, &request(context)),
                Decision::NotAllowed(_)
            ));
        }
    }

    #[test]
    fn identity_policies_allow_deny_and_condition() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Action": ["iam:CreateRole"], "Resource": "arn:aws:iam::1:role/ci/*",
             "Condition": {"StringEquals": {"iam:PermissionsBoundary": "arn:aws:iam::1:policy/b"}}},
            {"Effect": "Allow", "Action": "iam:Get*", "Resource": "arn:aws:iam::1:role/ci/*"},
            {"Effect": "Deny", "Action": "iam:DeleteRolePermissionsBoundary", "Resource": "*"}
        ]});
        let req = |action, resource, context| ApiRequest {
            action,
            resource,
            context,
        };
        let bounded = [("iam:PermissionsBoundary", "arn:aws:iam::1:policy/b")];
        assert_eq!(
            evaluate_identity(
                &policy,
                &req("iam:CreateRole", "arn:aws:iam::1:role/ci/a", &bounded)
            ),
            Decision::Allowed(0)
        );
        // Outside the path, without the boundary, another boundary: the implicit deny.
        for (resource, context) in [
            ("arn:aws:iam::1:role/other/a", &bounded[..]),
            ("arn:aws:iam::1:role/ci/a", &[][..]),
            (
                "arn:aws:iam::1:role/ci/a",
                &[("iam:PermissionsBoundary", "arn:aws:iam::1:policy/x")][..],
            ),
        ] {
            assert!(matches!(
                evaluate_identity(&policy, &req("iam:CreateRole", resource, context)),
                Decision::NotAllowed(_)
            ));
        }
        assert_eq!(
            evaluate_identity(
                &policy,
                &req("IAM:getrole", "arn:aws:iam::1:role/ci/a", &[])
            ),
            Decision::Allowed(1)
        );
        assert_eq!(
            evaluate_identity(
                &policy,
                &req(
                    "iam:DeleteRolePermissionsBoundary",
                    "arn:aws:iam::1:role/ci/a",
                    &[]
                )
            ),
            Decision::Denied(2)
        );
    }

    const ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const PROVIDER: &str =
        "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";

    fn trust(sub: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{ISSUER}:sub"): sub,
                format!("{ISSUER}:aud"): "sts.amazonaws.com"
            }}
        }]})
    }

    fn req<'a>(sub: &'a str, aud: &'a str) -> WebIdentityRequest<'a> {
        WebIdentityRequest {
            provider_arn: PROVIDER,
            issuer: ISSUER,
            sub,
            aud,
        }
    }

    #[test]
    fn exact_subject_and_audience_are_allowed() {
        let p = trust("system:serviceaccount:gha-api:gha-job");
        assert_eq!(
            evaluate_web_identity(
                &p,
                &req("system:serviceaccount:gha-api:gha-job", "sts.amazonaws.com")
            ),
            Decision::Allowed(0)
        );
    }

    #[test]
    fn other_subject_or_audience_is_not_allowed() {
        let p = trust("system:serviceaccount:gha-api:gha-job");
        let Decision::NotAllowed(reasons) = evaluate_web_identity(
            &p,
            &req("system:serviceaccount:gha-web:gha-job", "sts.amazonaws.com"),
        ) else {
            panic!("must not allow another namespace");
        };
        assert!(reasons[0].contains(":sub"), "{reasons:?}");
        assert!(matches!(
            evaluate_web_identity(&p, &req("system:serviceaccount:gha-api:gha-job", "other")),
            Decision::NotAllowed(_)
        ));
    }

    #[test]
    fn deny_wins_and_like_globs() {
        let mut p = trust("x");
        p["Statement"][0]["Condition"] =
            json!({"StringLike": {format!("{ISSUER}:sub"): "system:serviceaccount:gha-*:gha-job"}});
        let deny = json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER}, "Action": "sts:*",
            "Condition": {"StringEquals": {format!("{ISSUER}:sub"): "system:serviceaccount:gha-evil:gha-job"}}});
        if let Some(a) = p["Statement"].as_array_mut() {
            a.push(deny);
        }
        assert_eq!(
            evaluate_web_identity(&p, &req("system:serviceaccount:gha-api:gha-job", "a")),
            Decision::Allowed(0)
        );
        assert_eq!(
            evaluate_web_identity(&p, &req("system:serviceaccount:gha-evil:gha-job", "a")),
            Decision::Denied(1)
        );
    }

    #[test]
    fn wrong_provider_is_not_allowed() {
        let p = trust("s");
        let r = WebIdentityRequest {
            provider_arn: "arn:aws:iam::111122223333:oidc-provider/other",
            ..req("s", "sts.amazonaws.com")
        };
        assert!(matches!(
            evaluate_web_identity(&p, &r),
            Decision::NotAllowed(_)
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*", ""));
    }
}
