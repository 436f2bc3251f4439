//! ARC controller ↔ scale-set version skew against the real local stack: a
//! stand-in controller Deployment (as ARC's controller chart labels it, with
//! its image tag) at 0.15.0 or 0.14.2. `apply` refuses values the controller
//! would delete before it writes anything; `diff` says it; `doctor` names
//! each scale set the controller deletes, with the `helm upgrade` fix.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};

use crate::common::cli::ri;
use crate::common::*;

/// The stand-in controller: ARC's controller chart's Deployment shape
/// (`manager` container, `app.kubernetes.io/version` label).
pub(crate) async fn controller(namespace: &str, version: &str) {
    let admin = admin_client().await;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    if namespaces.get_opt(namespace).await.unwrap().is_none() {
        create_namespace(namespace).await;
    }
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "arc-gha-rs-controller", "namespace": namespace, "labels": {
            "app.kubernetes.io/part-of": "gha-rs-controller",
            "app.kubernetes.io/version": version}},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "gha-rs-controller"}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": "gha-rs-controller"}},
                "spec": {"containers": [{"name": "manager",
                    "image": format!("ghcr.io/actions/gha-runner-scale-set-controller:{version}")}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(admin, namespace)
        .patch(
            "arc-gha-rs-controller",
            &PatchParams::apply("controller-test").force(),
            &Patch::Apply(&deployment),
        )
        .await
        .unwrap();
}

fn config(owner: &str, chart_version: &str, controller_ns: &str) -> String {
    irsa_config(owner, &["app"], &stack_issuer())
        + &format!(
            "  chart:\n    version: {chart_version}\n    controller:\n      namespace: {controller_ns}\n"
        )
}

#[tokio::test]
async fn apply_refuses_values_the_controller_would_delete_before_any_write() {
    let owner = unique("skew");
    let arc = unique("arc");
    controller(&arc, "0.15.0").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let kubeconfig = kubeconfig_path();
    let run_at = |command: &str, chart_version: &str, controller_ns: &str| {
        std::fs::write(&path, config(&owner, chart_version, controller_ns)).unwrap();
        ri(&[
            command,
            "--skip-aws",
            "-c",
            path.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .run()
    };
    let run = |command: &str, chart_version: &str| run_at(command, chart_version, &arc);
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    let planned = format!("{owner}-app");

    // 0.14.2 values under a 0.15.0 controller: refused, nothing written.
    let o = run("apply", "0.14.2").expect(3);
    assert!(
        o.stderr.contains("0.15.0") && o.stderr.contains("0.14.2"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("nothing was changed"), "{}", o.stderr);
    assert!(
        o.stderr.contains("kubernetes.chart.version"),
        "{}",
        o.stderr
    );
    assert!(
        namespaces.get_opt(&planned).await.unwrap().is_none(),
        "refused before any write"
    );
    // `diff` says it and compares.
    let o = run("diff", "0.14.2");
    assert!(
        o.stderr.contains("deletes every AutoscalingRunnerSet"),
        "{}",
        o.stderr
    );

    // A patch version apart is kept (0.12 and later).
    run("apply", "0.15.1").expect(0);
    assert!(namespaces.get_opt(&planned).await.unwrap().is_some());

    // The controller goes back to 0.14.2: 0.15 values are refused, 0.14.x kept.
    controller(&arc, "0.14.2").await;
    run("apply", "0.15.0").expect(3);
    run("apply", "0.14.0").expect(0);

    // Without the controller where the configuration says: a warning, not a refusal.
    let o = run_at("apply", "0.14.2", "no-such-arc-namespace").expect(0);
    assert!(o.stderr.contains("no ARC controller at"), "{}", o.stderr);
}
