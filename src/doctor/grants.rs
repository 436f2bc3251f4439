//! Rights that reach past a repository's own namespace, read from the
//! cluster's RBAC objects (four lists per run, not an access review per
//! pair of namespaces):
//! - an identity bound to one of `bootstrap`'s roles (the identity that runs
//!   `apply`) that may write Roles or RoleBindings, or escalate or bind,
//!   outside the namespaces runner-identity manages: it can grant itself any
//!   right there (a ClusterRoleBinding of such rules reaches `kube-system`);
//! - a runner ServiceAccount that may create pods or exec into them in a
//!   namespace other than its own: it can start a pod as another
//!   repository's job ServiceAccount, or read its token.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::{Finding, Severity, object};
use crate::kvp::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::names::NamespacedName;

/// The label value `bootstrap` puts on its objects.
const BOOTSTRAP: &str = "runner-identity-bootstrap";

/// The cluster's RBAC objects and which namespaces runner-identity manages.
#[derive(Debug, Default)]
pub struct Rbac {
    cluster_roles: BTreeMap<String, ClusterRole>,
    roles: BTreeMap<NamespacedName, Role>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    bindings: Vec<RoleBinding>,
    managed: BTreeSet<String>,
}

/// One binding of a subject: where it applies (`None`: every namespace),
/// which binding, and the rules it grants.
struct Grant<'a> {
    namespace: Option<&'a str>,
    binding: String,
    rules: &'a [PolicyRule],
}

impl Rbac {
    /// Lists ClusterRoles, Roles, their bindings and the namespaces; a list
    /// that fails is a finding, and the checks are left out.
    pub async fn load(client: &Client) -> Result<Rbac, Finding> {
        let params = ListParams::default();
        let failed = |what: &str, e: kube::Error| {
            Finding::new(
                Severity::Warning,
                "rbac",
                format!("{what}/*"),
                format!(
                    "cannot list {what}s, so rights that reach other namespaces were not checked: {e}"
                ),
                "grant doctor list on roles, rolebindings, clusterroles and clusterrolebindings \
                 (runner-identity bootstrap --out-dir: kubernetes-readonly.yaml)",
            )
        };
        let (cr, r, crb, rb, ns) = (
            Api::<ClusterRole>::all(client.clone()),
            Api::<Role>::all(client.clone()),
            Api::<ClusterRoleBinding>::all(client.clone()),
            Api::<RoleBinding>::all(client.clone()),
            Api::<Namespace>::all(client.clone()),
        );
        let (cluster_roles, roles, cluster_bindings, bindings, namespaces) = futures::join!(
            cr.list(&params),
            r.list(&params),
            crb.list(&params),
            rb.list(&params),
            ns.list_metadata(&params),
        );
        let cluster_roles = cluster_roles.map_err(|e| failed("ClusterRole", e))?;
        let roles = roles.map_err(|e| failed("Role", e))?;
        let cluster_bindings = cluster_bindings.map_err(|e| failed("ClusterRoleBinding", e))?;
        let bindings = bindings.map_err(|e| failed("RoleBinding", e))?;
        // Without the namespaces, every namespace counts as unmanaged.
        let managed = namespaces
            .map(|list| {
                list.items
                    .into_iter()
                    .filter(|n| {
                        n.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
                    })
                    .map(|n| n.name_any())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Rbac {
            cluster_roles: cluster_roles
                .items
                .into_iter()
                .map(|r| (r.name_any(), r))
                .collect(),
            roles: roles
                .items
                .into_iter()
                .map(|r| {
                    (
                        NamespacedName::new(r.namespace().unwrap_or_default(), r.name_any()),
                        r,
                    )
                })
                .collect(),
            cluster_bindings: cluster_bindings.items,
            bindings: bindings.items,
            managed,
        })
    }

    /// The rules a role reference names (in `namespace` for a Role).
    fn rules(&self, role: &RoleRef, namespace: &str) -> &[PolicyRule] {
        let rules = match role.kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .get(&role.name)
                .and_then(|r| r.rules.as_ref()),
            _ => self
                .roles
                .get(&NamespacedName::new(namespace, &role.name))
                .and_then(|r| r.rules.as_ref()),
        };
        rules.map_or(&[], Vec::as_slice)
    }

