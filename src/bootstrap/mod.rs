//! `bootstrap`: what the identity that runs `apply` (and, read-only, `diff`
//! and `doctor`) must be allowed to do for one configuration, as objects to
//! apply and IAM documents. Pure: a plan in, documents out.
//!
//! Kubernetes ([`kubernetes`]): every right is limited to the object names
//! the plan holds (`resourceNames`), except `list`, which cannot be; every
//! write inside a namespace is bound in the planned namespaces only.

pub mod kubernetes;

use serde_json::{Value, json};

pub use self::kubernetes::{
    Grants, apply_grants, apply_grants_of, doctor_grants, kubernetes_objects, planned_names,
};
use crate::config::{Mode, Settings};

/// The bootstrap objects' names.
pub const APPLY_NAME: &str = "runner-identity-apply";
pub const READONLY_NAME: &str = "runner-identity-readonly";
/// Where the tool's own ServiceAccount lives by default.
pub const NAMESPACE: &str = "runner-identity";

/// The IAM policy of `apply` (`readonly`: `diff`), limited to the roles
/// under `aws.rolePath`; with `aws.permissionsBoundary`, a role can only be
/// created with it and it cannot be removed.
pub fn iam_policy(settings: &Settings, readonly: bool) -> Value {
    let aws = &settings.config.aws;
    let partition = aws.partition.as_str();
    let account = &aws.account_id;
    let roles = format!("arn:{partition}:iam::{account}:role{}*", aws.role_path);
    let mut statements = vec![
        json!({
            "Sid": "ReadRoles",
            "Effect": "Allow",
            "Action": ["iam:GetRole", "iam:ListRoleTags", "iam:GetRolePolicy", "iam:ListRolePolicies",
                       "iam:ListAttachedRolePolicies"],
            "Resource": roles,
        }),
        json!({
            "Sid": "ListRolesAndProviders",
            "Effect": "Allow",
            "Action": ["iam:ListRoles", "iam:ListOpenIDConnectProviders"],
            "Resource": "*",
        }),
    ];
    if aws.mode == Mode::Irsa {
        statements.push(json!({
            "Sid": "ReadOidcProvider",
            "Effect": "Allow",
            "Action": ["iam:GetOpenIDConnectProvider"],
            "Resource": format!("arn:{partition}:iam::{account}:oidc-provider/*"),
        }));
    }
    // The cluster and its Pod Identity associations, the EKS resources every
    // statement on associations names.
    let cluster = &settings.config.cluster.name;
    let region = settings.config.cluster.region.as_deref().unwrap_or("*");
    let eks_resources = [
        format!("arn:{partition}:eks:{region}:{account}:cluster/{cluster}"),
        format!("arn:{partition}:eks:{region}:{account}:podidentityassociation/{cluster}/*"),
    ];
    if aws.mode == Mode::PodIdentity {
        statements.push(json!({
            "Sid": "ReadPodIdentityAssociations",
            "Effect": "Allow",
            "Action": ["eks:ListPodIdentityAssociations", "eks:DescribePodIdentityAssociation"],
            "Resource": eks_resources,
        }));
    }
    if readonly {
        // `doctor` also reads the cluster's issuer and, for job ServiceAccounts
        // without an IRSA annotation, their Pod Identity associations.
        statements.push(json!({
            "Sid": "DoctorReadsTheCluster",
            "Effect": "Allow",
            "Action": ["eks:DescribeCluster", "eks:ListPodIdentityAssociations",
                       "eks:DescribePodIdentityAssociation", "iam:GetOpenIDConnectProvider"],
            "Resource": [&eks_resources[0], &eks_resources[1],
                         &format!("arn:{partition}:iam::{account}:oidc-provider/*")],
        }));
        return json!({"Version": "2012-10-17", "Statement": statements});
    }
    let write = [
        "iam:UpdateRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:TagRole",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:DeleteRole",
    ];
    statements
        .push(json!({"Sid": "WriteRoles", "Effect": "Allow", "Action": write, "Resource": roles}));
    match &aws.permissions_boundary {
        Some(boundary) => {
            statements.push(json!({
                "Sid": "CreateRolesOnlyWithTheBoundary",
                "Effect": "Allow",
                "Action": ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
                "Resource": roles,
                "Condition": {"StringEquals": {"iam:PermissionsBoundary": boundary}},
            }));
            statements.push(json!({
                "Sid": "NeverRemoveTheBoundary",
                "Effect": "Deny",
                "Action": ["iam:DeleteRolePermissionsBoundary"],
                "Resource": roles,
            }));
        }
        None => statements.push(json!({
            "Sid": "CreateRoles",
            "Effect": "Allow",
            "Action": ["iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary"],
            "Resource": roles,
        })),
    }
    if aws.mode == Mode::PodIdentity {
        statements.push(json!({
            "Sid": "WritePodIdentityAssociations",
            "Effect": "Allow",
            "Action": ["eks:CreatePodIdentityAssociation", "eks:UpdatePodIdentityAssociation",
                       "eks:DeletePodIdentityAssociation", "eks:TagResource"],
            "Resource": eks_resources,
        }));
        statements.push(json!({
            "Sid": "PassRolesToPodIdentity",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "pods.eks.amazonaws.com"}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A trust policy for running `apply` from a GitHub workflow of
/// `repository`, pinned to `subject_suffix` (`ref:refs/heads/main` or
/// `environment:prod`), through GitHub's OIDC provider.
pub fn github_trust_policy(settings: &Settings, repository: &str, subject_suffix: &str) -> Value {
    let aws = &settings.config.aws;
    let issuer = settings
        .config
        .github
        .actions_issuer
        .clone()
        .unwrap_or_else(|| crate::verify::github_oidc::issuer_for(&settings.github_url));
    let host = issuer.trim_start_matches("https://").trim_end_matches('/');
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:{}:iam::{}:oidc-provider/{host}", aws.partition.as_str(), aws.account_id)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{host}:aud"): "sts.amazonaws.com",
                format!("{host}:sub"): format!("repo:{repository}:{subject_suffix}"),
            }},
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        let text = format!(
            "github: {{owner: acme}}\nrepositories: [api]\ncluster: {{name: prod, region: eu-west-1, oidcIssuer: https://o.example/id/1}}\n\
             aws:\n  accountId: '111122223333'\n  rolePath: /ci/\n{extra}"
        );
        crate::config::parse(&text, std::path::Path::new("t.yaml")).unwrap()
    }

    fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no {sid}: {policy:#}"))
    }

    #[test]
    fn roles_are_created_only_with_the_boundary_and_only_under_the_path() {
        let boundary = "arn:aws:iam::111122223333:policy/gha-boundary";
        let policy = iam_policy(
            &settings(&format!(
                "  mode: irsa\n  permissionsBoundary: {boundary}\n"
            )),
            false,
        );
        let create = statement(&policy, "CreateRolesOnlyWithTheBoundary");
        assert_eq!(
            create["Condition"]["StringEquals"]["iam:PermissionsBoundary"],
            boundary
        );
        assert_eq!(create["Resource"], "arn:aws:iam::111122223333:role/ci/*");
        assert_eq!(
            statement(&policy, "NeverRemoveTheBoundary")["Effect"],
            "Deny"
        );
        // Every Allow on roles is under the path.
        for s in policy["Statement"].as_array().unwrap() {
            let actions = s["Action"].to_string();
            if actions.contains("Role") && s["Sid"] != "ListRolesAndProviders" {
                assert_eq!(s["Resource"], "arn:aws:iam::111122223333:role/ci/*", "{s}");
            }
        }
        // No Pod Identity rights in IRSA mode, no write in the read-only policy.
        assert!(!policy.to_string().contains("eks:"));
        let readonly = iam_policy(&settings("  mode: irsa\n"), true).to_string();
        for write in ["CreateRole", "DeleteRole\"", "PutRolePolicy", "TagRole"] {
            assert!(!readonly.contains(write), "{write} in {readonly}");
        }
    }

    #[test]
    fn pod_identity_passes_roles_to_the_agent_only() {
        let policy = iam_policy(&settings("  mode: pod-identity\n"), false);
        let pass = statement(&policy, "PassRolesToPodIdentity");
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"],
            "pods.eks.amazonaws.com"
        );
        let write = statement(&policy, "WritePodIdentityAssociations");
        assert!(
            write["Resource"]
                .to_string()
                .contains("arn:aws:eks:eu-west-1:111122223333:cluster/prod")
        );
    }

    #[test]
    fn the_github_trust_pins_repository_and_ref() {
        let trust = github_trust_policy(
            &settings("  mode: irsa\n"),
            "acme/platform",
            "ref:refs/heads/main",
        );
        let condition = &trust["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(
            condition["token.actions.githubusercontent.com:sub"],
            "repo:acme/platform:ref:refs/heads/main"
        );
        assert_eq!(
            condition["token.actions.githubusercontent.com:aud"],
            "sts.amazonaws.com"
        );
    }
}
