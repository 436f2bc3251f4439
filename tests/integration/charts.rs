//! The Helm values for every chart flavour and version runner-identity writes
//! for: a snapshot of each, every key they set is a key that chart reads
//! (`runner_identity::chart`'s table, read from the charts' templates), the
//! runner pod's fsGroup, offline rendering, and the combinations refused.
//! What the real charts rendered from such values is in `tests/data/arc/rendered`
//! (`arc.rs` stores it on the API server).

use runner_identity::Error;
use runner_identity::chart::{self, ChartName};
use runner_identity::config::{self, ControllerServiceAccount, Hooks};

use crate::common::*;

/// One flavour × chart version the values are written for.
struct Case {
    name: &'static str,
    chart: ChartName,
    version: &'static str,
    hooks: Hooks,
    runner_image: Option<&'static str>,
}

const CASES: [Case; 5] = [
    Case {
        name: "classic_0_14_2_kubernetes",
        chart: ChartName::Classic,
        version: "0.14.2",
        hooks: Hooks::Kubernetes,
        runner_image: None,
    },
    Case {
        name: "classic_0_13_0_novolume",
        chart: ChartName::Classic,
        version: "0.13.0",
        hooks: Hooks::KubernetesNovolume,
        runner_image: None,
    },
    Case {
        name: "classic_0_10_1_kubernetes",
        chart: ChartName::Classic,
        version: "0.10.1",
        hooks: Hooks::Kubernetes,
        runner_image: None,
    },
    Case {
        name: "experimental_0_14_2_kubernetes",
        chart: ChartName::Experimental,
        version: "0.14.2",
        hooks: Hooks::Kubernetes,
        runner_image: Some("registry.example.com/actions-runner-with-runner-identity:2.329.0"),
    },
    Case {
        name: "experimental_0_14_2_novolume_without_hook",
        chart: ChartName::Experimental,
        version: "0.14.2",
        hooks: Hooks::KubernetesNovolume,
        runner_image: None,
    },
];

fn config(case: &Case) -> TestConfig {
    TestConfig::irsa("acme", &["api"], "https://oidc.example.com/id/X").with(|c| {
        let k = &mut c.kubernetes;
        k.chart.name = case.chart;
        k.chart.version = case.version.to_owned();
        k.chart.controller_service_account = Some(ControllerServiceAccount {
            name: "arc-gha-rs-controller".into(),
            namespace: "arc-systems".into(),
        });
        k.hooks = case.hooks;
        k.verify_runner.runner_image = case.runner_image.map(str::to_owned);
    })
}

fn values(case: &Case) -> serde_yaml::Value {
    serde_yaml::from_str(config(case).plan().repositories[0].values().unwrap()).unwrap()
}