    /// Whether a role reference names one of `bootstrap`'s roles.
    fn is_bootstrap(&self, role: &RoleRef, namespace: &str) -> bool {
        let labels = match role.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role.name).map(|r| r.labels()),
            _ => self
                .roles
                .get(&NamespacedName::new(namespace, &role.name))
                .map(|r| r.labels()),
        };
        labels
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .map(String::as_str)
            == Some(BOOTSTRAP)
    }

    /// Every grant that reaches the ServiceAccount `namespace/name` (by
    /// name, or through the groups every ServiceAccount is in).
    fn grants_of(&self, namespace: &str, name: &str) -> Vec<Grant<'_>> {
        let mut out = Vec::new();
        for b in &self.cluster_bindings {
            if names(b.subjects.as_deref(), namespace, name) {
                out.push(Grant {
                    namespace: None,
                    binding: object("ClusterRoleBinding", "", &b.name_any()),
                    rules: self.rules(&b.role_ref, ""),
                });
            }
        }
        for b in &self.bindings {
            let at = b.metadata.namespace.as_deref().unwrap_or_default();
            if names(b.subjects.as_deref(), namespace, name) {
                out.push(Grant {
                    namespace: Some(at),
                    binding: object("RoleBinding", at, &b.name_any()),
                    rules: self.rules(&b.role_ref, at),
                });
            }
        }
        out
    }

    /// The ServiceAccounts bound to one of `bootstrap`'s roles.
    fn apply_identities(&self) -> BTreeSet<NamespacedName> {
        let bound = self
            .cluster_bindings
            .iter()
            .filter(|b| self.is_bootstrap(&b.role_ref, ""))
            .flat_map(|b| b.subjects.iter().flatten())
            .chain(
                self.bindings
                    .iter()
                    .filter(|b| {
                        self.is_bootstrap(
                            &b.role_ref,
                            b.metadata.namespace.as_deref().unwrap_or_default(),
                        )
                    })
                    .flat_map(|b| b.subjects.iter().flatten()),
            );
        bound
            .filter(|s| s.kind == "ServiceAccount")
            .map(|s| NamespacedName::new(s.namespace.clone().unwrap_or_default(), &s.name))
            .collect()
    }

    /// An apply identity that may write RBAC outside the managed namespaces.
    pub fn apply_identity_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for NamespacedName { namespace, name } in self.apply_identities() {
            for grant in self.grants_of(&namespace, &name) {
                let outside = grant.namespace.is_none_or(|n| !self.managed.contains(n));
                let Some(right) = rbac_write(grant.rules).filter(|_| outside) else {
                    continue;
                };
                let scope = grant.namespace.map_or_else(
                    || "in every namespace".to_owned(),
                    |n| format!("in namespace {n}, which runner-identity does not manage"),
                );
                out.push(Finding::new(
                    Severity::Error,
                    "apply-identity",
                    object("ServiceAccount", &namespace, &name),
                    format!(
                        "the identity that runs apply may {right} {scope} ({}): it can write a Role \
                         with every right there (kube-system included) and bind it to itself",
                        grant.binding
                    ),
                    format!(
                        "apply what `runner-identity bootstrap -c <config>` prints today (these rights \
                         are bound per managed namespace), then `kubectl delete {}`",
                        grant.binding.replacen('/', " ", 1).replacen('/', " -n ", 1)
                    ),
                ));
            }
        }
        out
    }

    /// A runner that may create pods, or exec into them, outside its own
    /// namespace.
    pub fn runner_findings(&self, namespace: &str, runner: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        for grant in self.grants_of(namespace, runner) {
            if grant.namespace == Some(namespace) {
                continue;
            }
            let Some(right) = grant.rules.iter().find_map(pod_control) else {
                continue;
            };
            let scope = grant.namespace.map_or_else(
                || "in every namespace".to_owned(),
                |n| format!("in namespace {n}"),
            );
            out.push(Finding::new(
                Severity::Error,
                "runner-reach",
                object("ServiceAccount", namespace, runner),
                format!(
                    "the runner may {right} {scope} ({}): it can start a pod as another \
                     repository's job ServiceAccount there, or read its token, and act as its IAM role",
                    grant.binding
                ),
                format!(
                    "remove the runner from {} (a runner needs the hooks' rights in its own \
                     namespace only)",
                    grant.binding
                ),
            ));
        }
        out
    }
}

