//! `doctor`: diagnose ARC scale sets in kubernetes mode and the IAM identity
//! of their jobs from outside, read-only, on any cluster (runner-identity's
//! setups or hand-made ones). The chain, per AutoscalingRunnerSet: the scale
//! set's wiring and hook template ([`wiring`]), the Helm release values
//! ([`helm`]), the runner's rights ([`rights`]), the job identity and its
//! trust policy ([`identity`]), and once the cluster's OIDC provider.
//!
//! It writes nothing but a TokenRequest for each job ServiceAccount (10
//! minutes, never printed), to evaluate the trust policy against real
//! claims, and SubjectAccessReviews. A permission it lacks is a finding.

pub mod grants;
pub mod group;
pub mod helm;
pub mod identity;
pub mod report;
pub mod rights;
pub mod wiring;

use std::collections::BTreeSet;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::aws::Clients;
use crate::config::Settings;
use crate::names::NamespacedName;

pub use self::report::Report;

/// Scale sets diagnosed at the same time.
const CONCURRENCY: usize = 8;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Jobs fail, or run with an identity they should not have.
    Error,
    /// Works, but wider or more fragile than it should be.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
}

/// One finding: where, what was seen, and the exact fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The check, e.g. `hook-template`.
    pub check: &'static str,
    /// `Kind/namespace/name`, or `Kind/name` when not namespaced.
    pub object: String,
    pub evidence: String,
    pub fix: String,
}

impl Finding {
    pub fn new(
        severity: Severity,
        check: &'static str,
        object: impl Into<String>,
        evidence: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            severity,
            check,
            object: object.into(),
            evidence: evidence.into(),
            fix: fix.into(),
        }
    }
}

/// `Kind/namespace/name`.
pub fn object(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{namespace}/{name}")
    }
}

/// What to diagnose and with what.
pub struct Options<'a> {
    pub settings: Option<&'a Settings>,
    pub namespace: Option<String>,
    pub scale_set: Option<String>,
    /// The EKS cluster whose issuer and Pod Identity associations are read.
    pub cluster: Option<String>,
    /// AWS clients; `None` leaves out every AWS check (said as a finding).
    pub aws: Option<Clients>,
    /// Where the ARC controller runs, when not the configuration's.
    pub controller: Option<crate::config::ControllerDeployment>,
}

/// ARC's AutoscalingRunnerSet.
pub fn autoscaling_runner_set() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "actions.github.com",
        "v1alpha1",
        "AutoscalingRunnerSet",
    ))
}

