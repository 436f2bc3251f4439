//! What the plan warns about without refusing: floating image tags, and
//! credentials that reach further than one repository.

use super::*;

/// What `plan` and `apply` should say about a configuration that plans fine
/// but not as the user may think.
pub fn planning_warnings(settings: &Settings) -> Vec<String> {
    let k8s = &settings.config.kubernetes;
    let mut warnings = Vec::new();
    if k8s.verify_runner.enabled && !verify_runner_in_values(k8s) {
        warnings.push(format!(
            "kubernetes.verifyRunner: the values have no job-started hook, so `verify runner` does not \
             run before jobs: {} cannot mount runner-identity into the runner container. Build a \
             runner image that carries it (two lines, see docs/reference.md: FROM {} / COPY --from=<the \
             runner-identity image> /usr/local/bin/runner-identity {IMAGE_JOB_STARTED} {VERIFY_BIN_DIR}/) \
             and set kubernetes.verifyRunner.runnerImage, or set verifyRunner.enabled: false",
            k8s.chart.name.as_str(),
            k8s.runner_image
        ));
    }
    warnings.extend(credential_warnings(settings));
    for group in &settings.groups {
        let identities = if k8s.group_admission_policy {
            "The group's admission policies (Kubernetes 1.30 or later) keep it to its own \
             member's identity"
        } else {
            "Without kubernetes.groupAdmissionPolicy it can also start pods as any member's job \
             ServiceAccount and take that member's IAM role"
        };
        warnings.push(format!(
            "groups[{}]: a member's job can read the runner's ServiceAccount token (the runner \
             reads the step's GITHUB_ENV and GITHUB_STEP_SUMMARY files from the shared work volume \
             and follows a symbolic link there), and with it every Secret of the group's \
             namespace: the other members' step `env:` and the organisation's scale set \
             credential. {identities}. Group only repositories that may read each other's secrets \
             (no code from forks); keep the others on their own scale sets (docs/security.md: \
             grouped scale sets)",
            group.name
        ));
    }
    for (i, group) in settings.config.groups.iter().enumerate() {
        if group
            .select
            .as_ref()
            .is_some_and(|s| s.custom_properties.is_empty())
        {
            warnings.push(format!(
                "groups[{i}].select: group `{}` takes in, at the next apply, any private or \
                 internal repository that matches by name or topic, so whoever may create a \
                 repository or set its topics in the organisation joins the group and can read \
                 its members' secrets (above). Select by customProperties that only organisation \
                 administrators may set, or list the members",
                group.name
            ));
        }
    }
    if k8s.shared_namespace && !k8s.namespace.contains("{repo}") {
        warnings.push(format!(
            "kubernetes.sharedNamespace: in `{}` the admission policy keeps each runner to its own \
             pods, Jobs and Secrets for every write, exec, attach and port-forward, but admission \
             never sees reads: every runner there can read the other runners' pods (their \
             environment), logs and the Secrets the hooks create for container steps (their \
             `env:`, secrets included). A shared namespace cannot isolate what runners read; give \
             each repository its own namespace ({{repo}} in kubernetes.namespace) where that matters",
            k8s.namespace
        ));
    }
    if floating_tag(&k8s.runner_image) {
        warnings.push(format!(
            "kubernetes.runnerImage: `{}` can change under you: the runner-container-hooks it \
             ships decide which rights the runner needs and how the workflow pod is named, which \
             `verify` and the planned Role depend on. Pin a release (the default is {}), or a \
             digest (`image:tag@sha256:…`), and move it deliberately",
            k8s.runner_image,
            crate::config::DEFAULT_RUNNER_IMAGE
        ));
    }
    if let Err(e) = super::apply_identity_requirements(settings) {
        warnings.push(format!(
            "bootstrap and apply will refuse this configuration until it is fixed: {e}"
        ));
    }
    match k8s.pod_security {
        Some(PodSecurityLevel::Privileged) => warnings.push(
            "kubernetes.podSecurity: privileged lets any pod of a repository namespace use \
             hostPath, host namespaces and privileged containers, which reach the node and every \
             repository's credentials on it; use baseline (the default)"
                .to_owned(),
        ),
        Some(PodSecurityLevel::Restricted) => warnings.push(
            "kubernetes.podSecurity: restricted admits the hooks' workflow pods only when the hook \
             template makes them non-root (runAsNonRoot, seccompProfile RuntimeDefault, \
             allowPrivilegeEscalation false, capabilities drop ALL on every container); the \
             planned template does not"
                .to_owned(),
        ),
        _ => {}
    }
    warnings
}

