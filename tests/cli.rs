//! Tier 3: the built binary, run the way a user or the action runner runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runner-identity"));
    cmd.args(args)
        .current_dir(common::root())
        .env_remove("KUBECONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn plan_prints_every_object_in_a_stable_order() {
    let a = run(&["plan", "-c", "examples/org-irsa.yaml"], &[]);
    assert!(a.status.success(), "{}", stderr(&a));
    let text = stdout(&a);
    // 3 repositories × (Namespace, 2 ServiceAccounts, Role, RoleBinding, ConfigMap).
    assert_eq!(text.matches("---\n").count(), 18);
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .take(6)
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap"
        ]
    );
    let b = run(&["plan", "-c", "examples/org-irsa.yaml"], &[]);
    assert_eq!(text, stdout(&b), "same input, same output");
}

#[test]
fn plan_output_matches_the_snapshot() {
    let o = run(&["plan", "-c", "examples/org-irsa.yaml"], &[]);
    insta::assert_snapshot!("org_irsa_manifests", stdout(&o));
    let o = run(
        &["plan", "-c", "examples/pod-identity.yaml", "-o", "json"],
        &[],
    );
    insta::assert_snapshot!("pod_identity_json", stdout(&o));
}

#[test]
fn plan_out_dir_writes_one_folder_per_repository() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "plan",
            "-c",
            "examples/org-irsa.yaml",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut folders: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders.len(), 3, "{folders:?}");
    for folder in &folders {
        for file in [
            "manifests.yaml",
            "values.yaml",
            "hook-template.yaml",
            "trust-policy.json",
            "permissions-policy.json",
        ] {
            let path = dir.path().join(folder).join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if file.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&text).unwrap();
            } else {
                for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
                    serde_yaml::from_str::<serde_yaml::Value>(doc).unwrap();
                }
            }
        }
    }
    let values = std::fs::read_to_string(dir.path().join("acme.api/values.yaml")).unwrap();
    let values: serde_yaml::Value = serde_yaml::from_str(&values).unwrap();
    assert_eq!(
        values["githubConfigUrl"].as_str(),
        Some("https://github.com/acme/api")
    );
    assert_eq!(
        values["template"]["spec"]["serviceAccountName"].as_str(),
        Some("gha-runner")
    );
}

