//! Text templates: the user-editable documents (hook template, Helm values,
//! IAM policies) in `templates/`, embedded in the binary and overridable file
//! by file with `--templates DIR`. Rendering is pure: a [`Context`] in, text out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::{Error, Result};

/// Hook template for `ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE`.
pub const HOOK_TEMPLATE: &str = "hook-template.yaml";
/// gha-runner-scale-set Helm values.
pub const VALUES: &str = "values.yaml";
/// gha-runner-scale-set-experimental Helm values.
pub const VALUES_EXPERIMENTAL: &str = "values-experimental.yaml";
/// IRSA trust policy.
pub const TRUST_IRSA: &str = "trust-policy-irsa.json";
/// EKS Pod Identity trust policy.
pub const TRUST_POD_IDENTITY: &str = "trust-policy-pod-identity.json";

const EMBEDDED: [(&str, &str); 6] = [
    (
        HOOK_TEMPLATE,
        include_str!("../templates/hook-template.yaml"),
    ),
    (VALUES, include_str!("../templates/values.yaml")),
    (
        VALUES_EXPERIMENTAL,
        include_str!("../templates/values-experimental.yaml"),
    ),
    (
        TRUST_IRSA,
        include_str!("../templates/trust-policy-irsa.json"),
    ),
    (
        TRUST_POD_IDENTITY,
        include_str!("../templates/trust-policy-pod-identity.json"),
    ),
    (
        "permissions-policy.json",
        include_str!("../templates/permissions-policy.json"),
    ),
];

/// Everything a template can refer to, for one repository.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub repository: String,
    pub owner: String,
    pub repo: String,
    pub cluster: String,
    /// `arn:<partition>:eks:<region>:<account>:cluster/<name>`, when
    /// `cluster.region` is set.
    pub cluster_arn: Option<String>,
    pub namespace: String,
    pub runner_service_account: String,
    pub job_service_account: String,
    pub config_map: String,
    pub scale_set: String,
    pub role_name: String,
    pub role_arn: String,
    pub account_id: String,
    pub partition: String,
    /// OIDC issuer without `https://` (IRSA mode), as used in condition keys.
    pub issuer: Option<String>,
    pub oidc_provider_arn: Option<String>,
    pub audience: String,
    pub fs_group: i64,
    pub github_url: String,
    pub config_url: String,
    pub github_config_secret: String,
    pub hooks: String,
    /// `kubernetes.runnerImage`, the image of the scale set's runners.
    pub runner_image: String,
    /// The runner container's image in the values: `runner_image`, or the
    /// image carrying runner-identity (`gha-runner-scale-set-experimental`
    /// with `verifyRunner.runnerImage`).
    pub runner_container_image: String,
    /// `securityContext.fsGroup` of the runner pod.
    pub runner_fs_group: i64,
    /// `gha-runner-scale-set` or `gha-runner-scale-set-experimental`.
    pub chart_name: String,
    pub chart_version: String,
    /// The ARC controller versions that keep a scale set of `chart_version`
    /// (`0.14.x`; before 0.12, exactly the version).
    pub controller_versions: String,
    /// `oci://…` of the chart, for the `helm upgrade` line.
    pub chart_reference: String,
    /// `{name, namespace}` of ARC's controller, for offline rendering.
    pub controller_service_account: Option<crate::config::ControllerServiceAccount>,
    /// `ACTIONS_RUNNER_CONTAINER_HOOKS` of the flavour (the experimental
    /// chart's `runner.kubernetesMode.hookPath`).
    pub hook_path: String,
    /// The configuration `verify runner` reads (experimental chart: passed
    /// in `RUNNER_IDENTITY_CONFIG_TEXT`); empty where it is not used.
    pub runner_config: String,
    pub hook_template_dir: String,
    pub hook_template_path: String,
    /// Whether the runner pod runs `verify runner` as its job-started hook.
    pub verify_runner: bool,
    pub verify_image: String,
    pub verify_bin_dir: String,
    pub job_started_path: String,
    pub work_volume_size: String,
    pub work_volume_storage_class: Option<String>,
    /// The group whose scale set this is (its GitHub runner group has the
    /// same name), for a grouped scale set's values; `None` otherwise.
    pub group: Option<String>,
    /// A group's runner: the folder of its own `emptyDir` where
    /// `job-started` writes the hook template (`hook_template_path`).
    pub job_template_dir: String,
}

/// The loaded template set, parsed once.
pub struct Templates {
    env: Environment<'static>,
    /// Parse errors, reported when the template is first rendered.
    broken: BTreeMap<String, String>,
    dir: Option<PathBuf>,
}

impl Templates {
    /// The embedded templates, each replaced by a same-named file in `dir`
    /// when one exists there; files in `dir` with other names are available
    /// too (e.g. a custom `aws.inlinePolicyTemplate`).
    pub fn load(dir: Option<&Path>) -> Result<Templates> {
        let mut sources: BTreeMap<String, String> = EMBEDDED
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
                action: "cannot read templates directory",
                path: dir.to_owned(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| Error::Io {
                    action: "cannot read templates directory",
                    path: dir.to_owned(),
                    source,
                })?;
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                    action: "cannot read template",
                    path: path.clone(),
                    source,
                })?;
                sources.insert(entry.file_name().to_string_lossy().into_owned(), text);
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Templates quote values explicitly with `tojson`; minijinja would
        // otherwise JSON-escape everything in `.json` and `.yaml` files.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        let mut broken = BTreeMap::new();
        for (name, source) in sources {
            if let Err(e) = env.add_template_owned(name.clone(), source) {
                broken.insert(name, describe_error(&e));
            }
        }
        Ok(Templates {
            env,
            broken,
            dir: dir.map(Path::to_owned),
        })
    }

    /// Whether a template of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.broken.contains_key(name) || self.env.get_template(name).is_ok()
    }

    /// Renders template `name` with `ctx`; undefined variables are errors.
    pub fn render(&self, name: &str, ctx: &Context) -> Result<String> {
        let fail = |message: String| Error::Template {
            template: self.describe(name),
            repository: ctx.repository.clone(),
            message,
        };
        if let Some(message) = self.broken.get(name) {
            return Err(fail(message.clone()));
        }
        let template = self.env.get_template(name).map_err(|_| {
            let names: Vec<&str> = self.env.templates().map(|(n, _)| n).collect();
            fail(format!(
                "no such template; the templates are {}",
                names.join(", ")
            ))
        })?;
        template.render(ctx).map_err(|e| fail(describe_error(&e)))
    }

    /// The template's name, with its directory when it was overridden.
    pub fn describe(&self, name: &str) -> String {
        match &self.dir {
            Some(dir) if dir.join(name).is_file() => dir.join(name).display().to_string(),
            _ => name.to_owned(),
        }
    }
}

fn describe_error(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("line {line}: {e}"),
        None => e.to_string(),
    }
}
