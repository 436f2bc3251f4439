//! The Kubernetes rights of the identity that runs `apply` (and, read-only,
//! `diff` and `doctor`), as objects an administrator applies.
//!
//! RBAC cannot let an identity write Roles and RoleBindings in namespaces
//! that do not exist yet without letting it do so in every namespace: a
//! ClusterRoleBinding of `escalate`/`bind` on a role name lets its holder
//! write a Role of that name with every right into `kube-system` and bind it
//! to itself. So the rights are split in two:
//!
//! - **cluster-wide** (ClusterRole + ClusterRoleBinding): `list` of the
//!   planned kinds except Secrets (a list of Secrets returns their data), and
//!   get/create/patch/delete of the planned cluster-scoped objects by name
//!   (the namespaces, a shared namespace's admission policy);
//! - **per managed namespace** (one ClusterRole with no cluster-wide binding,
//!   bound by a RoleBinding in each planned namespace): the writes of the
//!   planned namespaced objects by name and `list` of Secrets; and a Role
//!   there holding exactly the rules of the Roles planned in that namespace
//!   (the hooks' rights and `extraRules`). RBAC lets an identity write and
//!   bind a Role whose rules it holds itself, so it needs neither `escalate`
//!   nor `bind`, and can grant nothing it does not hold. A RoleBinding
//!   grants its rules in its own namespace only, so nothing the identity
//!   writes or binds reaches a namespace outside this configuration.
//!
//! The planned Namespace objects are printed too, so that the bindings have
//! somewhere to live: adding a repository is an administrator's step
//! (`bootstrap` again), and `apply` names it when it is missing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use crate::config::{RunnerCredentials, Settings};
use crate::kvp;
use crate::plan::{Kind, Plan};

/// The rights of one identity, in the scopes they are bound at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Bound cluster-wide.
    pub cluster: Vec<PolicyRule>,
    /// Bound in each of [`Grants::namespaces`] only.
    pub namespaced: Vec<PolicyRule>,
    /// The namespaces the plan writes into, where [`Grants::namespaced`] is bound.
    pub bound_in: BTreeSet<String>,
    /// The namespaces the plan creates, as planned (printed before their
    /// bindings; a shared namespace is not the tool's and must exist).
    pub namespaces: Vec<Namespace>,
    /// The other planned objects the administrator owns
    /// ([`Kind::administrator_owned`]), as `apply` would write them (with
    /// its hash, so that `apply` finds them unchanged): namespace (empty for
    /// cluster-scoped ones) and object.
    pub owned: Vec<(String, Value)>,
    /// Source Secrets read by name (`githubCredentials.fromSecret`), per namespace.
    pub sources: BTreeMap<String, BTreeSet<String>>,
    /// Per namespace, the rules of the Roles planned there, held so that
    /// they can be written and bound without `escalate` or `bind`.
    pub held: BTreeMap<String, Vec<PolicyRule>>,
    /// The ARC controller's Deployment (namespace, name), read by name for
    /// its version.
    pub controller: Option<(String, String)>,
}

impl Grants {
    /// Every rule, cluster-wide ones first.
    pub fn rules(&self) -> impl Iterator<Item = &PolicyRule> {
        self.cluster.iter().chain(&self.namespaced)
    }

    /// Adds `other`'s rules (doctor's to diff's).
    pub fn extend(&mut self, other: Grants) {
        self.bound_in.extend(other.bound_in);
        self.held.extend(other.held);
        self.cluster.extend(other.cluster);
        self.namespaced.extend(other.namespaced);
        for (namespace, names) in other.sources {
            self.sources.entry(namespace).or_default().extend(names);
        }
        if other.controller.is_some() {
            self.controller = other.controller;
        }
    }
}

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

/// The planned Namespace objects, one per name.
fn planned_owned(plan: &Plan) -> Vec<(String, Value)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for repo in &plan.repositories {
        for object in repo.objects() {
            let kind = object.kind();
            if !kind.administrator_owned() || kind == Kind::Namespace {
                continue;
            }
            let meta = object.metadata();
            let namespace = meta.namespace.clone().unwrap_or_default();
            if seen.insert((kind, namespace.clone(), meta.name.clone())) {
                let value =
                    crate::compare::with_hash(serde_json::to_value(object).unwrap_or_default());
                out.push((namespace, value));
            }
        }
    }
    out
}

fn planned_namespaces(plan: &Plan) -> Vec<Namespace> {
    let mut seen = BTreeSet::new();
    plan.repositories
        .iter()
        .filter_map(|r| r.namespace.clone())
        .filter(|ns| seen.insert(ns.metadata.name.clone()))
        .collect()
}