/// Whether `subjects` name the ServiceAccount, or a group it is in.
fn names(subjects: Option<&[Subject]>, namespace: &str, name: &str) -> bool {
    let own_group = format!("system:serviceaccounts:{namespace}");
    subjects
        .unwrap_or_default()
        .iter()
        .any(|s| match s.kind.as_str() {
            "ServiceAccount" => s.name == name && s.namespace.as_deref() == Some(namespace),
            "Group" => {
                matches!(
                    s.name.as_str(),
                    "system:serviceaccounts" | "system:authenticated"
                ) || s.name == own_group
            }
            "User" => s.name == format!("system:serviceaccount:{namespace}:{name}"),
            _ => false,
        })
}

fn any(list: &[String], wanted: &[&str]) -> bool {
    list.iter()
        .any(|x| x == "*" || wanted.contains(&x.as_str()))
}

fn rule_grants(rule: &PolicyRule, group: &str, resources: &[&str], verbs: &[&str]) -> bool {
    any(rule.api_groups.as_deref().unwrap_or_default(), &[group])
        && any(rule.resources.as_deref().unwrap_or_default(), resources)
        && any(&rule.verbs, verbs)
}

/// The strongest RBAC write `rules` grant, if any (resource names do not
/// make it safe: a Role of the granted name may hold any rule).
fn rbac_write(rules: &[PolicyRule]) -> Option<&'static str> {
    let rbac = "rbac.authorization.k8s.io";
    let granted = |resources: &[&str], verbs: &[&str]| {
        rules.iter().any(|r| rule_grants(r, rbac, resources, verbs))
    };
    if granted(&["roles", "clusterroles"], &["escalate"]) {
        Some("escalate Roles")
    } else if granted(&["roles", "clusterroles"], &["bind"]) {
        Some("bind Roles")
    } else if granted(&["roles", "rolebindings"], &["create", "patch", "update"]) {
        Some("write Roles or RoleBindings")
    } else {
        None
    }
}

/// The pod control a rule grants, if any.
fn pod_control(rule: &PolicyRule) -> Option<&'static str> {
    if rule_grants(rule, "", &["pods"], &["create"]) {
        Some("create pods")
    } else if rule_grants(rule, "", &["pods/exec", "pods/attach"], &["create", "get"]) {
        Some("exec into pods")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        PolicyRule {
            api_groups: Some(own(groups)),
            resources: Some(own(resources)),
            verbs: own(verbs),
            ..Default::default()
        }
    }

    #[test]
    fn rules_that_reach_rbac_or_pods_are_recognised_with_wildcards() {
        let rbac = "rbac.authorization.k8s.io";
        assert_eq!(
            rbac_write(&[rule(&[rbac], &["roles"], &["escalate", "bind"])]),
            Some("escalate Roles")
        );
        assert_eq!(
            rbac_write(&[rule(&["*"], &["*"], &["*"])]),
            Some("escalate Roles")
        );
        assert_eq!(
            rbac_write(&[rule(&[rbac], &["rolebindings"], &["patch"])]),
            Some("write Roles or RoleBindings")
        );
        assert_eq!(
            rbac_write(&[rule(&[rbac], &["roles"], &["get", "list"])]),
            None
        );
        assert_eq!(rbac_write(&[rule(&[""], &["roles"], &["escalate"])]), None);
        assert_eq!(
            pod_control(&rule(&[""], &["pods"], &["create"])),
            Some("create pods")
        );
        assert_eq!(
            pod_control(&rule(&[""], &["pods/exec"], &["get"])),
            Some("exec into pods")
        );
        assert_eq!(pod_control(&rule(&[""], &["pods"], &["get", "list"])), None);
        assert_eq!(pod_control(&rule(&["apps"], &["pods"], &["create"])), None);
    }

    #[test]
    fn groups_every_service_account_is_in_count_as_the_account() {
        let group = |n: &str| Subject {
            kind: "Group".into(),
            name: n.into(),
            ..Default::default()
        };
        assert!(names(
            Some(&[group("system:serviceaccounts:ns-a")]),
            "ns-a",
            "r"
        ));
        assert!(!names(
            Some(&[group("system:serviceaccounts:ns-b")]),
            "ns-a",
            "r"
        ));
        assert!(names(Some(&[group("system:authenticated")]), "ns-a", "r"));
        let other = Subject {
            kind: "ServiceAccount".into(),
            name: "r".into(),
            namespace: Some("ns-b".into()),
            ..Default::default()
        };
        assert!(!names(Some(&[other]), "ns-a", "r"));
    }
}
