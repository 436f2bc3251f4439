//! The [`Planner`]: repository by repository, on demand, so that memory
//! stays flat in the number of repositories.

use super::*;

/// Plans one repository at a time. What spans repositories (name
/// collisions, shared namespaces, the first repository of each namespace)
/// is decided once, by [`Planner::new`]; each [`Plans::repository`] call
/// then plans one repository on its own, the same way every time.
pub struct Planner<'a> {
    settings: &'a Settings,
    templates: &'a Templates,
    names: Vec<RepoNames>,
    /// Per repository: the first planned into its namespace.
    first_in_namespace: Vec<bool>,
    /// Per repository: its group (an index into `settings.groups`).
    group_of: Vec<Option<usize>>,
    /// The runner ServiceAccounts of each shared namespace.
    shared: BTreeMap<String, BTreeMap<String, String>>,
    /// The GitHub credentials of the scale sets, by `owner/name`.
    credentials: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
    /// The global part of each runner pod's configuration, serialised once.
    runner_config: RunnerConfig,
}

impl<'a> Planner<'a> {
    /// Checks what spans repositories; refuses colliding names and a shared
    /// namespace that is not opted into.
    pub fn new(settings: &'a Settings, templates: &'a Templates) -> Result<Planner<'a>> {
        let mut group_of = vec![None; settings.repositories.len()];
        for (g, group) in settings.groups.iter().enumerate() {
            for &m in &group.members {
                if let Some(slot) = group_of.get_mut(m) {
                    *slot = Some(g);
                }
            }
        }
        let names = names::all(settings);
        refuse_groups(settings)?;
        refuse_system_namespaces(settings, &names)?;
        names::check_collisions(&names)?;
        refuse_long_group_scale_sets(settings, &names)?;
        for group in &settings.groups {
            let members: Vec<RepoNames> = group
                .members
                .iter()
                .filter_map(|&m| names.get(m).cloned())
                .collect();
            names::check_group_collisions(&group.name, &members)?;
        }
        // A group's members share its runner: one runner per namespace.
        let mut by_namespace: BTreeMap<&str, Vec<&RepoNames>> = BTreeMap::new();
        let mut groups_seen = std::collections::BTreeSet::new();
        for n in names
            .iter()
            .filter(|n| n.group.as_ref().is_none_or(|g| groups_seen.insert(g)))
        {
            by_namespace
                .entry(n.namespace.as_str())
                .or_default()
                .push(n);
        }
        if let Some((ns, repos)) = by_namespace.iter().find(|(_, r)| r.len() > 1)
            && !settings.config.kubernetes.shared_namespace
        {
            return Err(shared_namespace_refused(settings, ns, repos));
        }
        refuse_prefix_scale_sets(settings, &by_namespace)?;
        let shared = by_namespace
            .iter()
            .filter(|(_, repos)| repos.len() > 1)
            .map(|(ns, repos)| ((*ns).to_owned(), admission::runners_of(ns, repos)))
            .collect();
        // Objects of a whole namespace (the egress policy, the guard) go
        // with the first repository planned into it.
        let mut seen = std::collections::BTreeSet::new();
        let first_in_namespace = names
            .iter()
            .map(|n| seen.insert(n.namespace.as_str()))
            .collect();
        Ok(Planner {
            settings,
            templates,
            names,
            first_in_namespace,
            group_of,
            shared,
            credentials: None,
            runner_config: RunnerConfig::new(settings)?,
        })
    }

    /// Adds to every repository that has credentials the Secret
    /// `githubConfigSecret` names, holding ARC's keys (`data`, never
    /// printed: [`Object::shown`]); `credentials` maps `owner/name` to the
    /// Secret's content.
    pub fn with_credentials(
        mut self,
        credentials: &'a BTreeMap<String, BTreeMap<String, String>>,
    ) -> Planner<'a> {
        self.credentials = Some(credentials);
        self
    }

    /// Every repository planned, held at once (for `plan`'s output).
    pub fn plan(&self) -> Result<Plan> {
        Ok(Plan {
            instance: self.settings.instance.clone(),
            repositories: (0..self.count())
                .map(|i| self.repository(i).map(Cow::into_owned))
                .collect::<Result<_>>()?,
        })
    }
}

