//! EKS Pod Identity: the job ServiceAccount's association, its settings,
//! and the role's trust of the Pod Identity agent.

use super::*;

/// A job ServiceAccount without an IRSA annotation: its Pod Identity association.
pub(super) async fn pod_identity(
    options: &Options<'_>,
    namespace: &str,
    account: &str,
) -> Vec<Finding> {
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
    let Ok(role) = RoleArn::parse(&role_arn) else {
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
pub(super) fn planned_target(
    options: &Options<'_>,
    namespace: &str,
    account: &str,
) -> Option<String> {
    let settings = options.settings?;
    let index = crate::names::all(settings)
        .iter()
        .position(|n| n.namespace == namespace && n.job_service_account == account)?;
    settings.repositories.get(index)?.target_role_arn.clone()
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