/// Every leaf of the values as a dotted path (list items under their list).
fn leaves(v: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, child) in m {
                let key = k.as_str().unwrap();
                let next = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                leaves(child, &next, out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

#[test]
fn values_of_every_flavour_and_chart_match_their_snapshots() {
    for case in &CASES {
        let plan = config(case).plan();
        insta::assert_snapshot!(case.name, plan.repositories[0].values().unwrap());
    }
}

#[test]
fn every_key_the_values_set_is_one_that_chart_reads() {
    for case in &CASES {
        let mut paths = Vec::new();
        leaves(&values(case), "", &mut paths);
        assert!(paths.len() > 8, "{}: {paths:?}", case.name);
        let unread: Vec<&String> = paths
            .iter()
            .filter(|p| !chart::reads(case.chart, p))
            .collect();
        assert!(
            unread.is_empty(),
            "{}: {} {} does not read {unread:?}",
            case.name,
            case.chart.as_str(),
            case.version
        );
    }
}

#[test]
fn the_runner_pod_has_the_fs_group_in_both_layouts() {
    for case in &CASES {
        let v = values(case);
        let fs_group = match case.chart {
            ChartName::Classic => &v["template"]["spec"]["securityContext"]["fsGroup"],
            ChartName::Experimental => &v["runner"]["pod"]["spec"]["securityContext"]["fsGroup"],
        };
        assert_eq!(fs_group.as_i64(), Some(123), "{}", case.name);
    }
    let custom = config(&CASES[0]).with(|c| c.kubernetes.runner_fs_group = 2000);
    let v: serde_yaml::Value =
        serde_yaml::from_str(custom.plan().repositories[0].values().unwrap()).unwrap();
    assert_eq!(
        v["template"]["spec"]["securityContext"]["fsGroup"].as_i64(),
        Some(2000)
    );
}

#[test]
fn values_for_offline_rendering_carry_the_controller_service_account() {
    for case in &CASES {
        let v = values(case);
        assert_eq!(
            v["controllerServiceAccount"]["name"].as_str(),
            Some("arc-gha-rs-controller"),
            "{}",
            case.name
        );
        assert_eq!(
            v["controllerServiceAccount"]["namespace"].as_str(),
            Some("arc-systems")
        );
        // The helm line pins the version the values were written for.
        let plan = config(case).plan();
        let text = plan.repositories[0].values().unwrap();
        assert!(
            text.contains(&format!(
                "{} --version {}",
                chart::oci_reference(case.chart),
                case.version
            )),
            "{text}"
        );
    }
    let without = TestConfig::irsa("acme", &["api"], "https://oidc.example.com/id/X");
    let v: serde_yaml::Value =
        serde_yaml::from_str(without.plan().repositories[0].values().unwrap()).unwrap();
    assert!(v.get("controllerServiceAccount").is_none());
}

#[test]
fn the_experimental_chart_gets_its_own_layout_and_hook_wiring() {
    let v = values(&CASES[3]);
    let k = &v["runner"]["kubernetesMode"];
    assert_eq!(k["serviceAccountName"].as_str(), Some("gha-runner"));
    assert_eq!(k["hookPath"].as_str(), Some("/home/runner/k8s/index.js"));
    assert_eq!(k["extensionRef"].as_str(), Some("gha-hook-template"));
    // The chart merges the claim over its own `local-path` class: null takes
    // the cluster default.
    assert!(k["workVolumeClaim"]["storageClassName"].is_null());
    assert_eq!(
        v["runner"]["container"]["image"].as_str(),
        CASES[3].runner_image
    );
    assert!(
        v["runner"]["pod"]["spec"]
            .get("serviceAccountName")
            .is_none()
    );
    let plan = config(&CASES[3]).plan();
    let data = plan.repositories[0]
        .scale_set
        .as_ref()
        .unwrap()
        .config_map
        .data
        .as_ref()
        .unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["extension"]);
    assert!(data["extension"].contains("serviceAccountName: \"gha-job\""));

    // novolume: the hooks' fs-init image, the novolume hooks; no runner image
    // with runner-identity, so no job-started hook and a warning.
    let v = values(&CASES[4]);
    assert_eq!(
        v["runner"]["kubernetesMode"]["hookPath"].as_str(),
        Some("/home/runner/k8s-novolume/index.js")
    );
    let env = serde_yaml::to_string(&v["runner"]["env"]).unwrap();
    assert!(env.contains("ACTIONS_RUNNER_IMAGE"), "{env}");
    assert!(!env.contains("ACTIONS_RUNNER_HOOK_JOB_STARTED"), "{env}");
    let warnings = runner_identity::plan::planning_warnings(&config(&CASES[4]).settings());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("runnerImage"), "{}", warnings[0]);
    assert!(runner_identity::plan::planning_warnings(&config(&CASES[3]).settings()).is_empty());
}

#[test]
fn plan_refuses_novolume_on_a_chart_that_ignores_it() {
    let text = config(&Case {
        name: "",
        chart: ChartName::Classic,
        version: "0.12.1",
        hooks: Hooks::KubernetesNovolume,
        runner_image: None,
    })
    .yaml();
    let Err(Error::ConfigProblems { problems, .. }) =
        config::parse(&text, std::path::Path::new("c.yaml"))
    else {
        panic!("novolume on chart 0.12.1 was accepted");
    };
    let problem = problems
        .iter()
        .find(|p| p.field == "kubernetes.chart.version")
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert!(
        problem.message.contains("without container hooks"),
        "{}",
        problem.message
    );
    assert!(problem.message.contains("0.13.0"), "{}", problem.message);
    // The same chart runs the `kubernetes` flavour.
    let ok = config(&Case {
        name: "",
        chart: ChartName::Classic,
        version: "0.12.1",
        hooks: Hooks::Kubernetes,
        runner_image: None,
    });
    assert!(config::parse(&ok.yaml(), std::path::Path::new("c.yaml")).is_ok());
}