impl Plans for Planner<'_> {
    fn instance(&self) -> &str {
        &self.settings.instance
    }

    fn count(&self) -> usize {
        self.names.len()
    }

    fn names(&self, index: usize) -> Option<&RepoNames> {
        self.names.get(index)
    }

    fn repository(&self, index: usize) -> Result<Cow<'_, RepoPlan>> {
        self.plan_one(index, OutputChecks::Run)
    }

    fn repository_again(&self, index: usize) -> Result<Cow<'_, RepoPlan>> {
        self.plan_one(index, OutputChecks::Passed)
    }
}

/// Whether the checks of the templates' output run while planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutputChecks {
    Run,
    /// They passed when this repository was planned before.
    Passed,
}

impl Planner<'_> {
    fn plan_one(&self, index: usize, checks: OutputChecks) -> Result<Cow<'_, RepoPlan>> {
        let settings = self.settings;
        let (Some(repo), Some(names), Some(&first)) = (
            settings.repositories.get(index),
            self.names.get(index),
            self.first_in_namespace.get(index),
        ) else {
            return Err(Error::Internal {
                message: format!("no repository to plan at index {index}"),
            });
        };
        let mut guard: Vec<_> = self
            .shared
            .get(&names.namespace)
            .filter(|_| first)
            .map(|runners| {
                let meta = metadata(settings, repo, names, "");
                admission::guard(&names.namespace, runners, meta)
            })
            .into_iter()
            .collect();
        let group = self
            .group_of
            .get(index)
            .copied()
            .flatten()
            .and_then(|g| settings.groups.get(g));
        if let Some(group) =
            group.filter(|_| first && settings.config.kubernetes.group_admission_policy)
        {
            let members: Vec<String> = group
                .members
                .iter()
                .filter_map(|&m| self.names.get(m))
                .map(|n| n.job_service_account.clone())
                .collect();
            let meta = group_metadata(settings, group, names, "");
            guard.extend(
                group_admission::GroupGuard {
                    namespace: &names.namespace,
                    group: &group.name,
                    runner_user: format!(
                        "system:serviceaccount:{}:{}",
                        names.namespace, names.runner_service_account
                    ),
                    job_accounts: members,
                }
                .objects(ObjectMeta {
                    namespace: None,
                    ..meta
                }),
            );
        }
        let mut plan = self.plan_repository(repo, names.clone(), group, first, checks)?;
        plan.admission_policy = guard;
        if let Some(data) = self
            .credentials
            .and_then(|c| c.get(&plan.names.repository))
            .filter(|_| plan.scale_set.is_some())
        {
            plan.github_secret = Some(objects::github_secret(settings, repo, &plan.names, data));
        }
        Ok(Cow::Owned(plan))
    }
}

