//! `bootstrap`: what the identity that runs `apply` (and, read-only, `diff`
//! and `doctor`) must be allowed to do for one configuration, as objects to
//! apply and IAM documents. Pure: a plan in, documents out.
//!
//! Kubernetes: every right is limited to the object names the plan holds
//! (`resourceNames`), except `list`, which cannot be. Creating a Role that
//! grants the hooks' rights, and binding it, would need those rights
//! themselves (RBAC's escalation check); instead the role grants `escalate`
//! and `bind` on roles of the planned names only: the tool can write those
//! Roles, and bind them, and no other.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use crate::config::{Mode, Settings};
use crate::kvp;
use crate::plan::{Kind, Plan};

/// The bootstrap objects' names.
pub const APPLY_NAME: &str = "runner-identity-apply";
pub const READONLY_NAME: &str = "runner-identity-readonly";
/// Where the tool's own ServiceAccount lives by default.
pub const NAMESPACE: &str = "runner-identity";

/// The names the plan holds, per kind (cluster-scoped kinds included).
pub fn planned_names(plan: &Plan) -> BTreeMap<Kind, BTreeSet<String>> {
    let mut names: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    for repo in &plan.repositories {
        for object in repo.objects() {
            if let Some(name) = &object.metadata().name {
                names.entry(object.kind()).or_default().insert(name.clone());
            }
        }
    }
    names
}

fn rule(
    group: &str,
    resources: &[&str],
    verbs: &[&str],
    names: Option<&BTreeSet<String>>,
) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: names.map(|n| n.iter().cloned().collect()),
        ..Default::default()
    }
}

/// The rules `apply` needs (`readonly`: what `diff` needs) for `plan`, and
/// the source Secrets `githubCredentials.fromSecret` of `settings` names.
pub fn apply_rules_for(settings: &Settings, plan: &Plan, readonly: bool) -> Vec<PolicyRule> {
    let mut rules = apply_rules(plan, readonly);
    let sources: BTreeSet<String> = settings
        .repositories
        .iter()
        .filter_map(|r| r.github_credentials.as_ref()?.from_secret.as_ref())
        .map(|s| s.name.clone())
        .collect();
    if !sources.is_empty() {
        // `apply` copies the source Secret's keys (read by name, in its namespace).
        rules.push(rule("", &["secrets"], &["get"], Some(&sources)));
    }
    rules
}

/// The rules `apply` needs (`readonly`: what `diff` needs).
pub fn apply_rules(plan: &Plan, readonly: bool) -> Vec<PolicyRule> {
    let names = planned_names(plan);
    let mut rules = Vec::new();
    let write: &[&str] = if readonly {
        &["get"]
    } else {
        &["get", "create", "patch", "delete"]
    };
    // Every planned kind is listed once per apply (this instance's objects,
    // others' metadata): list cannot be limited by name. A kind the plan
    // holds none of gets no right at all (no credentials: nothing on
    // Secrets); `apply` then neither manages nor prunes objects of it.
    for kind in Kind::DELETE_ORDER {
        let Some(planned) = names.get(&kind).filter(|n| !n.is_empty()) else {
            continue;
        };
        let ar = kind.api_resource();
        rules.push(rule(&ar.group, &[&ar.plural], &["list"], None));
        rules.push(rule(&ar.group, &[&ar.plural], write, Some(planned)));
    }
    if !readonly && let Some(roles) = names.get(&Kind::Role) {
        // RBAC's escalation check: writing a Role that grants the hooks'
        // rights, and binding it, needs `escalate` and `bind` on it (or the
        // rights themselves, in every repository namespace).
        rules.push(rule(
            "rbac.authorization.k8s.io",
            &["roles"],
            &["escalate", "bind"],
            Some(roles),
        ));
    }
    rules
}

/// The rules `doctor` needs.
pub fn doctor_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            "actions.github.com",
            &["autoscalingrunnersets"],
            &["list"],
            None,
        ),
        rule(
            "",
            &["configmaps", "serviceaccounts"],
            &["get", "list"],
            None,
        ),
        rule("", &["secrets"], &["list"], None),
        rule("", &["serviceaccounts/token"], &["create"], None),
        rule(
            "authorization.k8s.io",
            &["subjectaccessreviews"],
            &["create"],
            None,
        ),
    ]
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            kvp::MANAGED_BY_LABEL.to_owned(),
            "runner-identity-bootstrap".to_owned(),
        )])),
        ..Default::default()
    }
}

/// A ServiceAccount, ClusterRole and ClusterRoleBinding as YAML documents.
pub fn kubernetes_objects(name: &str, namespace: &str, rules: Vec<PolicyRule>) -> Vec<Value> {
    let account = ServiceAccount {
        metadata: meta(name, Some(namespace)),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: meta(name, None),
        rules: Some(rules),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        }]),
    };
    let typed = |v: Value, api_version: &str, kind: &str| {
        let mut v = v;
        v["apiVersion"] = json!(api_version);
        v["kind"] = json!(kind);
        v
    };
    vec![
        typed(
            serde_json::to_value(account).unwrap_or_default(),
            "v1",
            "ServiceAccount",
        ),
        typed(
            serde_json::to_value(role).unwrap_or_default(),
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
        ),
        typed(
            serde_json::to_value(binding).unwrap_or_default(),
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
        ),
    ]
}

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
    fn a_from_secret_source_is_readable_by_name_only() {
        let s = settings(
            "  mode: irsa\nkubernetes:\n  githubCredentials:\n    fromSecret: {namespace: arc-systems, name: org-app}\n",
        );
        let plan =
            crate::plan::plan(&s, &crate::templates::Templates::load(None).unwrap()).unwrap();
        let rules = apply_rules_for(&s, &plan, false);
        let source = rules
            .iter()
            .find(|r| r.verbs == ["get"] && r.resources.as_deref() == Some(&["secrets".to_owned()]))
            .unwrap();
        assert_eq!(
            source.resource_names.as_deref(),
            Some(&["org-app".to_owned()][..])
        );
        assert_eq!(
            apply_rules_for(&settings("  mode: irsa\n"), &plan, false).len(),
            rules.len() - 1
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