#[test]
fn plan_json_is_one_document_for_machines() {
    let o = run(
        &[
            "plan",
            "-c",
            "examples/pod-identity.yaml",
            "--output",
            "json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let repos = v["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(repos[1]["repository"], "Platform/infra.live");
    let trust = &repos[0]["iamRole"]["trustPolicy"]["Statement"][0];
    assert_eq!(trust["Principal"]["Service"], "pods.eks.amazonaws.com");
    assert_eq!(
        trust["Action"],
        serde_json::json!(["sts:AssumeRole", "sts:TagSession"])
    );
    // Pod Identity: no IRSA annotation on the job ServiceAccount.
    let job_sa = &repos[0]["objects"][2];
    assert_eq!(job_sa["kind"], "ServiceAccount");
    assert!(
        job_sa["metadata"]["annotations"]
            .get("eks.amazonaws.com/role-arn")
            .is_none()
    );
}

#[test]
fn config_is_read_from_the_action_input_variable() {
    let o = run(&["plan"], &[("INPUT_CONFIG", "examples/pod-identity.yaml")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("name: arc-platform-deploy-tools"));
}

#[test]
fn bad_config_exits_2_names_the_problem_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(common::root().join("examples/org-irsa.yaml")).unwrap();
    std::fs::write(
        &config,
        text.replace("accountId: \"111122223333\"", "accountId: \"123\""),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(
        &[
            "plan",
            "-c",
            config.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("aws.accountId"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(!out.exists(), "a failed plan must write nothing");

    let o = run(&["plan", "-c", "does-not-exist.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does-not-exist.yaml"), "{}", stderr(&o));
}

#[test]
fn schema_is_a_json_schema_of_the_config() {
    let o = run(&["schema"], &[]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"));
    let required: Vec<&str> = v["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    for key in ["github", "cluster", "aws"] {
        assert!(required.contains(&key), "{key} required: {required:?}");
    }
    // `repositories:` or `select:` (the validation requires one of them).
    for key in ["repositories", "select"] {
        assert!(v["properties"].get(key).is_some(), "{key} missing");
    }
    assert_eq!(
        v["additionalProperties"], false,
        "unknown keys are rejected"
    );
}

#[test]
fn apply_without_a_reachable_cluster_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let o = run(
        &[
            "apply",
            "-c",
            "examples/org-irsa.yaml",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error: list Secret") && err.contains("Connection refused"),
        "{err}"
    );
    assert_eq!(
        err.matches("Connection refused").count(),
        1,
        "the cause chain is printed once: {err}"
    );
}

#[test]
fn action_entry_point_runs_the_command_input() {
    let o = run(
        &["action"],
        &[
            ("INPUT_COMMAND", "plan"),
            ("INPUT_CONFIG", "examples/org-irsa.yaml"),
            ("INPUT_OUTPUT", "json"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["repositories"].as_array().unwrap().len(), 3);

    let o = run(&["action"], &[("INPUT_COMMAND", "destroy")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`destroy`") && stderr(&o).contains("verify-job"),
        "{}",
        stderr(&o)
    );

    // verify-job without any AWS mechanism: fails closed, exit 1, with an annotation.
    let o = run(
        &["action"],
        &[
            ("INPUT_COMMAND", "verify-job"),
            ("GITHUB_ACTIONS", "true"),
            ("INPUT_CONFIG", ""),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("::error title=runner-identity job%3A mechanism::"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn action_yml_dockerfile_and_the_binary_agree() {
    let action: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(common::root().join("action.yml")).unwrap())
            .unwrap();
    let dockerfile = std::fs::read_to_string(common::root().join("action/Dockerfile")).unwrap();
    let runs = &action["runs"];
    // The hooks ignore the image's ENTRYPOINT: action.yml names the binary the image holds.
    let entrypoint = runs["entrypoint"].as_str().unwrap();
    assert!(
        dockerfile.contains(&format!("/out/runner-identity {entrypoint}")),
        "the Dockerfile does not install {entrypoint}"
    );
    assert_eq!(runs["args"][0].as_str(), Some("action"));
    assert!(
        runs["image"]
            .as_str()
            .unwrap()
            .starts_with("docker://ghcr.io/")
    );
    // A busybox-class base with sh, env and tail, never scratch.
    let final_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(
        final_stage.starts_with("busybox:"),
        "final stage must be busybox"
    );
    assert!(
        final_stage.contains("ca-certificates.crt"),
        "the trust store is copied"
    );
    assert!(!dockerfile.contains("FROM scratch"));
    // The image's user shares the planned fsGroup, so it reads the projected token.
    let fs_group = common::plan_text(&common::irsa_config("o", &["r"], "https://x.example/id/1"))
        .repositories[0]
        .hook_template
        .data
        .as_ref()
        .unwrap()[runner_identity::plan::HOOK_TEMPLATE_KEY]
        .contains("fsGroup: 1001");
    assert!(fs_group && dockerfile.contains("USER 1001:1001"));

    // Every input reaches the binary as INPUT_<NAME> (upper-case, hyphens kept).
    let mut help = String::new();
    for args in [
        &["verify", "job", "--help"][..],
        &["verify", "runner", "--help"],
        &["apply", "--help"],
    ] {
        help.push_str(&stdout(&run(args, &[])));
    }
    for (name, _) in action["inputs"].as_mapping().unwrap() {
        let var = format!("INPUT_{}", name.as_str().unwrap().to_uppercase());
        if var == "INPUT_COMMAND" {
            continue; // read by the `action` entry point itself
        }
        assert!(help.contains(&var), "no flag reads {var}");
    }
    // And every output is a fact verify writes to GITHUB_OUTPUT.
    let source = std::fs::read_to_string(common::root().join("src/verify/job.rs")).unwrap()
        + &std::fs::read_to_string(common::root().join("src/verify/runner.rs")).unwrap();
    for (name, _) in action["outputs"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            name == "result" || source.contains(&format!("\"{name}\"")),
            "output {name} is never set"
        );
    }
}