impl Planner<'_> {
    fn plan_repository(
        &self,
        repo: &Repository,
        names: RepoNames,
        group: Option<&Group>,
        first_in_namespace: bool,
        checks: OutputChecks,
    ) -> Result<RepoPlan> {
        let (settings, templates) = (self.settings, self.templates);
        let cfg = &settings.config;
        let ctx = context(settings, repo, &names);
        let meta = |name: &str| metadata(settings, repo, &names, name);
        // What the repository shares with its group's members is the group's.
        let shared_meta = |name: &str| match group {
            Some(group) => group_metadata(settings, group, &names, name),
            None => meta(name),
        };

        let namespace = (names.own_namespace && first_in_namespace).then(|| {
            let mut metadata = ObjectMeta {
                namespace: None,
                ..shared_meta(&names.namespace)
            };
            if let Some(level) = cfg.kubernetes.pod_security {
                metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .extend(pod_security_labels(level));
            }
            Namespace {
                metadata,
                ..Default::default()
            }
        });
        let network_policy = (cfg.kubernetes.block_instance_metadata && first_in_namespace)
            .then(|| instance_metadata_policy(shared_meta(METADATA_POLICY)));
        let mut job_meta = meta(&names.job_service_account);
        if cfg.aws.mode == Mode::Irsa {
            let irsa = &cfg.kubernetes.irsa;
            let annotations = job_meta.annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(
                "eks.amazonaws.com/role-arn".into(),
                names.iam_role_arn.clone(),
            );
            annotations.insert("eks.amazonaws.com/audience".into(), irsa.audience.clone());
            annotations.insert(
                "eks.amazonaws.com/sts-regional-endpoints".into(),
                irsa.sts_regional_endpoints.to_string(),
            );
            annotations.insert(
                "eks.amazonaws.com/token-expiration".into(),
                irsa.token_expiration.to_string(),
            );
        }
        let job_service_account = ServiceAccount {
            metadata: job_meta,
            // The workflow pod needs no Kubernetes API token: IRSA and Pod Identity
            // project their own tokens, so the default one is not mounted.
            automount_service_account_token: Some(false),
            ..Default::default()
        };

        let job_template = templates.render(templates::HOOK_TEMPLATE, &ctx)?;
        if checks == OutputChecks::Run {
            check_hook_template(&job_template, &names).map_err(|message| {
                Error::TemplateOutput {
                    template: templates.describe(templates::HOOK_TEMPLATE),
                    repository: names.repository.clone(),
                    message,
                }
            })?;
        }
        let scale_set = match group {
            None => Some(self.plan_scale_set(repo, &names, None, &job_template, checks)?),
            Some(group) if first_in_namespace => {
                Some(self.plan_scale_set(repo, &names, Some(group), &job_template, checks)?)
            }
            Some(_) => None,
        };

        let iam_role = plan_iam_role(settings, templates, repo, &names, &ctx, checks)?;
        Ok(RepoPlan {
            names,
            namespace,
            network_policy,
            admission_policy: Vec::new(),
            scale_set,
            job_service_account,
            job_template,
            github_secret: None,
            iam_role,
        })
    }

    /// The scale set of `repo` alone, or of `group` (planned with its first
    /// member, `repo`).
    fn plan_scale_set(
        &self,
        repo: &Repository,
        names: &RepoNames,
        group: Option<&Group>,
        job_template: &str,
        checks: OutputChecks,
    ) -> Result<ScaleSetPlan> {
        let (settings, templates) = (self.settings, self.templates);
        let cfg = &settings.config;
        let meta = |name: &str| match group {
            Some(group) => group_metadata(settings, group, names, name),
            None => metadata(settings, repo, names, name),
        };
        let runner_service_account = ServiceAccount {
            metadata: meta(&names.runner_service_account),
            ..Default::default()
        };
        // A group's runner holds the hooks' rights alone: an extra rule (a
        // workload controller, serviceaccounts/token, ephemeral containers)
        // could start pods the group's admission policies do not judge.
        let no_extra = Vec::new();
        let extra_rules = match group {
            Some(_) => &no_extra,
            None => &repo.extra_rules,
        };
        let mut rules = role_rules(cfg.kubernetes.hooks, extra_rules);
        if group.is_some() && cfg.kubernetes.group_admission_policy {
            // job-started records the member whose job starts: create only
            // (the group's guard admits its own claim alone).
            rules.push(group_admission::claim_rule());
        }
        let role = Role {
            metadata: meta(&names.role),
            rules: Some(rules),
        };
        let role_binding = RoleBinding {
            metadata: meta(&names.role),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: names.role.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: names.runner_service_account.clone(),
                namespace: Some(names.namespace.clone()),
                ..Default::default()
            }]),
        };

        let chart = cfg.kubernetes.chart.name;
        let hook = &cfg.kubernetes.verify_runner;
        let mut ctx = context(settings, repo, names);
        let mut data = BTreeMap::new();
        match group {
            Some(group) => {
                // No template in the ConfigMap: job-started writes the job's
                // repository's into the runner's own emptyDir.
                ctx = group_context(settings, group, ctx);
                let runner_config = self.runner_config.render_group(settings, group)?;
                if chart == ChartName::Experimental {
                    // The chart mounts no ConfigMap into the runner container.
                    ctx.runner_config = runner_config.clone();
                }
                data.insert(RUNNER_CONFIG_KEY.to_owned(), runner_config);
                data.insert(JOB_STARTED_KEY.to_owned(), group_job_started_script());
            }
            None => {
                data.insert(hook_template_key(chart).to_owned(), job_template.to_owned());
                if ctx.verify_runner {
                    let runner_config = self.runner_config.render(repo)?;
                    match chart {
                        // The runner container mounts the whole ConfigMap.
                        ChartName::Classic => {
                            data.insert(RUNNER_CONFIG_KEY.to_owned(), runner_config);
                            data.insert(
                                JOB_STARTED_KEY.to_owned(),
                                job_started_script(hook.strict),
                            );
                        }
                        // The chart mounts the `extension` key alone: the
                        // configuration goes in a variable, the script is in
                        // the runner image.
                        ChartName::Experimental => ctx.runner_config = runner_config,
                    }
                }
            }
        }
        let config_map = ConfigMap {
            metadata: meta(&names.config_map),
            data: Some(data),
            ..Default::default()
        };

        let values_template = match chart {
            ChartName::Classic => templates::VALUES,
            ChartName::Experimental => templates::VALUES_EXPERIMENTAL,
        };
        let values = templates.render(values_template, &ctx)?;
        if checks == OutputChecks::Run {
            check_values(&values, names, &ctx).map_err(|message| Error::TemplateOutput {
                template: templates.describe(values_template),
                repository: group
                    .map_or_else(|| names.repository.clone(), |g| format!("group {}", g.name)),
                message,
            })?;
        }
        Ok(ScaleSetPlan {
            runner_service_account,
            role,
            role_binding,
            config_map,
            values,
        })
    }
}

