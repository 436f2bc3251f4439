//! ARC's own objects on the real local API server: the CustomResourceDefinitions
//! of ARC's controller chart 0.14.2 installed exactly as shipped, the
//! AutoscalingRunnerSet the real `gha-runner-scale-set` chart 0.14.2 rendered
//! for planned values, and a soak of concurrent list and apply load with
//! custom resources. Before `scripts/stack.sh` patched the API server, the
//! CRDs were refused (`default: Invalid value: "null"`) and the server died
//! with SIGSEGV in reflect2 under list load.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::common::*;

const MANAGER: &str = "runner-identity-tests";

fn arc_data(path: &str) -> PathBuf {
    root().join("tests/data/arc").join(path)
}

pub(crate) fn yaml_documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(arc_data(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn crd_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(arc_data("crds"))
        .unwrap()
        .map(|e| format!("crds/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "ARC ships four CRDs: {files:?}");
    files
}

fn autoscaling_runner_set() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "actions.github.com",
        "v1alpha1",
        "AutoscalingRunnerSet",
    ))
}

/// Installs ARC's CRDs unmodified (server-side apply of the files' content)
/// once per test process and waits until each is established.
pub(crate) async fn install_arc_crds(client: &Client) {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let api: Api<CustomResourceDefinition> = Api::all(client.clone());
            let params = PatchParams::apply(MANAGER).force();
            for file in crd_files() {
                let crd = yaml_documents(&file).remove(0);
                let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
                api.patch(&name, &params, &Patch::Apply(&crd))
                    .await
                    .unwrap_or_else(|e| panic!("the API server refused ARC's CRD {file}: {e}"));
                wait_established(&api, &name).await;
            }
        })
        .await;
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let crd = api.get(name).await.unwrap();
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "CRD {name} not established after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pid the stack recorded for the API server, and whether it runs.
fn apiserver_pid() -> (u32, bool) {
    let stack = std::env::var_os("RUNNER_IDENTITY_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| kubeconfig_path().parent().unwrap().to_path_buf());
    let pid: u32 = std::fs::read_to_string(stack.join("apiserver.pid"))
        .expect("the stack records the API server's pid")
        .trim()
        .parse()
        .unwrap();
    (pid, PathBuf::from(format!("/proc/{pid}")).exists())
}

#[tokio::test]
async fn arc_crds_are_served_as_shipped_and_store_the_rendered_runner_set() {
    let admin = admin_client().await;
    install_arc_crds(&admin).await;

    // The stored schema is the shipped one, field for field.
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for file in crd_files() {
        let shipped = yaml_documents(&file).remove(0);
        let name = shipped["metadata"]["name"].as_str().unwrap();
        let stored = serde_json::to_value(crds.get(name).await.unwrap()).unwrap();
        let mut differences = Vec::new();
        differ(
            &stored["spec"]["versions"],
            &shipped["spec"]["versions"],
            "spec.versions",
            &mut differences,
        );
        assert!(
            differences.is_empty(),
            "{file}: the served schema differs from the shipped one at {differences:?}"
        );
        assert!(stored["spec"]["versions"][0]["schema"]["openAPIV3Schema"].is_object());
    }

    // The AutoscalingRunnerSet the real chart rendered for planned values.
    let ns = unique("arc");
    create_namespace(&ns).await;
    let mut set = yaml_documents("rendered/0.14.2-kubernetes.yaml")
        .into_iter()
        .find(|d| d["kind"] == "AutoscalingRunnerSet")
        .expect("the rendered chart holds an AutoscalingRunnerSet");
    set["metadata"]["namespace"] = json!(ns);
    let rendered_spec = set["spec"].clone();
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &autoscaling_runner_set());
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(set).unwrap(),
        )
        .await
        .unwrap();
    let stored = serde_json::to_value(api.get(&created.name_any()).await.unwrap()).unwrap();
    let sa = &stored["spec"]["template"]["spec"]["serviceAccountName"];
    assert_eq!(sa, &rendered_spec["template"]["spec"]["serviceAccountName"]);
    assert!(sa.as_str().is_some_and(|s| s.ends_with("-runner")), "{sa}");
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"],
        rendered_spec["template"]["spec"]["containers"]
    );

    // A custom resource holding "" is a string, not null.
    let empty = json!({
        "apiVersion": "actions.github.com/v1alpha1",
        "kind": "AutoscalingRunnerSet",
        "metadata": {"name": "empty-strings", "namespace": ns},
        "spec": {
            "githubConfigUrl": "https://github.com/acme/api",
            "githubConfigSecret": "github-config",
            "runnerGroup": "",
            "template": {"spec": {"containers": [{"name": "runner", "image": "", "command": ["/home/runner/run.sh"]}]}}
        }
    });
    let stored = api
        .patch(
            "empty-strings",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&empty),
        )
        .await
        .unwrap_or_else(|e| panic!("a custom resource holding \"\" was refused: {e}"));
    let stored = serde_json::to_value(stored).unwrap();
    assert_eq!(stored["spec"]["runnerGroup"], json!(""));
}

