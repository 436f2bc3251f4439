//! The rights runner-container-hooks check with SelfSubjectAccessReview,
//! shared by the planned Role and `verify runner`.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::config::{Hooks, RuleConfig};

/// One right the runner-container-hooks check with SelfSubjectAccessReview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookRight {
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub verbs: &'static [&'static str],
}

impl HookRight {
    /// `resource` or `resource/subresource`, as written in a Role rule.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

const CORE_RIGHTS: [HookRight; 4] = [
    HookRight {
        group: "",
        resource: "pods",
        subresource: "",
        verbs: &["get", "list", "create", "delete"],
    },
    HookRight {
        group: "",
        resource: "pods",
        subresource: "exec",
        verbs: &["get", "create"],
    },
    HookRight {
        group: "",
        resource: "pods",
        subresource: "log",
        verbs: &["get", "list", "watch"],
    },
    HookRight {
        group: "",
        resource: "secrets",
        subresource: "",
        verbs: &["get", "list", "create", "delete"],
    },
];
const JOBS_RIGHT: HookRight = HookRight {
    group: "batch",
    resource: "jobs",
    subresource: "",
    verbs: &["get", "list", "create", "delete"],
};

/// A runner-container-hooks release and the rights it checks before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookVersion {
    /// `v0.7.0`, `v0.8`.
    pub name: &'static str,
    pub rights: Vec<HookRight>,
}

/// The hooks releases a flavour may run, the one the runner image ships
/// first: `kubernetes` is v0.7.0 in the image's `/home/runner/k8s` (it checks
/// batch/jobs) or v0.8 (which no longer does); `kubernetes-novolume` is v0.8
/// in `/home/runner/k8s-novolume`. A Role that satisfies any of them is
/// accepted; the planned Role satisfies all ([`hook_rights`]).
pub fn hook_versions(flavour: Hooks) -> Vec<HookVersion> {
    let v08 = HookVersion {
        name: "v0.8",
        rights: CORE_RIGHTS.to_vec(),
    };
    match flavour {
        Hooks::Kubernetes => vec![
            HookVersion {
                name: "v0.7.0",
                rights: hook_rights(flavour),
            },
            v08,
        ],
        Hooks::KubernetesNovolume => vec![v08],
    }
}

/// Every (right, verb) that some release of `versions` checks, each once.
pub fn hook_asks(versions: &[HookVersion]) -> Vec<(HookRight, &'static str)> {
    let mut rights: Vec<HookRight> = Vec::new();
    for right in versions.iter().flat_map(|v| &v.rights) {
        if !rights.contains(right) {
            rights.push(*right);
        }
    }
    rights
        .iter()
        .flat_map(|r| r.verbs.iter().map(move |v| (*r, *v)))
        .collect()
}

/// The rights the hooks of `flavour` need in the runner's namespace: what
/// every release the flavour may run checks.
pub fn hook_rights(flavour: Hooks) -> Vec<HookRight> {
    let mut rights = CORE_RIGHTS.to_vec();
    if flavour == Hooks::Kubernetes {
        rights.push(JOBS_RIGHT);
    }
    rights
}

pub(super) fn role_rules(flavour: Hooks, extra: &[RuleConfig]) -> Vec<PolicyRule> {
    let hooks = hook_rights(flavour).into_iter().map(|r| PolicyRule {
        api_groups: Some(vec![r.group.to_owned()]),
        resources: Some(vec![r.resource_path()]),
        verbs: r.verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    });
    let extra = extra.iter().map(|r| PolicyRule {
        api_groups: Some(r.api_groups.clone()),
        resources: Some(r.resources.clone()),
        verbs: r.verbs.clone(),
        resource_names: (!r.resource_names.is_empty()).then(|| r.resource_names.clone()),
        ..Default::default()
    });
    hooks.chain(extra).collect()
}
