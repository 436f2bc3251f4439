//! The IAM policy of the identity that runs `apply` (and, read-only,
//! `diff` and `doctor`).
//!
//! Writes reach only roles of this configuration instance and never more
//! than a permissions boundary allows:
//! - every role statement names the instance's own path
//!   (`/runner-identity/<instance>/` by default; `/` is refused);
//! - a role is created only with one of the configured boundaries and this
//!   instance's tag; the boundary can never be removed;
//! - every later write needs the role to carry this instance's tag
//!   (`aws:ResourceTag`, which every role action carries), and, where the
//!   action carries `iam:PermissionsBoundary` (the policy writes, attach and
//!   detach, the boundary itself), one of the configured boundaries;
//! - `AttachRolePolicy` only of the configured managed policies
//!   (`iam:PolicyARN`);
//! - every `TagRole` (IAM authorizes one for a `CreateRole` with tags)
//!   stamps this instance's tag: no role is handed to another instance;
//! - an explicit Deny on the identity's own role;
//! - Pod Identity: `iam:PassRole` only of the instance's path (PassRole
//!   ignores resource tags) and only to `pods.eks.amazonaws.com`;
//!   associations created with, and changed only when they carry, this
//!   instance's tag.
//!
//! Which condition keys each action carries is AWS's Service Authorization
//! Reference; [`crate::policy::context`] models the same table, and the
//! tests evaluate this policy through it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::config::{Mode, Settings};
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY_LABEL, REPOSITORY_ANNOTATION};

/// The default name of the role that runs `apply`.
pub const APPLY_ROLE: &str = "runner-identity-apply";