#[test]
fn the_arc_test_data_is_what_its_readme_lists() {
    use sha2::Digest;
    let readme = std::fs::read_to_string(arc_data("README.md")).unwrap();
    let listed: Vec<(&str, &str)> = readme
        .lines()
        .filter_map(|l| l.split_once("  "))
        .filter(|(sum, _)| sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert!(listed.len() >= 15, "{listed:?}");
    for (sum, file) in listed {
        let bytes = std::fs::read(arc_data(file)).unwrap();
        let got: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, sum, "{file} is not the file the README lists");
    }
}

/// The real chart (0.10.1 and 0.14.2) with the values `plan` writes for a
/// group: the scale set is the organisation's, in the group's runner group,
/// and its runner container runs job-started before every job, requires a
/// job container, and reads the hook template from its own emptyDir, which
/// no other mount (the work volume the workflow pod shares) reaches.
#[tokio::test]
async fn the_real_chart_renders_a_group_scale_set_that_keeps_the_template_to_itself() {
    let planned = crate::common::plan_text(
        &std::fs::read_to_string(root().join("examples/grouped-irsa.yaml")).unwrap(),
    );
    let values = planned.repositories[0].values().unwrap();
    assert_eq!(
        values,
        std::fs::read_to_string(arc_data(
            "rendered/runner-identity-group-platform.values.yaml"
        ))
        .unwrap(),
        "the values changed: render tests/data/arc/rendered/*-group.yaml again (its README)"
    );
    let admin = admin_client().await;
    install_arc_crds(&admin).await;
    let ns = unique("arcg");
    create_namespace(&ns).await;
    for file in ["rendered/0.14.2-group.yaml", "rendered/0.10.1-group.yaml"] {
        let docs = yaml_documents(file);
        // With the planned runner ServiceAccount, the chart makes no
        // ServiceAccount of its own.
        assert!(
            !docs.iter().any(|d| d["kind"] == "ServiceAccount"),
            "{file}"
        );
        let mut set = docs
            .into_iter()
            .find(|d| d["kind"] == "AutoscalingRunnerSet")
            .unwrap();
        let spec = &set["spec"];
        assert_eq!(spec["githubConfigUrl"], "https://github.com/acme", "{file}");
        assert_eq!(spec["runnerGroup"], "platform", "{file}");
        let pod = &spec["template"]["spec"];
        let runner = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "runner")
            .unwrap();
        let env: Vec<(&str, &str)> = runner["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["value"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let only = |name: &str| {
            let found: Vec<&str> = env.iter().filter(|e| e.0 == name).map(|e| e.1).collect();
            assert_eq!(found.len(), 1, "{file}: {name} in {env:?}");
            found[0].to_owned()
        };
        assert_eq!(only("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER"), "true");
        assert_eq!(
            only("ACTIONS_RUNNER_CONTAINER_HOOKS"),
            "/home/runner/k8s/index.js"
        );
        let script = only("ACTIONS_RUNNER_HOOK_JOB_STARTED");
        let template = only("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE");
        // The mount holding the template, and what backs it.
        let mounts = runner["volumeMounts"].as_array().unwrap();
        let holding = |path: &str| {
            mounts
                .iter()
                .filter(|m| path.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
                .collect::<Vec<_>>()
        };
        let template_mounts = holding(&template);
        assert_eq!(
            template_mounts.len(),
            1,
            "{file}: {template} under {mounts:?}"
        );
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == template_mounts[0]["name"])
            .unwrap();
        assert!(volume.get("emptyDir").is_some(), "{file}: {volume}");
        assert!(
            template_mounts[0]
                .get("readOnly")
                .is_none_or(|r| r == false)
        );
        // The work volume, which the workflow pod shares, is mounted elsewhere.
        let work = mounts.iter().find(|m| m["name"] == "work").unwrap();
        assert!(!template.starts_with(work["mountPath"].as_str().unwrap()));
        assert_eq!(
            mounts
                .iter()
                .filter(|m| m["name"] == template_mounts[0]["name"])
                .count(),
            1
        );
        // The script comes from the read-only ConfigMap mount.
        let script_mounts = holding(&script);
        assert_eq!(script_mounts.len(), 1, "{file}");
        assert_eq!(script_mounts[0]["readOnly"], true);
        // The local API server stores it as rendered.
        set["metadata"]["namespace"] = json!(ns);
        set["metadata"]["name"] = json!(format!("platform-{}", &file[9..15]).replace('.', "-"));
        let api: Api<DynamicObject> =
            Api::namespaced_with(admin.clone(), &ns, &autoscaling_runner_set());
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(set.clone()).unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let stored = serde_json::to_value(created).unwrap();
        assert_eq!(stored["spec"]["runnerGroup"], "platform");
        assert_eq!(
            stored["spec"]["template"]["spec"]["volumes"],
            set["spec"]["template"]["spec"]["volumes"]
        );
    }
}