/// The metadata of what a group's members share (namespace, runner, Role,
/// ConfigMap, credentials): the ownership labels, the group's label and
/// annotation, the global labels and annotations, and no repository's.
pub(super) fn group_metadata(
    settings: &Settings,
    group: &Group,
    names: &RepoNames,
    name: &str,
) -> ObjectMeta {
    let k8s = &settings.config.kubernetes;
    owned_metadata(
        settings,
        (&k8s.labels, (kvp::GROUP_LABEL, &group.name)),
        (&k8s.annotations, (kvp::GROUP_ANNOTATION, &group.name)),
        &names.namespace,
        name,
    )
}

/// `name` in `namespace` with the ownership labels, the configured labels
/// and annotations, and one more of each (the owner: repository or group).
fn owned_metadata(
    settings: &Settings,
    (labels, label): (&BTreeMap<String, String>, (&str, &String)),
    (annotations, annotation): (&BTreeMap<String, String>, (&str, &String)),
    namespace: &str,
    name: &str,
) -> ObjectMeta {
    let mut labels = labels.clone();
    labels.insert(kvp::MANAGED_BY_LABEL.into(), kvp::MANAGED_BY.into());
    labels.insert(kvp::INSTANCE_LABEL.into(), settings.instance.clone());
    labels.insert(label.0.into(), label.1.clone());
    let mut annotations = annotations.clone();
    annotations.insert(annotation.0.into(), annotation.1.clone());
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..Default::default()
    }
}

/// A group's scale set: registered at the organisation (every member's
/// jobs reach it, through the group's runner group), its hook template in
/// the runner's own emptyDir, job-started always on.
fn group_context(settings: &Settings, group: &Group, ctx: Context) -> Context {
    let (hook_template_path, job_started_path) = match settings.config.kubernetes.chart.name {
        ChartName::Classic => (
            format!("{JOB_TEMPLATE_DIR}/{HOOK_TEMPLATE_KEY}"),
            format!("{HOOK_TEMPLATE_DIR}/{JOB_STARTED_KEY}"),
        ),
        // The runner image carries runner-identity and its script.
        ChartName::Experimental => (IMAGE_JOB_TEMPLATE.to_owned(), IMAGE_JOB_STARTED.to_owned()),
    };
    Context {
        repository: format!("group {}", group.name),
        config_url: format!("{}/{}", settings.github_url, settings.config.github.owner),
        group: Some(group.name.clone()),
        hook_template_path,
        verify_runner: true,
        job_started_path,
        ..ctx
    }
}