/// The values `each` takes from the global settings and every repository's
/// effective ones, sorted and once each.
fn configured<'a, I: IntoIterator<Item = &'a String>>(
    settings: &'a Settings,
    global: I,
    each: impl Fn(&'a crate::config::Repository) -> I,
) -> Vec<String> {
    let set: BTreeSet<String> = global
        .into_iter()
        .chain(settings.repositories.iter().flat_map(each))
        .cloned()
        .collect();
    set.into_iter().collect()
}

/// The configured permissions boundaries (global and per repository).
fn boundaries(settings: &Settings) -> Vec<String> {
    let aws = &settings.config.aws;
    configured(settings, aws.permissions_boundary.iter(), |r| {
        r.permissions_boundary.iter()
    })
}

/// The configured managed policies (global and per repository).
fn managed_policies(settings: &Settings) -> Vec<String> {
    let aws = &settings.config.aws;
    configured(settings, aws.managed_policy_arns.iter(), |r| {
        r.managed_policy_arns.iter()
    })
}

/// The tag keys this instance's roles carry: the ownership and repository
/// tags and the configured ones.
fn tag_keys(settings: &Settings) -> Vec<String> {
    let set: BTreeSet<String> = [MANAGED_BY_LABEL, INSTANCE_LABEL, REPOSITORY_ANNOTATION]
        .iter()
        .map(|k| (*k).to_owned())
        .chain(settings.config.aws.tags.keys().cloned())
        .chain(
            settings
                .repositories
                .iter()
                .flat_map(|r| r.tags.keys().cloned()),
        )
        .collect();
    set.into_iter().collect()
}

/// `aws:ResourceTag/<instance tag>` (or `aws:RequestTag/…`).
fn tag_key(prefix: &str) -> String {
    format!("aws:{prefix}/{INSTANCE_LABEL}")
}

/// The IAM policy of `apply` (`readonly`: `diff` and `doctor`) for the
/// default name of its role.
pub fn iam_policy(settings: &Settings, readonly: bool) -> Value {
    iam_policy_for(settings, readonly, APPLY_ROLE)
}

/// The IAM policy of `apply` (`readonly`: `diff` and `doctor`) run as the
/// role `apply_role` (denied every IAM action on itself).
pub fn iam_policy_for(settings: &Settings, readonly: bool, apply_role: &str) -> Value {
    let aws = &settings.config.aws;
    let partition = aws.partition.as_str();
    let account = &aws.account_id;
    let roles = format!("arn:{partition}:iam::{account}:role{}*", aws.role_path());
    let instance = settings.instance.as_str();
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
    // doctor reads the trust of a target role in this account (one in
    // another account is read by its owner): named, never a wildcard.
    let targets: std::collections::BTreeSet<&str> = settings
        .repositories
        .iter()
        .filter_map(|r| r.target_role_arn.as_deref())
        .filter(|arn| crate::arn::Arn::parse(arn).is_ok_and(|a| a.account == *account))
        .collect();
    if !targets.is_empty() {
        statements.push(json!({
            "Sid": "ReadTargetRoles",
            "Effect": "Allow",
            "Action": "iam:GetRole",
            "Resource": targets,
        }));
    }
    if aws.mode == Mode::Irsa {
        statements.push(json!({
            "Sid": "ReadOidcProvider",
            "Effect": "Allow",
            "Action": ["iam:GetOpenIDConnectProvider"],
            "Resource": format!("arn:{partition}:iam::{account}:oidc-provider/*"),
        }));
    }
    // The cluster and its Pod Identity associations.
    let cluster = &settings.config.cluster.name;
    let region = settings.config.cluster.region.as_deref().unwrap_or("*");
    let cluster_arn = format!("arn:{partition}:eks:{region}:{account}:cluster/{cluster}");
    let associations =
        format!("arn:{partition}:eks:{region}:{account}:podidentityassociation/{cluster}/*");
    if aws.mode == Mode::PodIdentity {
        statements.push(json!({
            "Sid": "ReadPodIdentityAssociations",
            "Effect": "Allow",
            "Action": ["eks:ListPodIdentityAssociations", "eks:DescribePodIdentityAssociation"],
            "Resource": [&cluster_arn, &associations],
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
            "Resource": [&cluster_arn, &associations,
                         &format!("arn:{partition}:iam::{account}:oidc-provider/*")],
        }));
        return json!({"Version": "2012-10-17", "Statement": statements});
    }
    let bounds = boundaries(settings);
    let ours = json!({ tag_key("ResourceTag"): instance });
    // The tag keys the roles carry: ownership, repository, configured tags.
    let keys = tag_keys(settings);
    statements.push(json!({
        "Sid": "CreateRolesOnlyWithABoundaryAndThisInstancesTag",
        "Effect": "Allow",
        "Action": ["iam:CreateRole"],
        "Resource": roles,
        "Condition": {
            "ArnEquals": {"iam:PermissionsBoundary": bounds},
            "StringEquals": {tag_key("RequestTag"): instance},
            "ForAllValues:StringEquals": {"aws:TagKeys": keys},
        },
    }));
    // IAM also authorizes a CreateRole that carries tags as TagRole. Every
    // TagRole must stamp this instance's tag: no role can be handed to
    // another instance. (TagRole carries no boundary key, and the role's
    // own tags are not in the request that creates it: a role someone else
    // places on this instance's path can be tagged as the instance's.)
    statements.push(json!({
        "Sid": "TagRolesOnlyAsThisInstances",
        "Effect": "Allow",
        "Action": ["iam:TagRole"],
        "Resource": roles,
        "Condition": {
            "StringEquals": {tag_key("RequestTag"): instance},
            "ForAllValues:StringEquals": {"aws:TagKeys": keys},
        },
    }));
    statements.push(json!({
        "Sid": "WritePoliciesOfRolesOfThisInstanceWithinTheBoundary",
        "Effect": "Allow",
        "Action": ["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
                   "iam:PutRolePermissionsBoundary"],
        "Resource": roles,
        "Condition": {
            "ArnEquals": {"iam:PermissionsBoundary": bounds},
            "StringEquals": ours,
        },
    }));
    let managed = managed_policies(settings);
    if !managed.is_empty() {
        statements.push(json!({
            "Sid": "AttachOnlyTheConfiguredManagedPolicies",
            "Effect": "Allow",
            "Action": ["iam:AttachRolePolicy"],
            "Resource": roles,
            "Condition": {
                "StringEquals": ours,
                "ArnEquals": {"iam:PermissionsBoundary": bounds, "iam:PolicyARN": managed},
            },
        }));
    }
    statements.push(json!({
        "Sid": "UpdateAndDeleteRolesOfThisInstance",
        "Effect": "Allow",
        "Action": ["iam:UpdateRole", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole"],
        "Resource": roles,
        "Condition": {"StringEquals": ours},
    }));
    statements.push(json!({
        "Sid": "NeverRemoveTheBoundary",
        "Effect": "Deny",
        "Action": ["iam:DeleteRolePermissionsBoundary"],
        "Resource": "*",
    }));
    statements.push(json!({
        "Sid": "NeverItsOwnRole",
        "Effect": "Deny",
        "Action": ["iam:*"],
        "Resource": [
            format!("arn:{partition}:iam::{account}:role/{apply_role}"),
            format!("arn:{partition}:iam::{account}:role/*/{apply_role}"),
        ],
    }));
    if aws.mode == Mode::PodIdentity {
        statements.push(json!({
            "Sid": "CreatePodIdentityAssociationsTaggedForThisInstance",
            "Effect": "Allow",
            "Action": ["eks:CreatePodIdentityAssociation"],
            "Resource": &cluster_arn,
            "Condition": {"StringEquals": {tag_key("RequestTag"): instance}},
        }));
        // Tagging only what already is this instance's, and only with its
        // tag: an association of anyone else cannot be tagged into reach.
        statements.push(json!({
            "Sid": "ChangePodIdentityAssociationsOfThisInstance",
            "Effect": "Allow",
            "Action": ["eks:UpdatePodIdentityAssociation", "eks:DeletePodIdentityAssociation",
                       "eks:TagResource"],
            "Resource": &associations,
            "Condition": {
                "StringEquals": ours,
                "StringEqualsIfExists": {tag_key("RequestTag"): instance},
            },
        }));
        statements.push(json!({
            "Sid": "PassRolesOfThisInstanceToPodIdentity",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "pods.eks.amazonaws.com"}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> crate::Result<Settings> {
        let text = format!(
            "github: {{owner: acme}}\nrepositories: [api]\ncluster: {{name: prod, region: eu-west-1, oidcIssuer: https://o.example/id/1}}\n\
             aws:\n  accountId: '111122223333'\n{extra}"
        );
        crate::config::parse(&text, std::path::Path::new("t.yaml"))
    }

    use crate::policy::iam_context::{Account, Request, RoleState};
    use crate::policy::{ApiRequest, Decision, evaluate_identity};
    use std::collections::BTreeMap;

    const B: &str = "arn:aws:iam::111122223333:policy/b";
    const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

    /// Every IAM write an attacker holding the apply identity could send.
    const WRITES: &[&str] = &[
        "CreateRole",
        "TagRole",
        "UntagRole",
        "PutRolePolicy",
        "DeleteRolePolicy",
        "AttachRolePolicy",
        "DetachRolePolicy",
        "PutRolePermissionsBoundary",
        "DeleteRolePermissionsBoundary",
        "UpdateAssumeRolePolicy",
        "UpdateRole",
        "UpdateRoleDescription",
        "DeleteRole",
        "PassRole",
    ];

    /// Whether `policy` allows `request` against `iam` as it stands (every
    /// authorization the request needs).
    fn allowed(policy: &serde_json::Value, iam: &mut Account, request: &Request) -> bool {
        iam.authorize(request).iter().all(|auth| {
            let context: Vec<(&str, &str)> = auth
                .context
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            matches!(
                evaluate_identity(
                    policy,
                    &ApiRequest {
                        action: &auth.action,
                        resource: &auth.resource,
                        context: &context
                    }
                ),
                Decision::Allowed(_)
            )
        })
    }

    /// The most an attacker would put in a request of `action` on `name`
    /// (this instance's tag, the configured boundary and policy).
    fn request(action: &str, name: &str, path: &str, tag: Option<&str>) -> Request {
        let mut params: Vec<(&str, &str)> = vec![("RoleName", name)];
        match action {
            "CreateRole" => {
                params.extend([("Path", path), ("PermissionsBoundary", B)]);
                if let Some(t) = tag {
                    params.extend([
                        ("Tags.member.1.Key", INSTANCE_LABEL),
                        ("Tags.member.1.Value", t),
                    ]);
                }
            }
            "TagRole" => params.extend([
                ("Tags.member.1.Key", INSTANCE_LABEL),
                ("Tags.member.1.Value", "prod-acme"),
            ]),
            "UntagRole" => params.push(("TagKeys.member.1", "cost-center")),
            "PutRolePermissionsBoundary" => params.push(("PermissionsBoundary", B)),
            "AttachRolePolicy" | "DetachRolePolicy" => params.push(("PolicyArn", READ_ONLY)),
            "PassRole" => params.push(("PassedToService", "pods.eks.amazonaws.com")),
            _ => {}
        }
        Request::new(action, &params)
    }

    fn account_with(
        name: &str,
        path: &str,
        tags: &[(&str, &str)],
        boundary: Option<&str>,
    ) -> Account {
        Account {
            partition: "aws".into(),
            account: "111122223333".into(),
            roles: BTreeMap::from([(
                name.to_owned(),
                RoleState {
                    path: path.to_owned(),
                    tags: tags
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    boundary: boundary.map(str::to_owned),
                },
            )]),
        }
    }

    /// A role an attack aims at: name, path, tags, boundary, and what it is.
    type Target<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a str,
    );

    #[test]
    fn no_write_reaches_its_own_role_a_role_outside_the_path_or_an_untagged_role() {
        let s = settings(&format!(
            "  mode: pod-identity\n  permissionsBoundary: {B}\n  managedPolicyArns: [{READ_ONLY}]\n"
        ))
        .unwrap();
        let policy = iam_policy(&s, false);
        let path = "/runner-identity/prod-acme/";
        let ours = [(INSTANCE_LABEL, "prod-acme")];
        // The control: each write is allowed on a role of this instance.
        for action in WRITES {
            let mut iam = account_with("job", path, &ours, Some(B));
            let req = request(
                action,
                if *action == "CreateRole" {
                    "new"
                } else {
                    "job"
                },
                path,
                Some("prod-acme"),
            );
            let expected = !matches!(
                *action,
                "UntagRole" | "DeleteRolePermissionsBoundary" | "UpdateRoleDescription"
            );
            assert_eq!(
                allowed(&policy, &mut iam, &req),
                expected,
                "{action} on a role of this instance"
            );
        }
        let targets: [Target; 4] = [
            // Its own role, even placed on the path, tagged and bounded.
            (APPLY_ROLE, path, &ours, Some(B), "its own role"),
            // A role outside the path, tagged and bounded.
            ("other", "/", &ours, Some(B), "a role outside the path"),
            // An untagged role on the path, bounded or not.
            (
                "stray",
                path,
                &[],
                Some(B),
                "an untagged bounded role on the path",
            ),
            (
                "admin",
                path,
                &[],
                None,
                "an untagged unbounded role on the path",
            ),
        ];
        for (name, at, tags, boundary, what) in targets {
            for action in WRITES {
                let mut iam = account_with(name, at, tags, boundary);
                if *action == "CreateRole" {
                    iam.roles.clear();
                }
                let tag = (!tags.is_empty()).then_some("prod-acme");
                let req = request(action, name, at, tag);
                // The one residual: PassRole honours no resource tag (AWS),
                // so a role someone else puts on this instance's own path
                // can be passed to Pod Identity (docs/security.md).
                // And TagRole: the request that creates a role carries no
                // tag of the role, so a role placed by hand on the
                // instance's own path can be tagged (then managed) as the
                // instance's. Only this identity creates roles there.
                let residual =
                    matches!(*action, "PassRole" | "TagRole") && at == path && name != APPLY_ROLE;
                assert_eq!(
                    allowed(&policy, &mut iam, &req),
                    residual,
                    "{action} on {what}"
                );
            }
        }
        // A role of this instance given more than the boundary allows, or
        // handed to another instance.
        let mut iam = account_with("job", path, &ours, Some(B));
        for req in [
            Request::new(
                "AttachRolePolicy",
                &[
                    ("RoleName", "job"),
                    ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess"),
                ],
            ),
            Request::new(
                "PutRolePermissionsBoundary",
                &[
                    ("RoleName", "job"),
                    (
                        "PermissionsBoundary",
                        "arn:aws:iam::aws:policy/AdministratorAccess",
                    ),
                ],
            ),
            Request::new(
                "TagRole",
                &[
                    ("RoleName", "job"),
                    ("Tags.member.1.Key", INSTANCE_LABEL),
                    ("Tags.member.1.Value", "other-instance"),
                ],
            ),
            Request::new(
                "CreateRole",
                &[
                    ("RoleName", "x"),
                    ("Path", path),
                    ("Tags.member.1.Key", INSTANCE_LABEL),
                    ("Tags.member.1.Value", "prod-acme"),
                ],
            ),
            Request::new(
                "CreateRole",
                &[
                    ("RoleName", "y"),
                    ("Path", path),
                    (
                        "PermissionsBoundary",
                        "arn:aws:iam::111122223333:policy/wide",
                    ),
                    ("Tags.member.1.Key", INSTANCE_LABEL),
                    ("Tags.member.1.Value", "prod-acme"),
                ],
            ),
            Request::new(
                "PassRole",
                &[
                    ("RoleName", "job"),
                    ("PassedToService", "ec2.amazonaws.com"),
                ],
            ),
            // A tag key the configuration does not name (attribute-based
            // rules elsewhere may trust it).
            Request::new(
                "TagRole",
                &[
                    ("RoleName", "job"),
                    ("Tags.member.1.Key", INSTANCE_LABEL),
                    ("Tags.member.1.Value", "prod-acme"),
                    ("Tags.member.2.Key", "team"),
                    ("Tags.member.2.Value", "platform"),
                ],
            ),
        ] {
            assert!(!allowed(&policy, &mut iam, &req), "{req:?}");
        }
    }
}
