//! The ARC controller's version, read from its Deployment, against the
//! chart version the values are for: the controller deletes every
//! AutoscalingRunnerSet whose `app.kubernetes.io/version` label its version
//! rule refuses ([`crate::chart::controller_keeps`]), at once and without a
//! word in the scale set's namespace.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;

use crate::chart;
use crate::config::Settings;

/// The label ARC's charts put their app version in.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";

/// The controller as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub namespace: String,
    pub deployment: String,
    /// The version it runs: its image's tag, else its version label.
    pub version: String,
    /// Where the version was read (`image tag of …`, `label …`).
    pub source: String,
}

/// Why the controller's version is not known.
#[derive(Debug)]
pub enum Unknown {
    /// No such Deployment.
    Missing,
    /// The identity may not read it (bootstrap grants the `get`).
    Forbidden,
    /// Neither an image tag nor a version label says it.
    Unlabelled,
    /// The API server failed.
    Failed(Box<kube::Error>),
}

/// Reads the controller `settings` names.
pub async fn read(client: &Client, settings: &Settings) -> Result<Controller, Unknown> {
    read_at(client, &settings.config.kubernetes.chart.controller).await
}

/// Reads the controller Deployment `at`.
pub async fn read_at(
    client: &Client,
    at: &crate::config::ControllerDeployment,
) -> Result<Controller, Unknown> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &at.namespace);
    let deployment = match api.get(&at.deployment).await {
        Ok(d) => d,
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(Unknown::Missing),
        Err(kube::Error::Api(s)) if s.code == 403 => return Err(Unknown::Forbidden),
        Err(e) => return Err(Unknown::Failed(Box::new(e))),
    };
    version_of(&deployment)
        .map(|(version, source)| Controller {
            namespace: at.namespace.clone(),
            deployment: at.deployment.clone(),
            version,
            source,
        })
        .ok_or(Unknown::Unlabelled)
}

/// The version a controller Deployment runs: the tag of its `manager`
/// container's image (what the binary was built as), unless that is not a
/// version (`latest`, a digest); else its `app.kubernetes.io/version` label.
pub fn version_of(deployment: &Deployment) -> Option<(String, String)> {
    let containers = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let manager = containers
        .iter()
        .find(|c| c.name == "manager")
        .or(containers.first());
    let tag = manager
        .and_then(|c| c.image.as_deref())
        .and_then(|image| {
            let without_digest = image.split('@').next().unwrap_or(image);
            let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
            last.split_once(':').map(|(_, tag)| tag.to_owned())
        })
        .filter(|tag| {
            chart::parse_version(tag).is_ok() || tag == "dev" || tag.starts_with("canary-")
        });
    if let (Some(tag), Some(c)) = (tag, manager) {
        return Some((
            tag.trim_start_matches('v').to_owned(),
            format!("the image tag of container {}", c.name),
        ));
    }
    deployment
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(VERSION_LABEL))
        .filter(|v| !v.is_empty())
        .map(|v| (v.clone(), format!("its label {VERSION_LABEL}")))
}

/// Why `controller` would delete a scale set installed with chart
/// `version` (its `app.kubernetes.io/version`), with the fix; `None` when it
/// keeps it.
pub fn refusal(
    controller: &Controller,
    version: &str,
    chart_name: &str,
) -> Option<(String, String)> {
    if chart::controller_keeps(version, &controller.version) {
        return None;
    }
    Some((
        format!(
            "the ARC controller {}/{} runs {} ({}) and deletes every AutoscalingRunnerSet \
             labelled {VERSION_LABEL}: {version}, which {chart_name} {version} writes",
            controller.namespace, controller.deployment, controller.version, controller.source
        ),
        format!(
            "set kubernetes.chart.version to {} (the controller's version; a patch may differ \
             from 0.12 on) and install the values with `helm upgrade … --version {}`, or upgrade \
             the controller to {version}",
            controller.version, controller.version
        ),
    ))
}

/// One line for people: what was found, or why nothing was.
pub fn unknown_text(settings: &Settings, why: &Unknown) -> String {
    unknown_text_at(&settings.config.kubernetes.chart.controller, why)
}

/// [`unknown_text`] for the controller Deployment `at`.
pub fn unknown_text_at(at: &crate::config::ControllerDeployment, why: &Unknown) -> String {
    let place = format!("Deployment {}/{}", at.namespace, at.deployment);
    match why {
        Unknown::Missing => format!(
            "no ARC controller at {place}: the chart version was not checked against it; set \
             kubernetes.chart.controller to where it runs"
        ),
        Unknown::Forbidden => format!(
            "may not read the ARC controller's {place}: the chart version was not checked \
             against it; apply runner-identity bootstrap's output again (it grants that get)"
        ),
        Unknown::Unlabelled => format!(
            "the ARC controller's {place} names no version (image tag or {VERSION_LABEL}): the \
             chart version was not checked against it"
        ),
        Unknown::Failed(e) => format!(
            "cannot read the ARC controller's {place}: {}",
            crate::cause_chain(e.as_ref())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(image: &str, label: Option<&str>) -> Deployment {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "arc-gha-rs-controller", "labels": {}},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "manager", "image": image}
            ]}}}
        }))
        .unwrap();
        if let Some(l) = label {
            d.metadata
                .labels
                .get_or_insert_default()
                .insert(VERSION_LABEL.into(), l.into());
        }
        d
    }

    #[test]
    fn the_version_is_the_image_tag_else_the_label() {
        let v = |d: &Deployment| version_of(d).map(|(v, _)| v);
        let d = deployment(
            "ghcr.io/actions/gha-runner-scale-set-controller:0.15.0",
            Some("0.14.2"),
        );
        assert_eq!(v(&d).as_deref(), Some("0.15.0"));
        let d = deployment("registry.local:5000/arc/controller:latest", Some("0.14.2"));
        assert_eq!(v(&d).as_deref(), Some("0.14.2"));
        let d = deployment(
            "ghcr.io/actions/gha-runner-scale-set-controller@sha256:abc",
            None,
        );
        assert_eq!(v(&d), None);
        let d = deployment(
            "ghcr.io/actions/gha-runner-scale-set-controller:canary-1a2b",
            None,
        );
        assert_eq!(v(&d).as_deref(), Some("canary-1a2b"));
    }
}