/// Runs every check; findings sorted by severity, then object.
pub async fn diagnose(client: &Client, options: &Options<'_>) -> Report {
    let mut report = Report::default();
    let api: Api<DynamicObject> = match &options.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &autoscaling_runner_set()),
        None => Api::all_with(client.clone(), &autoscaling_runner_set()),
    };
    let mut sets = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            report
                .findings
                .push(list_failure(&e, options.namespace.as_deref()));
            // ARC not installed is a finding; a refusal or no answer is the
            // API server's failure.
            if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                report.unreachable = Some(e);
            }
            return report.sorted();
        }
    };
    if let Some(name) = &options.scale_set {
        sets.retain(|s| &s.name_any() == name);
    }
    if let Some(settings) = options.settings {
        let planned: BTreeSet<NamespacedName> = crate::names::all(settings)
            .into_iter()
            .map(|n| NamespacedName::new(n.namespace, n.scale_set))
            .collect();
        let installed: BTreeSet<NamespacedName> = sets
            .iter()
            .map(|s| NamespacedName::new(s.namespace().unwrap_or_default(), s.name_any()))
            .collect();
        report
            .findings
            .extend(planned_but_missing(settings, &installed));
        sets.retain(|s| {
            planned.contains(&NamespacedName::new(
                s.namespace().unwrap_or_default(),
                s.name_any(),
            ))
        });
    }
    report.scale_sets = sets.len();
    if sets.is_empty() {
        report.findings.push(Finding::new(
            Severity::Info,
            "scale-sets",
            "AutoscalingRunnerSet/*",
            "no AutoscalingRunnerSet matches",
            "check --namespace / --scale-set, or the context",
        ));
        return report.sorted();
    }
    if options.aws.is_none() {
        report.findings.push(Finding::new(
            Severity::Info,
            "aws",
            "Account/*",
            "AWS checks were left out (--skip-aws)",
            "run without --skip-aws, with credentials that may read IAM and EKS",
        ));
    }
    // RBAC, read once: rights that reach past a namespace.
    let rbac = match grants::Rbac::load(client).await {
        Ok(rbac) => Some(rbac),
        Err(finding) => {
            report.findings.push(finding);
            None
        }
    };
    let whole_cluster =
        options.namespace.is_none() && options.scale_set.is_none() && options.settings.is_none();
    if let (Some(rbac), true) = (&rbac, whole_cluster) {
        // The identity that runs apply is cluster-wide: checked when the
        // whole cluster is.
        report.findings.extend(rbac.apply_identity_findings());
    }
    let rbac = rbac.as_ref();
    // The controller's version, against each scale set's version label.
    let at = options.controller.clone().unwrap_or_else(|| {
        options
            .settings
            .map(|s| s.config.kubernetes.chart.controller.clone())
            .unwrap_or_default()
    });
    match crate::controller::read_at(client, &at).await {
        Ok(controller) => {
            for set in &sets {
                report.findings.extend(version_skew(set, &controller));
            }
        }
        Err(why) => report.findings.push(Finding::new(
            Severity::Info,
            "controller-version",
            object("Deployment", &at.namespace, &at.deployment),
            crate::controller::unknown_text_at(&at, &why),
            "with a configuration, set kubernetes.chart.controller; the scale sets' versions were \
             not compared with the controller's",
        )),
    }
    for set in &sets {
        report.findings.extend(phase(set));
    }
    let progress = crate::outcome::Progress::new(sets.len() as u64, "scale sets");
    let per_set: Vec<(Vec<Finding>, Option<String>)> = futures::stream::iter(&sets)
        .map(|set| {
            let progress = &progress;
            async move {
                let result = diagnose_scale_set(client, options, rbac, set).await;
                progress.done(&set.name_any());
                result
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    progress.finish();
    let mut issuers = BTreeSet::new();
    for (findings, issuer) in per_set {
        report.findings.extend(findings);
        issuers.extend(issuer);
    }
    if let Some(aws) = &options.aws {
        for issuer in &issuers {
            report
                .findings
                .extend(identity::oidc_provider(aws, issuer, options).await);
        }
        if let Some(cluster) = &options.cluster {
            report
                .findings
                .extend(identity::cluster_issuer(aws, cluster, issuers.iter(), options).await);
        }
    }
    report.sorted()
}

/// A scale set whose version label the controller's rule refuses: the
/// controller deletes it (and keeps deleting it while the label stays).
fn version_skew(
    set: &DynamicObject,
    controller: &crate::controller::Controller,
) -> Option<Finding> {
    let labels = set.metadata.labels.clone().unwrap_or_default();
    let version = labels
        .get(crate::controller::VERSION_LABEL)
        .cloned()
        .unwrap_or_default();
    if crate::chart::controller_keeps(&version, &controller.version) {
        return None;
    }
    let namespace = set.namespace().unwrap_or_default();
    let release = set
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("meta.helm.sh/release-name"))
        .cloned()
        .unwrap_or_else(|| set.name_any());
    let chart = if labels
        .get("helm.sh/chart")
        .is_some_and(|c| c.contains("experimental"))
    {
        crate::chart::ChartName::Experimental
    } else {
        crate::chart::ChartName::Classic
    };
    let shown = if version.is_empty() {
        "(none)"
    } else {
        version.as_str()
    };
    Some(Finding::new(
        Severity::Error,
        "controller-version",
        object("AutoscalingRunnerSet", &namespace, &set.name_any()),
        format!(
            "the controller deletes this scale set: it is labelled {}: {shown}, and the ARC \
             controller {}/{} runs {} ({}), which keeps only its own major.minor version",
            crate::controller::VERSION_LABEL,
            controller.namespace,
            controller.deployment,
            controller.version,
            controller.source
        ),
        format!(
            "helm upgrade {release} {} --namespace {namespace} --version {} --reuse-values \
             (and kubernetes.chart.version: {} in the runner-identity configuration)",
            crate::chart::oci_reference(chart),
            controller.version,
            controller.version
        ),
    ))
}

/// ARC's `.status.phase` (0.15 keeps the phase in status and moved the
/// runner counts to metrics): anything but `Running` is said.
fn phase(set: &DynamicObject) -> Option<Finding> {
    let phase = set.data.pointer("/status/phase").and_then(|p| p.as_str())?;
    if phase == "Running" {
        return None;
    }
    Some(Finding::new(
        if phase == "Outdated" {
            Severity::Warning
        } else {
            Severity::Info
        },
        "scale-set-phase",
        object(
            "AutoscalingRunnerSet",
            &set.namespace().unwrap_or_default(),
            &set.name_any(),
        ),
        format!("status.phase is {phase}"),
        "see the controller's log for this scale set (kubectl logs -n <controller namespace> deploy/<controller>)",
    ))
}

/// One scale set's chain; also the issuer of its job tokens, when minted.
async fn diagnose_scale_set(
    client: &Client,
    options: &Options<'_>,
    rbac: Option<&grants::Rbac>,
    set: &DynamicObject,
) -> (Vec<Finding>, Option<String>) {
    let mut findings = Vec::new();
    let mut wiring = wiring::read(client, set).await;
    // A group's scale set (with the configuration that plans it): every
    // member's identity, and each job against ARC's record of it.
    let members = options
        .settings
        .map(|s| group::members_of(&crate::names::all(s), &wiring.namespace, &set.name_any()))
        .unwrap_or_default();
    if !members.is_empty() {
        // job-started writes the template per job: no ConfigMap to read.
        wiring
            .findings
            .retain(|f| !(f.check == "hook-template" && f.severity == Severity::Info));
        wiring.job_service_account = None;
        findings.extend(group::wiring(set, &members));
        findings.extend(group::jobs(client, &wiring.namespace, &members).await);
    }
    findings.extend(wiring.findings.iter().cloned());
    findings.extend(helm::check(client, set).await);
    if let Some(runner) = &wiring.runner_service_account {
        findings.extend(rights::check(client, &wiring.namespace, runner, wiring.flavour).await);
        if let Some(rbac) = rbac {
            findings.extend(rbac.runner_findings(&wiring.namespace, runner));
        }
    }
    // The namespace's ServiceAccounts, read once for the job identity and
    // the exposure checks.
    let accounts = identity::Accounts::list(client, &wiring.namespace).await;
    let mut issuer = None;
    let jobs: Vec<&str> = match &wiring.job_service_account {
        Some(job) => vec![job.as_str()],
        None => members
            .iter()
            .map(|m| m.job_service_account.as_str())
            .collect(),
    };
    for job in &jobs {
        let (job_findings, seen) =
            identity::check(client, options, &wiring.namespace, job, &accounts).await;
        findings.extend(job_findings);
        issuer = issuer.or(seen);
    }
    findings.extend(identity::exposure(&wiring.namespace, &jobs, &accounts));
    (findings, issuer)
}

fn list_failure(e: &kube::Error, namespace: Option<&str>) -> Finding {
    let scope = namespace.map_or_else(|| "all namespaces".to_owned(), |n| format!("namespace {n}"));
    match e {
        kube::Error::Api(s) if s.code == 404 => Finding::new(
            Severity::Error,
            "scale-sets",
            "CustomResourceDefinition/autoscalingrunnersets.actions.github.com",
            "the API server does not serve actions.github.com/v1alpha1 AutoscalingRunnerSet: ARC is not installed",
            "install ARC's controller chart: helm install arc oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set-controller -n arc-systems --create-namespace",
        ),
        kube::Error::Api(s) if s.code == 403 => Finding::new(
            Severity::Error,
            "scale-sets",
            "AutoscalingRunnerSet/*",
            format!(
                "cannot list AutoscalingRunnerSets in {scope}: {}",
                s.message
            ),
            "grant doctor's ClusterRole (docs/reference.md: doctor), or pass --namespace where you may list them",
        ),
        other => Finding::new(
            Severity::Error,
            "scale-sets",
            "AutoscalingRunnerSet/*",
            format!("cannot list AutoscalingRunnerSets in {scope}: {other}"),
            "check the kubeconfig, the context and the API server's reachability",
        ),
    }
}

/// The planned scale sets that are not installed.
fn planned_but_missing(settings: &Settings, installed: &BTreeSet<NamespacedName>) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    crate::names::all(settings)
        .into_iter()
        // A group's scale set is said once.
        .filter(|n| seen.insert(NamespacedName::new(&n.namespace, &n.scale_set)))
        .filter(|n| !installed.contains(&NamespacedName::new(&n.namespace, &n.scale_set)))
        .map(|n| {
            Finding::new(
                Severity::Warning,
                "scale-sets",
                object("AutoscalingRunnerSet", &n.namespace, &n.scale_set),
                format!("{} is planned but its scale set is not installed", n.repository),
                format!(
                    "runner-identity plan --out-dir out && helm upgrade --install {} <chart> --namespace {} -f out/{}/values.yaml",
                    n.scale_set, n.namespace, n.repository_label
                ),
            )
        })
        .collect()
}