/// The real experimental chart (0.14.2) with the values `plan` writes for a
/// group there: the organisation's scale set in the group's runner group,
/// the runner image that carries runner-identity, one
/// ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE (the path job-started writes, on no
/// mount: the runner container's own files), no hook extension, the group
/// and its configuration for the image's script, and a job container
/// required.
#[tokio::test]
async fn the_real_experimental_chart_renders_a_group_scale_set_with_the_template_in_the_runners_own_files()
 {
    let example = std::fs::read_to_string(root().join("examples/grouped-irsa.yaml")).unwrap();
    let text = example
        .replace(
            "  chart:\n    version: 0.14.2\n",
            "  chart:\n    name: gha-runner-scale-set-experimental\n    version: 0.14.2\n",
        )
        .replace(
            "kubernetes:\n  hooks: kubernetes\n",
            "kubernetes:\n  hooks: kubernetes\n  verifyRunner:\n    runnerImage: ghcr.io/acme/actions-runner-with-identity:2.336.0\n",
        );
    assert_ne!(text, example);
    let planned = crate::common::plan_text(&text);
    assert_eq!(
        planned.repositories[0].values().unwrap(),
        std::fs::read_to_string(arc_data(
            "rendered/runner-identity-group-platform-experimental.values.yaml"
        ))
        .unwrap(),
        "the values changed: render tests/data/arc/rendered/0.14.2-experimental-group.yaml again (its README)"
    );
    let file = "rendered/0.14.2-experimental-group.yaml";
    let docs = yaml_documents(file);
    assert!(!docs.iter().any(|d| d["kind"] == "ServiceAccount"));
    assert!(
        !docs.iter().any(|d| d["kind"] == "ConfigMap"),
        "no hook extension"
    );
    let mut set = docs
        .into_iter()
        .find(|d| d["kind"] == "AutoscalingRunnerSet")
        .unwrap();
    let spec = &set["spec"];
    assert_eq!(spec["githubConfigUrl"], "https://github.com/acme");
    assert_eq!(spec["runnerGroup"], "platform");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "gha-runner");
    let runner = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "runner")
        .unwrap();
    assert_eq!(
        runner["image"],
        "ghcr.io/acme/actions-runner-with-identity:2.336.0"
    );
    let env = runner["env"].as_array().unwrap();
    let only = |name: &str| {
        let found: Vec<&Value> = env.iter().filter(|e| e["name"] == name).collect();
        assert_eq!(found.len(), 1, "{name} in {env:?}");
        found[0]["value"].as_str().unwrap().to_owned()
    };
    assert_eq!(only("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER"), "true");
    assert_eq!(only("RUNNER_IDENTITY_GROUP"), "platform");
    assert_eq!(
        only("ACTIONS_RUNNER_HOOK_JOB_STARTED"),
        "/opt/runner-identity/bin/job-started.sh"
    );
    let config = only("RUNNER_IDENTITY_CONFIG_TEXT");
    assert!(config.contains("- name: platform"), "{config}");
    assert!(!config.contains("billing"), "{config}");
    let template = only("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE");
    // On no mount: not the work volume the workflow pod shares, nor a
    // read-only ConfigMap.
    let mounts = runner["volumeMounts"].as_array().unwrap();
    for m in mounts {
        let at = m["mountPath"].as_str().unwrap();
        assert!(
            template != at && !template.starts_with(&format!("{at}/")),
            "{template} is on the mount {m}"
        );
    }
    assert_eq!(
        mounts
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["work"]
    );
    // The local API server stores it as rendered.
    let admin = admin_client().await;
    install_arc_crds(&admin).await;
    let ns = unique("arcx");
    create_namespace(&ns).await;
    set["metadata"]["namespace"] = json!(ns);
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &autoscaling_runner_set());
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(set).unwrap(),
        )
        .await
        .unwrap();
    let stored = serde_json::to_value(created).unwrap();
    assert_eq!(stored["spec"]["runnerGroup"], "platform");
}

