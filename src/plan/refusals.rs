//! What the plan refuses before anything is planned: system namespaces,
//! scale-set names that prefix one another, a shared namespace without its
//! guard.

use super::*;

/// What grouped scale sets cannot be planned with: the experimental chart
/// without a runner image that carries runner-identity (the chart mounts
/// nothing more into the runner container), and a
/// namespace not named after the group (the group's namespace holds every
/// member's job ServiceAccount, which its runner may start pods as).
/// A group's scale set name: ARC names its runner pods `<name>-<5>-runner-<5>`,
/// and at most 47 characters the hooks never cut them (two runners of one
/// scale set would otherwise share the prefix the admission policy tells
/// their objects by).
pub(super) const GROUP_SCALE_SET_MAX: usize = 28;

pub(super) fn refuse_long_group_scale_sets(settings: &Settings, names: &[RepoNames]) -> Result<()> {
    match names
        .iter()
        .find(|n| n.group.is_some() && n.scale_set.len() > GROUP_SCALE_SET_MAX)
    {
        None => Ok(()),
        Some(n) => Err(Error::ConfigInvalid {
            path: settings.source.clone(),
            field: "kubernetes.names.scaleSet".into(),
            message: format!(
                "group `{}`: its scale set `{}` has {} characters; a group's may have at most \
                 {GROUP_SCALE_SET_MAX}, so that its runner pods' names (`<scale set>-<5>-runner-<5>`) \
                 stay within the 47 the hooks keep whole: cut, two runners would share the prefix \
                 the admission policy tells their pods by. Shorten the group's name",
                n.group.as_deref().unwrap_or_default(),
                n.scale_set,
                n.scale_set.len()
            ),
        }),
    }
}

pub(super) fn refuse_groups(settings: &Settings) -> Result<()> {
    let Some(group) = settings.groups.first() else {
        return Ok(());
    };
    let k8s = &settings.config.kubernetes;
    let refuse = |field: &str, message: String| Error::ConfigInvalid {
        path: settings.source.clone(),
        field: field.into(),
        message,
    };
    if k8s.chart.name == ChartName::Experimental
        && (!k8s.verify_runner.enabled || k8s.verify_runner.runner_image.is_none())
    {
        return Err(refuse(
            "kubernetes.verifyRunner.runnerImage",
            format!(
                "group `{}`: on gha-runner-scale-set-experimental a group's runner runs \
                 `runner-identity job-started` from its own image, since the chart mounts nothing \
                 more into the runner container: set kubernetes.verifyRunner.runnerImage to a \
                 runner image that carries runner-identity (docs/reference.md, \
                 gha-runner-scale-set-experimental), with verifyRunner enabled",
                group.name
            ),
        ));
    }
    if matches!(k8s.pod_security, None | Some(PodSecurityLevel::Privileged)) {
        return Err(refuse(
            "kubernetes.podSecurity",
            format!(
                "group `{}`: a group's namespace must enforce Pod Security baseline or \
                 restricted: its admission policies do not judge added capabilities, seccomp or \
                 AppArmor profiles, with which a pod could reach the node and another member's \
                 tokens",
                group.name
            ),
        ));
    }
    if !k8s.namespace.contains("{repo}") {
        return Err(refuse(
            "kubernetes.namespace",
            format!(
                "group `{}`: `{}` has no {{repo}}, so the group would share a namespace; a group's \
                 runner may start pods as any ServiceAccount of its namespace, so each group needs \
                 its own (`gha-{{repo}}`, the default, names it after the group)",
                group.name, k8s.namespace
            ),
        ));
    }
    Ok(())
}