/// The standard metadata of every object: the ownership labels (written only
/// here), the repository annotation, and the configured extras.
pub(super) fn metadata(
    settings: &Settings,
    repo: &Repository,
    names: &RepoNames,
    name: &str,
) -> ObjectMeta {
    owned_metadata(
        settings,
        (
            &repo.labels,
            (kvp::REPOSITORY_LABEL, &names.repository_label),
        ),
        (
            &repo.annotations,
            (kvp::REPOSITORY_ANNOTATION, &names.repository),
        ),
        &names.namespace,
        name,
    )
}

pub(super) fn context(settings: &Settings, repo: &Repository, names: &RepoNames) -> Context {
    let cfg = &settings.config;
    let chart = cfg.kubernetes.chart.name;
    let verify = &cfg.kubernetes.verify_runner;
    let partition = cfg.aws.partition.as_str();
    Context {
        repository: names.repository.clone(),
        owner: repo.owner.clone(),
        repo: repo.name.clone(),
        cluster: cfg.cluster.name.clone(),
        cluster_arn: cfg.cluster.region.as_ref().map(|region| {
            format!(
                "arn:{partition}:eks:{region}:{}:cluster/{}",
                cfg.aws.account_id, cfg.cluster.name
            )
        }),
        namespace: names.namespace.clone(),
        runner_service_account: names.runner_service_account.clone(),
        job_service_account: names.job_service_account.clone(),
        config_map: names.config_map.clone(),
        scale_set: names.scale_set.clone(),
        role_name: names.iam_role.clone(),
        role_arn: names.iam_role_arn.clone(),
        account_id: cfg.aws.account_id.clone(),
        partition: partition.to_owned(),
        issuer: settings.issuer_host_path.clone(),
        oidc_provider_arn: settings.issuer_host_path.as_ref().map(|i| {
            format!(
                "arn:{partition}:iam::{}:oidc-provider/{i}",
                cfg.aws.account_id
            )
        }),
        audience: cfg.kubernetes.irsa.audience.clone(),
        fs_group: cfg.kubernetes.fs_group,
        github_url: settings.github_url.clone(),
        config_url: format!("{}/{}", settings.github_url, names.repository),
        github_config_secret: cfg.kubernetes.github_config_secret.clone(),
        hooks: cfg.kubernetes.hooks.as_str().to_owned(),
        runner_image: cfg.kubernetes.runner_image.clone(),
        runner_container_image: match (chart, &verify.runner_image) {
            (ChartName::Experimental, Some(image)) if verify.enabled => image.clone(),
            _ => cfg.kubernetes.runner_image.clone(),
        },
        runner_fs_group: cfg.kubernetes.runner_fs_group,
        chart_name: chart.as_str().to_owned(),
        chart_version: cfg.kubernetes.chart.version.clone(),
        controller_versions: crate::chart::controller_versions(&cfg.kubernetes.chart.version),
        chart_reference: crate::chart::oci_reference(chart),
        controller_service_account: cfg.kubernetes.chart.controller_service_account.clone(),
        hook_path: hook_path(cfg.kubernetes.hooks).to_owned(),
        runner_config: String::new(),
        hook_template_dir: HOOK_TEMPLATE_DIR.to_owned(),
        hook_template_path: format!("{HOOK_TEMPLATE_DIR}/{HOOK_TEMPLATE_KEY}"),
        verify_runner: verify_runner_in_values(&cfg.kubernetes),
        verify_image: verify.image.clone(),
        verify_bin_dir: VERIFY_BIN_DIR.to_owned(),
        job_started_path: match chart {
            ChartName::Classic => format!("{HOOK_TEMPLATE_DIR}/{JOB_STARTED_KEY}"),
            ChartName::Experimental => IMAGE_JOB_STARTED.to_owned(),
        },
        work_volume_size: cfg.kubernetes.work_volume_size.clone(),
        work_volume_storage_class: cfg.kubernetes.work_volume_storage_class.clone(),
        group: None,
        job_template_dir: JOB_TEMPLATE_DIR.to_owned(),
    }
}
