//! What IAM authorizes for one request, and with which condition keys: the
//! request context an identity policy is evaluated against.
//!
//! An identity policy is proven only as well as the request context it is
//! evaluated with: a condition on a key an action does not carry is never
//! satisfied in AWS (or always, for a negated operator), however it reads.
//! [`KEYS`] is AWS's Service Authorization Reference for the IAM role
//! actions `apply` and an attacker use, per action; the keys of the role
//! resource (`aws:ResourceTag/…`) are added from the role's state as IAM
//! holds it when the request arrives, not from the request.
//!
//! Two facts beyond the reference's tables, from AWS's IAM user guide:
//! `iam:PassRole` ignores resource tags ("Do not use the ResourceTag
//! condition key in a policy with the iam:PassRole action"), and a
//! `CreateRole` that carries tags is also authorized as `iam:TagRole`, with
//! the keys `TagRole` carries: the request's tags (the new role has none).

use std::collections::BTreeMap;

/// A source of condition keys for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `iam:PermissionsBoundary` from the request (`CreateRole`,
    /// `PutRolePermissionsBoundary`).
    RequestBoundary,
    /// `iam:PermissionsBoundary` of the role as IAM holds it.
    RoleBoundary,
    /// `aws:RequestTag/…` and `aws:TagKeys` from the request's tags.
    RequestTags,
    /// `aws:TagKeys` from the request's tag keys (`UntagRole`).
    TagKeys,
    /// `iam:PolicyARN` from the request.
    PolicyArn,
    /// `iam:PassedToService`.
    PassedToService,
    /// `aws:ResourceTag/…` of the role as IAM holds it.
    ResourceTags,
}

use Key::*;

/// The keys each IAM role action carries (Service Authorization Reference,
/// actions table and the `role` resource type).
pub const KEYS: &[(&str, &[Key])] = &[
    ("iam:CreateRole", &[RequestBoundary, RequestTags]),
    ("iam:TagRole", &[RequestTags, ResourceTags]),
    ("iam:UntagRole", &[TagKeys, ResourceTags]),
    ("iam:PutRolePolicy", &[RoleBoundary, ResourceTags]),
    ("iam:DeleteRolePolicy", &[RoleBoundary, ResourceTags]),
    (
        "iam:AttachRolePolicy",
        &[RoleBoundary, PolicyArn, ResourceTags],
    ),
    (
        "iam:DetachRolePolicy",
        &[RoleBoundary, PolicyArn, ResourceTags],
    ),
    (
        "iam:PutRolePermissionsBoundary",
        &[RequestBoundary, ResourceTags],
    ),
    (
        "iam:DeleteRolePermissionsBoundary",
        &[RoleBoundary, ResourceTags],
    ),
    ("iam:UpdateAssumeRolePolicy", &[ResourceTags]),
    ("iam:UpdateRole", &[ResourceTags]),
    ("iam:UpdateRoleDescription", &[ResourceTags]),
    ("iam:DeleteRole", &[ResourceTags]),
    ("iam:GetRole", &[ResourceTags]),
    ("iam:GetRolePolicy", &[ResourceTags]),
    ("iam:ListRolePolicies", &[ResourceTags]),
    ("iam:ListAttachedRolePolicies", &[ResourceTags]),
    ("iam:ListRoleTags", &[ResourceTags]),
    ("iam:PassRole", &[PassedToService]),
];

/// A role as IAM holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleState {
    /// The IAM path, `/` to `/…/`.
    pub path: String,
    pub tags: BTreeMap<String, String>,
    pub boundary: Option<String>,
}

/// One authorization IAM makes for a request: action, resource, context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub action: String,
    pub resource: String,
    pub context: Vec<(String, String)>,
}

/// One IAM request: its action (`CreateRole`) and query parameters, as the
/// SDK sends them (`RoleName`, `Tags.member.1.Key`, …).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub action: String,
    pub params: Vec<(String, String)>,
}

