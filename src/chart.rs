//! What runner-identity knows of ARC's scale-set charts: the versions it
//! writes values for, the first version of each capability, and the value
//! keys each chart reads (read from the charts' templates in
//! `actions/actions-runner-controller`, at the tag named with each key).
//! A leaf: configuration validation and planning both ask it.

use schemars::JsonSchema;
use semver::Version;
use serde::{Deserialize, Serialize};

/// The ARC chart flavours runner-identity writes values for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ChartName {
    /// `gha-runner-scale-set`: `containerMode` and a pod `template`.
    #[default]
    #[serde(rename = "gha-runner-scale-set")]
    Classic,
    /// `gha-runner-scale-set-experimental` (0.14 and later): `scaleset`,
    /// `auth`, `runner.mode`, `runner.kubernetesMode`, `runner.pod.spec`.
    #[serde(rename = "gha-runner-scale-set-experimental")]
    Experimental,
}

impl ChartName {
    /// The chart's name, as `helm` and the OCI registry name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChartName::Classic => "gha-runner-scale-set",
            ChartName::Experimental => "gha-runner-scale-set-experimental",
        }
    }
}

/// The newest chart version runner-identity knows (both flavours).
pub const NEWEST_VERSION: &str = "0.14.2";

/// The oldest `gha-runner-scale-set` the planned values were checked against.
pub const CLASSIC_SINCE: Version = Version::new(0, 9, 3);
/// `gha-runner-scale-set` knows `containerMode.type: kubernetes-novolume`
/// from 0.13.0; 0.9.3 to 0.12.1 ignore it and start the runner without
/// container hooks, silently.
pub const NOVOLUME_SINCE: Version = Version::new(0, 13, 0);
/// The first release of `gha-runner-scale-set-experimental`.
pub const EXPERIMENTAL_SINCE: Version = Version::new(0, 14, 0);

/// Parses a chart version as `helm --version` takes it (`0.14.2`, `v0.14.2`).
pub fn parse_version(text: &str) -> Result<Version, String> {
    Version::parse(text.trim().trim_start_matches('v')).map_err(|e| {
        format!(
            "`{text}` is not a chart version ({e}); write it as helm does, like {NEWEST_VERSION}"
        )
    })
}

/// Why `chart` at `version` cannot run the hooks (`novolume`: the
/// `kubernetes-novolume` flavour), with the fix; `None` when it can.
pub fn unsupported(chart: ChartName, version: &Version, novolume: bool) -> Option<String> {
    match chart {
        ChartName::Classic if *version < CLASSIC_SINCE => Some(format!(
            "gha-runner-scale-set {version} is older than {CLASSIC_SINCE}, the oldest version the \
             planned values were checked against; upgrade the chart and set kubernetes.chart.version"
        )),
        ChartName::Classic if novolume && *version < NOVOLUME_SINCE => Some(format!(
            "gha-runner-scale-set {version} ignores containerMode.type kubernetes-novolume (it \
                 knows it from {NOVOLUME_SINCE}): the runner would start without container hooks \
                 and nothing would warn; use chart {NOVOLUME_SINCE} or later (kubernetes.chart.version), \
                 or kubernetes.hooks: kubernetes"
        )),
        ChartName::Experimental if *version < EXPERIMENTAL_SINCE => Some(format!(
            "gha-runner-scale-set-experimental starts at {EXPERIMENTAL_SINCE}; {version} does not exist"
        )),
        _ => None,
    }
}

/// A value key a chart reads.
#[derive(Debug, Clone, Copy)]
pub struct ReadKey {
    /// Dotted path from the values' root.
    pub path: &'static str,
    /// The chart passes everything below the path through (a pod spec, a
    /// claim spec, a list of variables).
    pub subtree: bool,
    /// The chart tag whose templates the key was read from.
    pub read_at: &'static str,
}

const fn key(path: &'static str, read_at: &'static str) -> ReadKey {
    ReadKey {
        path,
        subtree: false,
        read_at,
    }
}

const fn subtree(path: &'static str, read_at: &'static str) -> ReadKey {
    ReadKey {
        path,
        subtree: true,
        read_at,
    }
}