/// Whether an image reference floats: no tag, or `latest`, and no digest.
pub(super) fn floating_tag(image: &str) -> bool {
    if image.contains("@sha256:") {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

/// Credentials that reach further than one repository, placed where that
/// repository's runner can read them (the hooks need secrets get/list in the
/// namespace, and ARC needs the Secret there).
pub(super) fn credential_warnings(settings: &Settings) -> Vec<String> {
    let mut warnings = Vec::new();
    let shared: Vec<&str> = settings
        .repositories
        .iter()
        .filter(|r| r.github_credentials.is_some() && !r.own_github_credentials)
        .map(|r| r.name.as_str())
        .collect();
    let global = settings
        .repositories
        .iter()
        .filter(|r| !r.own_github_credentials)
        .find_map(|r| r.github_credentials.as_ref());
    if let (Some(c), false) = (global, shared.is_empty()) {
        let named: Vec<&str> = shared.iter().take(3).copied().collect();
        warnings.push(format!(
            "kubernetes.githubCredentials: the same {} goes into the namespace of {} repositories \
             ({}{}), where each runner ServiceAccount can read it (the hooks need secrets \
             get/list there): a job's runner could take a credential that reaches beyond its \
             repository. Prefer a fine-grained token per repository, limited to that repository \
             (repositories[].kubernetes.githubCredentials), or a GitHub App installation limited \
             to the selected repositories (docs/reference.md: Threat model)",
            c.kind(),
            shared.len(),
            named.join(", "),
            if shared.len() > named.len() {
                ", …"
            } else {
                ""
            },
        ));
    }
    for repo in settings
        .repositories
        .iter()
        .filter(|r| r.own_github_credentials)
    {
        if let Some(c) = repo
            .github_credentials
            .as_ref()
            .filter(|c| !matches!(c, RunnerCredentials::Token(_)))
        {
            warnings.push(format!(
                "repositories[{}].kubernetes.githubCredentials: a {} in the namespace, readable \
                 by the runner ServiceAccount, acts for every repository its installation \
                 covers; limit the installation to the selected repositories, or use a \
                 fine-grained token limited to {}",
                repo.name,
                c.kind(),
                repo.full_name()
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings_for(select: &str) -> Vec<String> {
        let text = format!(
            "github: {{owner: acme, ownerId: 7}}\nrepositories: [{{name: api, id: 1}}]\n\
             cluster: {{name: prod, oidcIssuer: https://o.example/id/1}}\n\
             aws: {{accountId: '111122223333', mode: irsa}}\n\
             groups:\n  - {{name: core, repositories: [api], select: {select}}}\n"
        );
        let settings = crate::config::parse(&text, std::path::Path::new("t.yaml")).unwrap();
        planning_warnings(&settings)
    }

    #[test]
    fn a_group_that_selects_by_name_or_topic_is_warned_of_whoever_creates_a_repository() {
        for select in ["{names: ['svc-*']}", "{topics: [payments]}", "{}"] {
            let w = warnings_for(select);
            assert!(
                w.iter()
                    .any(|w| w.starts_with("groups[0].select: group `core`")),
                "{select}: {w:?}"
            );
        }
        let w = warnings_for("{names: ['svc-*'], customProperties: {team: payments}}");
        assert!(
            !w.iter().any(|w| w.starts_with("groups[0].select")),
            "{w:?}"
        );
    }
}