pub(super) fn rule(
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

/// What `apply` needs (`readonly`: what `diff` needs) for `plan`, and the
/// source Secrets `githubCredentials.fromSecret` of `settings` names.
pub fn apply_grants(settings: &Settings, plan: &Plan, readonly: bool) -> Grants {
    let mut grants = apply_grants_of(plan, readonly);
    let controller = &settings.config.kubernetes.chart.controller;
    grants.controller = Some((controller.namespace.clone(), controller.deployment.clone()));
    for source in
        settings
            .repositories
            .iter()
            .filter_map(|r| match r.github_credentials.as_ref()? {
                RunnerCredentials::FromSecret(from) => Some(from),
                _ => None,
            })
    {
        // `apply` copies the source Secret's keys (read by name, in its namespace).
        grants
            .sources
            .entry(source.namespace.clone())
            .or_default()
            .insert(source.name.clone());
    }
    grants
}

/// What `apply` needs (`readonly`: what `diff` needs) for `plan`.
pub fn apply_grants_of(plan: &Plan, readonly: bool) -> Grants {
    let names = planned_names(plan);
    let mut grants = Grants {
        namespaces: planned_namespaces(plan),
        owned: if readonly {
            Vec::new()
        } else {
            planned_owned(plan)
        },
        bound_in: plan
            .repositories
            .iter()
            .map(|r| r.names.namespace.clone())
            .collect(),
        ..Default::default()
    };
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
        if readonly && kind == Kind::Secret {
            // Reading a Secret is reading its data: the read-only identity
            // (handed to pull requests) gets none; `diff` says it did not
            // compare them.
            continue;
        }
        let ar = kind.api_resource();
        let list = rule(&ar.group, &[&ar.plural], &["list"], None);
        if kind.administrator_owned() && !readonly {
            // What confines the pods this identity may start is the
            // administrator's (printed below): it is only read, in the list.
            grants.cluster.push(list);
            continue;
        }
        let named = rule(&ar.group, &[&ar.plural], write, Some(planned));
        if kind.cluster_scoped() {
            grants.cluster.extend([list, named]);
        } else if kind == Kind::Secret {
            // A list returns the Secrets' data: only where the tool writes them.
            grants.namespaced.extend([list, named]);
        } else {
            grants.cluster.push(list);
            grants.namespaced.push(named);
        }
    }
    if !readonly {
        // RBAC's escalation check: writing a Role, and binding it, needs
        // `escalate` and `bind`, or its rules held in that namespace.
        for repo in &plan.repositories {
            let held = grants.held.entry(repo.names.namespace.clone()).or_default();
            let rules = repo
                .scale_set
                .iter()
                .flat_map(|s| s.role.rules.iter().flatten());
            for r in rules {
                if !held.contains(r) {
                    held.push(r.clone());
                }
            }
        }
        // A rule every namespace already holds is not granted twice.
        let held = &grants.held;
        grants.namespaced.retain(|rule| {
            !grants.bound_in.iter().all(|ns| {
                held.get(ns)
                    .is_some_and(|rules| rules.iter().any(|h| covers(h, rule)))
            })
        });
    }
    grants
}

/// Whether `wide` grants everything `narrow` does.
fn covers(wide: &PolicyRule, narrow: &PolicyRule) -> bool {
    let all = |w: Option<&[String]>, n: Option<&[String]>| {
        let w = w.unwrap_or_default();
        w.iter().any(|x| x == "*") || n.unwrap_or_default().iter().all(|x| w.contains(x))
    };
    all(wide.api_groups.as_deref(), narrow.api_groups.as_deref())
        && all(wide.resources.as_deref(), narrow.resources.as_deref())
        && all(Some(&wide.verbs), Some(&narrow.verbs))
        && match (&wide.resource_names, &narrow.resource_names) {
            (None, _) => true,
            (Some(w), Some(n)) => n.iter().all(|x| w.contains(x)),
            (Some(_), None) => false,
        }
}