/// Namespaces no repository may use: the cluster's own, and ARC's
/// controller's. The runner there would hold the hooks' rights (pods,
/// Secrets) next to the cluster's or the controller's credentials, and so
/// would the identity that runs `apply` (it holds the Roles it writes).
pub(super) fn refuse_system_namespaces(settings: &Settings, names: &[RepoNames]) -> Result<()> {
    let controller = settings
        .config
        .kubernetes
        .chart
        .controller_service_account
        .as_ref()
        .map(|c| c.namespace.as_str());
    let reserved = |ns: &str| {
        matches!(
            ns,
            "kube-system" | "kube-public" | "kube-node-lease" | "default"
        ) || Some(ns) == controller
    };
    if let Some(n) = names
        .iter()
        .find(|n| n.role.starts_with("runner-identity-"))
    {
        return Err(Error::ConfigInvalid {
            path: settings.source.clone(),
            field: "kubernetes.names.role".into(),
            message: format!(
                "`{}` ({}) is a name `bootstrap` gives the rights of the identity that runs apply \
                 (runner-identity-…); name the runner's Role otherwise",
                n.role, n.repository
            ),
        });
    }
    match names.iter().find(|n| reserved(&n.namespace)) {
        None => Ok(()),
        Some(n) => Err(Error::ConfigInvalid {
            path: settings.source.clone(),
            field: "kubernetes.namespace".into(),
            message: format!(
                "`{}` puts {} in namespace `{}`, which belongs to the cluster or to ARC's \
                 controller: its runner, and the identity that runs apply, would hold pods and \
                 Secrets rights next to their credentials. Use a namespace of its own \
                 (`gha-{{repo}}`, the default)",
                settings.config.kubernetes.namespace, n.repository, n.namespace
            ),
        }),
    }
}

/// In a shared namespace, a scale set whose name starts with another's and
/// `-`: ARC names runner pods `<scale set>-<hash>-runner-<hash>`, and the
/// guard tells a runner's pods by their name's prefix, so one runner could by
/// chance own a prefix of the other's pods' names and reach them.
pub(super) fn refuse_prefix_scale_sets(
    settings: &Settings,
    by_namespace: &BTreeMap<&str, Vec<&RepoNames>>,
) -> Result<()> {
    for (ns, repos) in by_namespace.iter().filter(|(_, r)| r.len() > 1) {
        for a in repos {
            if let Some(b) = repos
                .iter()
                .find(|b| b.scale_set.starts_with(&format!("{}-", a.scale_set)))
            {
                return Err(Error::ConfigInvalid {
                    path: settings.source.clone(),
                    field: "kubernetes.names.scaleSet".into(),
                    message: format!(
                        "in the shared namespace `{ns}`, scale set `{}` ({}) starts with scale set \
                         `{}` ({}) and `-`: their runner pods' names could share the prefix the \
                         admission policy tells a runner's own pods by. Rename one (or give each \
                         repository its own namespace)",
                        b.scale_set, b.repository, a.scale_set, a.repository
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The refusal of several repositories in one namespace, with the risk.
pub(super) fn shared_namespace_refused(
    settings: &Settings,
    namespace: &str,
    repos: &[&RepoNames],
) -> Error {
    let named: Vec<&str> = repos
        .iter()
        .take(3)
        .map(|n| n.repository.as_str())
        .collect();
    Error::ConfigInvalid {
        path: settings.source.clone(),
        field: "kubernetes.namespace".into(),
        message: format!(
            "`{}` puts {} repositories in namespace `{namespace}` ({}{}). There each repository's \
             runner ServiceAccount may create pods, so it can start a pod as another repository's \
             job ServiceAccount and assume its IAM role, and it may read the Secrets the hooks \
             create for the other repositories' container steps (their `env:`, secrets included). \
             Give each repository its own namespace ({{repo}} in kubernetes.namespace), or set \
             kubernetes.sharedNamespace: true, which adds a ValidatingAdmissionPolicy per shared \
             namespace (Kubernetes 1.30 or later) so a runner starts pods only as its own job \
             ServiceAccount; the step Secrets stay readable across repositories even then",
            settings.config.kubernetes.namespace,
            repos.len(),
            named.join(", "),
            if repos.len() > named.len() {
                ", …"
            } else {
                ""
            }
        ),
    }
}
