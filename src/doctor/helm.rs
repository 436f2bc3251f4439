//! The scale set's Helm release: the values the user gave
//! (`sh.helm.release.v1.<release>.v<N>` Secrets: base64 of gzip of JSON),
//! checked against what the installed chart version reads.

use std::io::Read;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::{Finding, Severity, object};
use crate::chart::{self, NOVOLUME_SINCE};

/// The first chart version that ignores `containerMode.kubernetesModeServiceAccount`
/// (moved to `resourceMeta.kubernetesModeServiceAccount`).
pub const OLD_ANNOTATION_KEY_IGNORED_SINCE: semver::Version = semver::Version::new(0, 11, 0);

/// A decoded release: chart name and version, and the user's values.
#[derive(Debug, Clone)]
pub struct Release {
    pub secret: String,
    pub chart: String,
    pub version: String,
    pub values: Value,
}

/// Decodes the `release` field of a Helm release Secret.
pub fn decode(secret_name: &str, data: &[u8]) -> Result<Release, String> {
    let text = String::from_utf8_lossy(data);
    let gzip = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gzip.as_slice())
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    let release: Value = serde_json::from_slice(&json).map_err(|e| format!("not JSON: {e}"))?;
    let meta = release.pointer("/chart/metadata");
    let field = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Release {
        secret: secret_name.to_owned(),
        chart: field("name"),
        version: field("version"),
        values: release.get("config").cloned().unwrap_or(Value::Null),
    })
}

/// The findings of the release behind `set` (none when it was not installed by Helm).
pub async fn check(client: &Client, set: &DynamicObject) -> Vec<Finding> {
    let namespace = set.namespace().unwrap_or_default();
    let Some(release) = set.labels().get("app.kubernetes.io/instance").cloned() else {
        return Vec::new();
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let params =
        ListParams::default().labels(&format!("owner=helm,name={release},status=deployed"));
    let secrets = match api.list(&params).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return vec![Finding::new(
                Severity::Info,
                "helm-values",
                object(
                    "Secret",
                    &namespace,
                    &format!("sh.helm.release.v1.{release}"),
                ),
                "cannot read the Helm release (Secrets): the values were not checked",
                format!(
                    "grant doctor list on secrets in {namespace}, or run it as the release's owner"
                ),
            )];
        }
        Err(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "helm-values",
                object(
                    "Secret",
                    &namespace,
                    &format!("sh.helm.release.v1.{release}"),
                ),
                format!("cannot list the Helm release: {e}"),
                "check the API server's reachability",
            )];
        }
    };
    let Some(secret) = secrets.iter().max_by_key(|s| {
        s.labels()
            .get("version")
            .and_then(|v| v.parse::<u64>().ok())
    }) else {
        return Vec::new();
    };
    let name = secret.name_any();
    let at = object("Secret", &namespace, &name);
    let Some(data) = secret.data.as_ref().and_then(|d| d.get("release")) else {
        return Vec::new();
    };
    match decode(&name, &data.0) {
        Ok(r) => findings(&namespace, &r),
        Err(e) => vec![Finding::new(
            Severity::Warning,
            "helm-values",
            at,
            format!("the Helm release cannot be read: {e}"),
            "helm get values to inspect it by hand",
        )],
    }
}

/// What the values of `release` set that its chart version ignores.
pub fn findings(namespace: &str, release: &Release) -> Vec<Finding> {
    let at = object("Secret", namespace, &release.secret);
    let Ok(version) = chart::parse_version(&release.version) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let values = &release.values;
    if release.chart.starts_with("gha-runner-scale-set")
        && version >= OLD_ANNOTATION_KEY_IGNORED_SINCE
        && values
            .pointer("/containerMode/kubernetesModeServiceAccount/annotations")
            .is_some()
    {
        out.push(Finding::new(
            Severity::Error,
            "helm-values",
            at.clone(),
            format!(
                "the values set containerMode.kubernetesModeServiceAccount.annotations, which chart \
                 {} ignores (since {OLD_ANNOTATION_KEY_IGNORED_SINCE} it reads \
                 resourceMeta.kubernetesModeServiceAccount.annotations): an IRSA role annotation \
                 there never reaches the ServiceAccount",
                release.version
            ),
            "move the annotations to resourceMeta.kubernetesModeServiceAccount.annotations and helm \
             upgrade; better, give workflow pods their own job ServiceAccount (`runner-identity plan`)",
        ));
    }
    let novolume = values
        .pointer("/containerMode/type")
        .and_then(Value::as_str)
        == Some("kubernetes-novolume");
    if release.chart == "gha-runner-scale-set" && novolume && version < NOVOLUME_SINCE {
        out.push(Finding::new(
            Severity::Error,
            "helm-values",
            at,
            format!(
                "containerMode.type is kubernetes-novolume, which chart {} ignores (it knows it \
                 from {NOVOLUME_SINCE}): the runner starts without container hooks",
                release.version
            ),
            format!("helm upgrade with chart {NOVOLUME_SINCE} or later (--version), or use containerMode.type: kubernetes"),
        ));
    }
    out
}