/// What `doctor` needs besides `diff`'s rights: reads of scale sets, hook
/// templates, ServiceAccounts and RBAC bindings everywhere; in the managed
/// namespaces only, the Helm release (Secrets) and a token of each planned
/// job ServiceAccount (by name), minted for an audience nothing accepts.
pub fn doctor_grants(plan: &Plan) -> Grants {
    let names = planned_names(plan);
    let mut grants = Grants {
        cluster: vec![
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
            rule(
                "rbac.authorization.k8s.io",
                &[
                    "roles",
                    "rolebindings",
                    "clusterroles",
                    "clusterrolebindings",
                ],
                &["list"],
                None,
            ),
            rule(
                "authorization.k8s.io",
                &["subjectaccessreviews"],
                &["create"],
                None,
            ),
        ],
        namespaced: vec![rule("", &["secrets"], &["list"], None)],
        ..Default::default()
    };
    // A group's jobs against ARC's record of them (doctor::group::jobs): in
    // the groups' namespaces only (pod specs carry the jobs' `env:`).
    for names in plan.repositories.iter().map(|r| &r.names) {
        if names.group.is_some() {
            grants.held.insert(
                names.namespace.clone(),
                vec![
                    rule("", &["pods"], &["list"], None),
                    rule("batch", &["jobs"], &["list"], None),
                    rule("actions.github.com", &["ephemeralrunners"], &["list"], None),
                ],
            );
        }
    }
    let jobs: BTreeSet<String> = plan
        .repositories
        .iter()
        .map(|r| r.names.job_service_account.clone())
        .collect();
    if names.contains_key(&Kind::ServiceAccount) && !jobs.is_empty() {
        grants.namespaced.push(rule(
            "",
            &["serviceaccounts/token"],
            &["create"],
            Some(&jobs),
        ));
    }
    grants
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

/// The name of the ClusterRole bound in each managed namespace.
pub fn namespaced_role_name(name: &str) -> String {
    format!("{name}-namespace")
}

/// The name of the Role holding the planned Roles' rules in a namespace.
pub fn held_role_name(name: &str) -> String {
    format!("{name}-hooks")
}

/// The name of the Role that reads the ARC controller's Deployment.
pub fn controller_role_name(name: &str) -> String {
    format!("{name}-arc-controller")
}

/// The name of the Role that reads the source Secrets.
pub fn source_role_name(name: &str) -> String {
    format!("{name}-source")
}

fn typed(value: Result<Value, serde_json::Error>, api_version: &str, kind: &str) -> Value {
    let mut v = value.unwrap_or_default();
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    v
}

const RBAC: &str = "rbac.authorization.k8s.io/v1";

/// The objects that grant `grants` to the ServiceAccount `name` in
/// `namespace`, in the order `kubectl apply -f` needs them: the
/// ServiceAccount, the cluster-wide ClusterRole and its binding, the
/// per-namespace ClusterRole, then each planned namespace followed by its
/// RoleBinding, then the source Secrets' Roles.
pub fn kubernetes_objects(name: &str, namespace: &str, grants: &Grants) -> Vec<Value> {
    let subject = || Subject {
        kind: "ServiceAccount".into(),
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Default::default()
    };
    let role_ref = |kind: &str, role: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: role.to_owned(),
    };
    let mut out = vec![
        typed(
            serde_json::to_value(ServiceAccount {
                metadata: meta(name, Some(namespace)),
                ..Default::default()
            }),
            "v1",
            "ServiceAccount",
        ),
        typed(
            serde_json::to_value(ClusterRole {
                metadata: meta(name, None),
                rules: Some(grants.cluster.clone()),
                ..Default::default()
            }),
            RBAC,
            "ClusterRole",
        ),
        typed(
            serde_json::to_value(ClusterRoleBinding {
                metadata: meta(name, None),
                role_ref: role_ref("ClusterRole", name),
                subjects: Some(vec![subject()]),
            }),
            RBAC,
            "ClusterRoleBinding",
        ),
    ];
    // A shared namespace's admission policy, before any namespace's rights.
    out.extend(
        grants
            .owned
            .iter()
            .filter(|(at, _)| at.is_empty())
            .map(|(_, object)| object.clone()),
    );
    let per_namespace = namespaced_role_name(name);
    if !grants.namespaced.is_empty() {
        out.push(typed(
            serde_json::to_value(ClusterRole {
                metadata: meta(&per_namespace, None),
                rules: Some(grants.namespaced.clone()),
                ..Default::default()
            }),
            RBAC,
            "ClusterRole",
        ));
        for ns_name in &grants.bound_in {
            let planned = grants
                .namespaces
                .iter()
                .find(|n| n.metadata.name.as_ref() == Some(ns_name));
            if let Some(ns) = planned {
                out.push(crate::compare::with_hash(
                    serde_json::to_value(ns).unwrap_or_default(),
                ));
            }
            out.extend(
                grants
                    .owned
                    .iter()
                    .filter(|(at, _)| at == ns_name)
                    .map(|(_, object)| object.clone()),
            );
            out.push(typed(
                serde_json::to_value(RoleBinding {
                    metadata: meta(name, Some(ns_name.as_str())),
                    role_ref: role_ref("ClusterRole", &per_namespace),
                    subjects: Some(vec![subject()]),
                }),
                RBAC,
                "RoleBinding",
            ));
            if let Some(rules) = grants.held.get(ns_name) {
                let held = held_role_name(name);
                out.push(typed(
                    serde_json::to_value(Role {
                        metadata: meta(&held, Some(ns_name.as_str())),
                        rules: Some(rules.clone()),
                    }),
                    RBAC,
                    "Role",
                ));
                out.push(typed(
                    serde_json::to_value(RoleBinding {
                        metadata: meta(&held, Some(ns_name.as_str())),
                        role_ref: role_ref("Role", &held),
                        subjects: Some(vec![subject()]),
                    }),
                    RBAC,
                    "RoleBinding",
                ));
            }
        }
    }
    // A Role in one namespace, bound to the identity there.
    let bound_role = |role: &str, ns: &str, rules: Vec<PolicyRule>| {
        [
            typed(
                serde_json::to_value(Role {
                    metadata: meta(role, Some(ns)),
                    rules: Some(rules),
                }),
                RBAC,
                "Role",
            ),
            typed(
                serde_json::to_value(RoleBinding {
                    metadata: meta(role, Some(ns)),
                    role_ref: role_ref("Role", role),
                    subjects: Some(vec![subject()]),
                }),
                RBAC,
                "RoleBinding",
            ),
        ]
    };
    if let Some((ns, deployment)) = &grants.controller {
        let names = BTreeSet::from([deployment.clone()]);
        out.extend(bound_role(
            &controller_role_name(name),
            ns,
            vec![rule("apps", &["deployments"], &["get"], Some(&names))],
        ));
    }
    let source = source_role_name(name);
    for (ns, names) in &grants.sources {
        out.extend(bound_role(
            &source,
            ns,
            vec![rule("", &["secrets"], &["get"], Some(names))],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        let text = format!(
            "github: {{owner: acme}}\nrepositories: [api, web]\ncluster: {{name: prod, region: eu-west-1, oidcIssuer: https://o.example/id/1}}\n\
             aws:\n  accountId: '111122223333'\n  mode: irsa\n  rolePath: /ci/\n  permissionsBoundary: arn:aws:iam::111122223333:policy/b\n{extra}"
        );
        crate::config::parse(&text, std::path::Path::new("t.yaml")).unwrap()
    }

    fn plan(s: &Settings) -> Plan {
        crate::plan::plan(s, &crate::templates::Templates::load(None).unwrap()).unwrap()
    }

    /// Whether a rule grants `verb` on `resource` (any name).
    fn grants(rules: &[PolicyRule], resource: &str, verb: &str) -> bool {
        rules.iter().any(|r| {
            r.resources
                .as_deref()
                .is_some_and(|rs| rs.iter().any(|x| x == resource))
                && r.verbs.iter().any(|v| v == verb)
        })
    }

    #[test]
    fn role_writes_and_secret_reads_are_never_bound_cluster_wide() {
        let s = settings("");
        let g = apply_grants(&s, &plan(&s), false);
        // No escalate or bind anywhere: the planned Roles' rules are held
        // in their namespaces instead.
        for verb in ["escalate", "bind"] {
            assert!(!grants(&g.cluster, "roles", verb) && !grants(&g.namespaced, "roles", verb));
        }
        let planned = &plan(&s).repositories[0];
        assert_eq!(
            g.held[&planned.names.namespace],
            planned
                .scale_set
                .as_ref()
                .unwrap()
                .role
                .rules
                .clone()
                .unwrap()
        );
        for (resource, verb) in [
            ("roles", "patch"),
            ("rolebindings", "patch"),
            ("rolebindings", "create"),
            ("serviceaccounts", "patch"),
        ] {
            assert!(!grants(&g.cluster, resource, verb), "{verb} {resource}");
            assert!(grants(&g.namespaced, resource, verb), "{verb} {resource}");
        }
        // Secrets: nothing at all cluster-wide (a list returns their data).
        assert!(!g.cluster.iter().any(|r| {
            r.resources
                .as_deref()
                .is_some_and(|rs| rs.iter().any(|x| x.starts_with("secrets")))
        }));
        // What confines its pods (Pod Security labels, the instance
        // metadata policy) is only listed, never written: the administrator
        // applies it, as planned, from bootstrap's output.
        for resource in ["namespaces", "networkpolicies"] {
            for verb in ["create", "patch", "update", "delete"] {
                assert!(
                    !grants(&g.cluster, resource, verb) && !grants(&g.namespaced, resource, verb),
                    "{verb} {resource}"
                );
            }
            assert!(grants(&g.cluster, resource, "list"), "{resource}");
        }
        let policies: Vec<&str> = g
            .owned
            .iter()
            .filter_map(|(_, o)| {
                (o["kind"] == "NetworkPolicy")
                    .then_some(o["metadata"]["namespace"].as_str())
                    .flatten()
            })
            .collect();
        assert_eq!(policies.len(), 2, "{:?}", g.owned);
        // Printed as apply writes them: with its hash, so apply finds them unchanged.
        assert!(
            g.owned.iter().all(|(_, o)| o["metadata"]["annotations"]
                .as_object()
                .is_some_and(|a| a.keys().any(|k| k.ends_with("hash")))),
            "{:?}",
            g.owned
        );
    }

    #[test]
    fn every_namespace_gets_its_binding_after_the_namespace_itself() {
        let s = settings("");
        let g = apply_grants(&s, &plan(&s), false);
        let objects = kubernetes_objects("ri", "home", &g);
        let kinds: Vec<(String, String, String)> = objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or_default().to_owned(),
                    o["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        // One ClusterRoleBinding, of the cluster-wide role only.
        let bindings: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRoleBinding")
            .collect();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0]["roleRef"]["name"], "ri");
        for ns in &g.namespaces {
            let name = ns.metadata.name.clone().unwrap();
            let at_ns = kinds
                .iter()
                .position(|k| k.0 == "Namespace" && k.2 == name)
                .unwrap();
            let at_binding = kinds
                .iter()
                .position(|k| k.0 == "RoleBinding" && k.1 == name)
                .unwrap();
            assert!(at_ns < at_binding, "{kinds:?}");
            assert_eq!(
                objects[at_binding]["roleRef"],
                json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ri-namespace"})
            );
        }
    }

    #[test]
    fn a_from_secret_source_is_readable_by_name_in_its_namespace_only() {
        let s = settings(
            "kubernetes:\n  githubCredentials:\n    fromSecret: {namespace: arc-systems, name: org-app}\n",
        );
        let g = apply_grants(&s, &plan(&s), false);
        assert_eq!(
            g.sources,
            BTreeMap::from([(
                "arc-systems".to_owned(),
                BTreeSet::from(["org-app".to_owned()])
            )])
        );
        let objects = kubernetes_objects("ri", "home", &g);
        let role = objects
            .iter()
            .find(|o| o["kind"] == "Role" && o["metadata"]["name"] == "ri-source")
            .unwrap();
        assert_eq!(role["metadata"]["namespace"], "arc-systems");
        assert_eq!(role["rules"][0]["resourceNames"], json!(["org-app"]));
        assert_eq!(role["rules"][0]["verbs"], json!(["get"]));
    }

    #[test]
    fn doctor_lists_pods_and_runners_only_in_the_groups_namespaces() {
        let text = "github: {owner: acme, ownerId: 9}\nrepositories: [{name: api, id: 1}, {name: web, id: 2}, docs]\n\
                    groups: [{name: platform, repositories: [api, web]}]\n\
                    cluster: {name: prod, region: eu-west-1, oidcIssuer: https://o.example/id/1}\n\
                    aws: {accountId: '111122223333', mode: irsa, permissionsBoundary: arn:aws:iam::111122223333:policy/b}\n";
        let s = crate::config::parse(text, std::path::Path::new("t.yaml")).unwrap();
        let g = doctor_grants(&plan(&s));
        for resource in ["pods", "jobs", "ephemeralrunners"] {
            assert!(!grants(&g.cluster, resource, "list"), "{resource}");
            assert!(!grants(&g.namespaced, resource, "list"), "{resource}");
            assert!(
                grants(&g.held["gha-platform"], resource, "list"),
                "{resource}"
            );
        }
        assert_eq!(g.held.keys().collect::<Vec<_>>(), ["gha-platform"]);
        // Without groups, none of them.
        let g = doctor_grants(&plan(&settings("")));
        assert!(g.held.is_empty());
    }

    #[test]
    fn doctor_mints_tokens_only_for_planned_job_accounts_in_managed_namespaces() {
        let s = settings("");
        let p = plan(&s);
        let g = doctor_grants(&p);
        assert!(!grants(&g.cluster, "serviceaccounts/token", "create"));
        assert!(!grants(&g.cluster, "secrets", "list"));
        let token = g
            .namespaced
            .iter()
            .find(|r| r.resources.as_deref() == Some(&["serviceaccounts/token".to_owned()][..]))
            .unwrap();
        let jobs: Vec<String> = p
            .repositories
            .iter()
            .map(|r| r.names.job_service_account.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(token.resource_names.clone().unwrap(), jobs);
    }
}