impl Request {
    /// A request from its action and parameters.
    pub fn new(action: &str, params: &[(&str, &str)]) -> Request {
        Request {
            action: action.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `Tags.member.N.Key`/`.Value` pairs.
    fn tags(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.params {
            if let Some(n) = k
                .strip_prefix("Tags.member.")
                .and_then(|r| r.strip_suffix(".Key"))
                && let Some(value) = self.get(&format!("Tags.member.{n}.Value"))
            {
                out.insert(v.clone(), value.to_owned());
            }
        }
        out
    }

    /// `TagKeys.member.N` values.
    fn tag_keys(&self) -> Vec<String> {
        self.params
            .iter()
            .filter(|(k, _)| k.starts_with("TagKeys.member."))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// IAM as seen by a sequence of requests: the roles it holds, by name.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub partition: String,
    pub account: String,
    pub roles: BTreeMap<String, RoleState>,
}

impl Account {
    /// The authorizations `request` needs, with their contexts, given the
    /// roles as they are now; then the request's effect on them (as if it
    /// succeeded).
    pub fn authorize(&mut self, request: &Request) -> Vec<Authorization> {
        let action = format!("iam:{}", request.action);
        let name = request.get("RoleName").unwrap_or_default().to_owned();
        let live = self.roles.get(&name).cloned();
        let path = match (&live, request.get("Path")) {
            (Some(l), _) => l.path.clone(),
            (None, Some(p)) => p.to_owned(),
            (None, None) => "/".to_owned(),
        };
        let resource = if name.is_empty() {
            request
                .get("OpenIDConnectProviderArn")
                .unwrap_or("*")
                .to_owned()
        } else {
            format!(
                "arn:{}:iam::{}:role{path}{name}",
                self.partition, self.account
            )
        };
        let mut out = vec![Authorization {
            context: context(&action, request, live.as_ref()),
            action: action.clone(),
            resource: resource.clone(),
        }];
        if action == "iam:CreateRole" && !request.tags().is_empty() {
            // The implied TagRole, of a role that has no tags yet.
            out.push(Authorization {
                context: context("iam:TagRole", request, None),
                action: "iam:TagRole".into(),
                resource,
            });
        }
        self.record(request, &name, path);
        out
    }

    fn record(&mut self, request: &Request, name: &str, path: String) {
        match request.action.as_str() {
            "CreateRole" => {
                self.roles.insert(
                    name.to_owned(),
                    RoleState {
                        path,
                        tags: request.tags(),
                        boundary: request.get("PermissionsBoundary").map(str::to_owned),
                    },
                );
            }
            "TagRole" => {
                if let Some(role) = self.roles.get_mut(name) {
                    role.tags.extend(request.tags());
                }
            }
            "UntagRole" => {
                if let Some(role) = self.roles.get_mut(name) {
                    for key in request.tag_keys() {
                        role.tags.remove(&key);
                    }
                }
            }
            "PutRolePermissionsBoundary" => {
                if let Some(role) = self.roles.get_mut(name) {
                    role.boundary = request.get("PermissionsBoundary").map(str::to_owned);
                }
            }
            "DeleteRolePermissionsBoundary" => {
                if let Some(role) = self.roles.get_mut(name) {
                    role.boundary = None;
                }
            }
            "DeleteRole" => {
                self.roles.remove(name);
            }
            _ => {}
        }
    }
}

/// The condition keys `action` carries for `request` on a role in `live`
/// state.
pub fn context(action: &str, request: &Request, live: Option<&RoleState>) -> Vec<(String, String)> {
    let keys = KEYS
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(action))
        .map_or(&[][..], |(_, k)| *k);
    let mut out = Vec::new();
    for key in keys {
        match key {
            RequestBoundary => out.extend(
                request
                    .get("PermissionsBoundary")
                    .map(|b| ("iam:PermissionsBoundary".to_owned(), b.to_owned())),
            ),
            RoleBoundary => out.extend(
                live.and_then(|l| l.boundary.clone())
                    .map(|b| ("iam:PermissionsBoundary".to_owned(), b)),
            ),
            RequestTags => {
                for (k, v) in request.tags() {
                    out.push((format!("aws:RequestTag/{k}"), v));
                    out.push(("aws:TagKeys".to_owned(), k));
                }
            }
            TagKeys => {
                for k in request.tag_keys() {
                    out.push(("aws:TagKeys".to_owned(), k));
                }
            }
            PolicyArn => out.extend(
                request
                    .get("PolicyArn")
                    .map(|p| ("iam:PolicyARN".to_owned(), p.to_owned())),
            ),
            PassedToService => out.extend(
                request
                    .get("PassedToService")
                    .map(|s| ("iam:PassedToService".to_owned(), s.to_owned())),
            ),
            ResourceTags => {
                for (k, v) in live.map(|l| l.tags.clone()).unwrap_or_default() {
                    out.push((format!("aws:ResourceTag/{k}"), v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            partition: "aws".into(),
            account: "1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn keys_follow_the_action_and_the_roles_state() {
        let mut iam = account();
        let create = Request::new(
            "CreateRole",
            &[
                ("RoleName", "r"),
                ("Path", "/p/"),
                ("PermissionsBoundary", "arn:aws:iam::1:policy/b"),
                ("Tags.member.1.Key", "team"),
                ("Tags.member.1.Value", "x"),
            ],
        );
        let auth = iam.authorize(&create);
        assert_eq!(auth.len(), 2, "CreateRole with tags is also TagRole");
        assert_eq!(auth[1].action, "iam:TagRole");
        assert_eq!(auth[0].resource, "arn:aws:iam::1:role/p/r");
        assert!(
            auth[0]
                .context
                .contains(&("aws:RequestTag/team".into(), "x".into()))
        );
        // The trust policy's update carries no boundary, only the role's tags.
        let update = iam.authorize(&Request::new(
            "UpdateAssumeRolePolicy",
            &[("RoleName", "r")],
        ));
        assert_eq!(
            update[0].context,
            vec![("aws:ResourceTag/team".to_owned(), "x".to_owned())]
        );
        // A policy write carries the role's boundary as IAM holds it.
        let put = iam.authorize(&Request::new("PutRolePolicy", &[("RoleName", "r")]));
        assert!(put[0].context.contains(&(
            "iam:PermissionsBoundary".into(),
            "arn:aws:iam::1:policy/b".into()
        )));
        // PassRole ignores the role's tags.
        let pass = iam.authorize(&Request::new(
            "PassRole",
            &[
                ("RoleName", "r"),
                ("PassedToService", "pods.eks.amazonaws.com"),
            ],
        ));
        assert_eq!(
            pass[0].context,
            vec![(
                "iam:PassedToService".to_owned(),
                "pods.eks.amazonaws.com".to_owned()
            )]
        );
        iam.authorize(&Request::new("DeleteRole", &[("RoleName", "r")]));
        assert!(iam.roles.is_empty());
    }
}
