//! A Pod Identity target role: both links of the chain (the repository's
//! role may assume it; its trust admits that role with the association's
//! externalId, and nobody else).

use super::*;

/// The two links of a chain to a target role: the association's role may
/// assume and tag it (its inline policies), and the target's trust admits
/// that role with the association's `externalId`. A target in another
/// account cannot be read with doctor's credentials: its required trust is
/// shown instead.
pub(super) async fn target_chain(
    aws: &Clients,
    role_arn: &str,
    target: &str,
    external_id: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(role), Some(target_role)) =
        (RoleArn::parse(role_arn).ok(), RoleArn::parse(target).ok())
    else {
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
pub(super) async fn chain_permission(aws: &Clients, name: &str, target: &str) -> Option<String> {
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
