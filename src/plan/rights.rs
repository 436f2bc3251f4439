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

/// The rights the hooks of `flavour` need in the runner's namespace.
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