/// Keys `gha-runner-scale-set` 0.9.3 to 0.14.2 read (the same in every
/// version of that range; `templates/autoscalingrunnerset.yaml` and
/// `_helpers.tpl`).
pub const CLASSIC_KEYS: &[ReadKey] = &[
    key("githubConfigUrl", "gha-runner-scale-set-0.9.3"),
    key("githubConfigSecret", "gha-runner-scale-set-0.9.3"),
    key("runnerScaleSetName", "gha-runner-scale-set-0.9.3"),
    key("containerMode.type", "gha-runner-scale-set-0.9.3"),
    subtree(
        "containerMode.kubernetesModeWorkVolumeClaim",
        "gha-runner-scale-set-0.9.3",
    ),
    key(
        "controllerServiceAccount.name",
        "gha-runner-scale-set-0.9.3",
    ),
    key(
        "controllerServiceAccount.namespace",
        "gha-runner-scale-set-0.9.3",
    ),
    subtree("template.metadata", "gha-runner-scale-set-0.9.3"),
    subtree("template.spec", "gha-runner-scale-set-0.9.3"),
];

/// Keys `gha-runner-scale-set-experimental` 0.14.x reads
/// (`autoscalingrunnserset.yaml`, `_mode_kubernetes.tpl`, `_helpers.tpl`).
pub const EXPERIMENTAL_KEYS: &[ReadKey] = &[
    key("scaleset.name", "gha-runner-scale-set-0.14.2"),
    key("auth.url", "gha-runner-scale-set-0.14.2"),
    key("auth.secretName", "gha-runner-scale-set-0.14.2"),
    key(
        "controllerServiceAccount.name",
        "gha-runner-scale-set-0.14.2",
    ),
    key(
        "controllerServiceAccount.namespace",
        "gha-runner-scale-set-0.14.2",
    ),
    key("runner.mode", "gha-runner-scale-set-0.14.2"),
    key("runner.container.image", "gha-runner-scale-set-0.14.2"),
    key("runner.container.command", "gha-runner-scale-set-0.14.2"),
    subtree("runner.env", "gha-runner-scale-set-0.14.2"),
    key(
        "runner.kubernetesMode.serviceAccountName",
        "gha-runner-scale-set-0.14.2",
    ),
    key(
        "runner.kubernetesMode.hookPath",
        "gha-runner-scale-set-0.14.2",
    ),
    key(
        "runner.kubernetesMode.requireJobContainer",
        "gha-runner-scale-set-0.14.2",
    ),
    subtree(
        "runner.kubernetesMode.workVolumeClaim",
        "gha-runner-scale-set-0.14.2",
    ),
    key(
        "runner.kubernetesMode.extensionRef",
        "gha-runner-scale-set-0.14.2",
    ),
    subtree("runner.pod.metadata", "gha-runner-scale-set-0.14.2"),
    subtree("runner.pod.spec", "gha-runner-scale-set-0.14.2"),
];

/// Keys of `gha-runner-scale-set-experimental` the planned values must not
/// set, with why: setting one would be a silent no-op, or would replace what
/// the values plan.
pub const EXPERIMENTAL_IGNORED: &[&str] = &[
    // `omit $runnerPodSpec ... "serviceAccountName"` (0.14.2 and the newest
    // stored templates, 3558503d): only runner.kubernetesMode.serviceAccountName
    // names the runner's account.
    "runner.pod.spec.serviceAccountName",
    // 0.14.x: the runner container's variables come from runner.env alone.
    // The newest stored templates (3558503d, after 0.15.0's listener changes)
    // merge runner.container.env first and runner.env ("legacyEnv") after it:
    // there it would replace the planned variables. runner.env is read by
    // both, so the values use it and refuse this key.
    "runner.container.env",
    // 0.14.x: the runner container's mounts are a fixed list (work, hook
    // extension, TLS); 3558503d merges them by mountPath.
    "runner.container.volumeMounts",
];