/// The paths where `a` and `b` differ; numbers compare by value (YAML's `0`
/// and the server's `0.0` are one number).
fn differ(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                differ(
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    &format!("{path}.{key}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                differ(u, v, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => out.push(format!("{path}: served {a}, shipped {b}")),
    }
}

/// Seconds of load for the soak (at least the two minutes).
const SOAK_SECONDS: u64 = 125;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_server_survives_two_minutes_of_list_and_apply_load_with_custom_resources() {
    let admin = admin_client().await;
    install_arc_crds(&admin).await;
    let (pid, alive) = apiserver_pid();
    assert!(alive, "the API server (pid {pid}) is not running");
    let ns = unique("soak");
    create_namespace(&ns).await;

    let deadline = Instant::now() + Duration::from_secs(SOAK_SECONDS);
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    // Writers: server-side apply of runner sets (strings "" included) and
    // ConfigMaps with changing content.
    for w in 0..2 {
        let (client, ns, done) = (admin.clone(), ns.clone(), Arc::clone(&done));
        workers.push(tokio::spawn(async move {
            let sets: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &ns, &autoscaling_runner_set());
            let maps: Api<ConfigMap> = Api::namespaced(client, &ns);
            let params = PatchParams::apply(MANAGER).force();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let name = format!("set-{w}-{}", i % 25);
                let set = json!({
                    "apiVersion": "actions.github.com/v1alpha1",
                    "kind": "AutoscalingRunnerSet",
                    "metadata": {"name": name, "annotations": {"round": i.to_string()}},
                    "spec": {
                        "githubConfigUrl": "https://github.com/acme/api",
                        "githubConfigSecret": "github-config",
                        "runnerGroup": "",
                        "runnerScaleSetName": name,
                        "template": {"spec": {"serviceAccountName": "api-runner",
                            "containers": [{"name": "runner", "image": "ghcr.io/actions/actions-runner:latest",
                                "env": [{"name": "ROUND", "value": i.to_string()}, {"name": "EMPTY", "value": ""}]}]}}
                    }
                });
                sets.patch(&name, &params, &Patch::Apply(&set))
                    .await
                    .unwrap_or_else(|e| panic!("apply of {name} failed: {e}"));
                let map = json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name},
                    "data": {"round": i.to_string(), "empty": ""}
                });
                maps.patch(&name, &params, &Patch::Apply(&map))
                    .await
                    .unwrap_or_else(|e| panic!("apply of ConfigMap {name} failed: {e}"));
                i += 1;
                done.fetch_add(2, Ordering::Relaxed);
            }
        }));
    }
    // Readers: watch-cache lists (resourceVersion=0, the path that crashed)
    // and consistent lists, of custom resources and of built-in kinds.
    for r in 0..3 {
        let (client, done) = (admin.clone(), Arc::clone(&done));
        workers.push(tokio::spawn(async move {
            let sets: Api<DynamicObject> = Api::all_with(client.clone(), &autoscaling_runner_set());
            let maps: Api<ConfigMap> = Api::all(client.clone());
            let namespaces: Api<Namespace> = Api::all(client);
            let cached = ListParams::default().match_any();
            let consistent = ListParams::default();
            while Instant::now() < deadline {
                let params = if r == 0 { &consistent } else { &cached };
                sets.list(params)
                    .await
                    .unwrap_or_else(|e| panic!("list of runner sets failed: {e}"));
                maps.list_metadata(params)
                    .await
                    .unwrap_or_else(|e| panic!("list of ConfigMaps failed: {e}"));
                namespaces
                    .list_metadata(params)
                    .await
                    .unwrap_or_else(|e| panic!("list of namespaces failed: {e}"));
                done.fetch_add(3, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a load worker failed");
    }

    let (after, alive) = apiserver_pid();
    assert_eq!(after, pid, "the API server was restarted during the soak");
    assert!(alive, "the API server (pid {pid}) died during the soak");
    let sets: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &autoscaling_runner_set());
    assert_eq!(
        sets.list(&ListParams::default()).await.unwrap().items.len(),
        50
    );
    let requests = done.load(Ordering::Relaxed);
    eprintln!("soak: {requests} requests in {SOAK_SECONDS} s, API server pid {pid} alive");
    assert!(requests > 1000, "the soak sent only {requests} requests");
}