/// Why the planned values must not set `path` of the experimental chart.
pub fn why_refused(path: &str) -> &'static str {
    match path {
        "runner.pod.spec.serviceAccountName" => {
            "the chart drops it; runner.kubernetesMode.serviceAccountName names the runner's account"
        }
        "runner.container.env" => {
            "0.14 ignores it and newer charts let it override runner.env, which holds the planned variables"
        }
        _ => "0.14 ignores it and newer charts merge it over the planned mounts",
    }
}

// What is known of the 0.15 line (released 2026-10-01), and where it was
// read. ARC's release tags after June 2026 could not be read here; the
// facts come from the newest stored templates, which carry 0.15.0's changes
// (listener QPS/burst, runner counts moved out of status). Each key the
// values set is read the same way there as at 0.14.2:
// - classic (`templates/autoscalingrunnerset.yaml`, `_helpers.tpl` at
//   142132e5): githubConfigUrl, githubConfigSecret, runnerScaleSetName,
//   containerMode.type (`kubernetes`, `kubernetes-novolume`),
//   containerMode.kubernetesModeWorkVolumeClaim, controllerServiceAccount,
//   template.spec (serviceAccountName from the values, else the chart's);
//   template.metadata now renders labels and annotations only, as strings.
// - experimental (0.15.0 `Chart.yaml` at 0942d69f; templates at c23180c0 and
//   3558503d): scaleset.name, auth.*, runner.mode, runner.kubernetesMode.*,
//   runner.pod.*; runner.env is read by both (see EXPERIMENTAL_IGNORED).
// - `app.kubernetes.io/version` on the AutoscalingRunnerSet is the chart's
//   appVersion (equal to its version in every release so far).

/// Whether `chart` reads the value at dotted `path` (a leaf of the values).
pub fn reads(chart: ChartName, path: &str) -> bool {
    let (keys, ignored) = match chart {
        ChartName::Classic => (CLASSIC_KEYS, &[][..]),
        ChartName::Experimental => (EXPERIMENTAL_KEYS, EXPERIMENTAL_IGNORED),
    };
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    if ignored.iter().any(|i| under(i)) {
        return false;
    }
    keys.iter()
        .any(|k| path == k.path || (k.subtree && under(k.path)))
}

/// A version as ARC's `parseSemver` reads it (`apis/actions.github.com/
/// v1alpha1/version.go`): `major[.minor[.patch…]]`, digits without a leading
/// zero, no `v`; whatever follows the patch number is not looked at.
fn arc_semver(text: &str) -> Option<(u64, u64)> {
    let number = |part: &str| -> Option<u64> {
        if part.is_empty() || (part.len() > 1 && part.starts_with('0')) {
            return None;
        }
        part.parse().ok()
    };
    let mut parts = text.splitn(3, '.');
    let major = number(parts.next()?)?;
    let minor = match parts.next() {
        Some(m) => number(m)?,
        None => 0,
    };
    if let Some(rest) = parts.next() {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        number(&digits)?;
    }
    Some((major, minor))
}

/// The first controller that keeps scale sets of another patch version
/// (ARC #4080); older ones delete every scale set whose version label is not
/// exactly their own.
pub const PATCH_SKEW_SINCE: Version = Version::new(0, 12, 0);

/// Whether an ARC controller of `controller` version keeps an
/// AutoscalingRunnerSet labelled `app.kubernetes.io/version: scale_set`
/// (ARC's `IsVersionAllowed`; the controller deletes the scale set
/// otherwise): a `dev` or `canary-…` controller keeps all; the same text is
/// kept; from 0.12 the same major and minor version is; before, only the
/// same version.
pub fn controller_keeps(scale_set: &str, controller: &str) -> bool {
    if controller == "dev" || controller.starts_with("canary-") || scale_set == controller {
        return true;
    }
    let patch_skew = parse_version(controller).is_ok_and(|v| v >= PATCH_SKEW_SINCE);
    match (arc_semver(scale_set), arc_semver(controller)) {
        (Some(s), Some(c)) => patch_skew && s == c,
        _ => false,
    }
}

/// The controller versions that keep a scale set installed with chart
/// `version`, for people (`0.14.x`).
pub fn controller_versions(version: &str) -> String {
    match parse_version(version) {
        Ok(v) if v >= PATCH_SKEW_SINCE => format!("{}.{}.x", v.major, v.minor),
        Ok(v) => v.to_string(),
        Err(_) => version.to_owned(),
    }
}

/// The `helm upgrade --install` source of `chart` (ARC's OCI registry).
pub fn oci_reference(chart: ChartName) -> String {
    format!(
        "oci://ghcr.io/actions/actions-runner-controller-charts/{}",
        chart.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_before_the_capability_are_refused_with_the_fix() {
        let v = |t: &str| parse_version(t).unwrap();
        let novolume = true;
        let refused = unsupported(ChartName::Classic, &v("0.12.1"), novolume).unwrap();
        assert!(refused.contains("without container hooks"), "{refused}");
        assert!(refused.contains("0.13.0"), "{refused}");
        assert_eq!(
            unsupported(ChartName::Classic, &v("0.13.0"), novolume),
            None
        );
        assert_eq!(unsupported(ChartName::Classic, &v("0.10.1"), false), None);
        assert!(unsupported(ChartName::Classic, &v("0.9.2"), false).is_some());
        assert!(unsupported(ChartName::Experimental, &v("0.13.1"), novolume).is_some());
        assert_eq!(
            unsupported(ChartName::Experimental, &v("v0.14.2"), novolume),
            None
        );
        assert!(parse_version("latest").unwrap_err().contains("0.14.2"));
    }

    #[test]
    fn the_controller_keeps_what_arcs_version_rule_keeps() {
        // The cases of ARC's version_test.go (resource, build → allowed).
        for (scale_set, controller, kept) in [
            ("0.11.0", "dev", true),
            ("dev", "0.11.0", false),
            ("0.11.0", "NA", false),
            ("0.11.0", "1.11.0", false),
            ("0.11.0", "0.10.0", false),
            ("abc", "abc", true),
        ] {
            assert_eq!(
                controller_keeps(scale_set, controller),
                kept,
                "{scale_set} under {controller}"
            );
        }
        // ARC's "patch version mismatch" case (0.11.1 under 0.11.0) holds for
        // the rule as it is since 0.12 (#4080): the same minor, any patch.
        assert!(controller_keeps("0.15.1", "0.15.0"));
        assert!(controller_keeps("0.14.2", "0.14.0"));
        // A controller before 0.12 compared the label exactly.
        assert!(!controller_keeps("0.11.1", "0.11.0"));
        assert!(controller_keeps("0.11.0", "0.11.0"));
        // The case of this issue: 0.14.2 values under a 0.15 controller.
        assert!(!controller_keeps("0.14.2", "0.15.0"));
        assert!(controller_keeps("0.15.0", "canary-3f2a1b"));
        // ARC's parser: no `v`, no leading zero, an empty label is refused.
        assert!(!controller_keeps("v0.15.0", "0.15.0"));
        assert!(!controller_keeps("0.015.0", "0.15.0"));
        assert!(!controller_keeps("", "0.15.0"));
        assert!(controller_keeps("0.15.0-rc1", "0.15.2"));
        assert_eq!(controller_versions("0.14.2"), "0.14.x");
        assert_eq!(controller_versions("0.11.0"), "0.11.0");
    }

    #[test]
    fn a_key_the_experimental_chart_drops_is_not_read() {
        assert!(reads(
            ChartName::Experimental,
            "runner.pod.spec.securityContext.fsGroup"
        ));
        assert!(!reads(
            ChartName::Experimental,
            "runner.pod.spec.serviceAccountName"
        ));
        assert!(!reads(ChartName::Experimental, "runner.container.env"));
        assert!(reads(
            ChartName::Classic,
            "template.spec.serviceAccountName"
        ));
        assert!(!reads(ChartName::Classic, "runner.mode"));
        // A prefix of a key's name is not the key.
        assert!(!reads(ChartName::Classic, "template.specx"));
        assert!(!reads(ChartName::Classic, "containerMode"));
    }
}
