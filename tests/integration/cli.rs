//! Tier 3: the built binary, run the way a user or the action runner runs it.

use crate::common::cli::{Ran, ri};

fn run(args: &[&str], envs: &[(&str, &str)]) -> Ran {
    ri(args).envs(envs).run()
}

/// A kubeconfig whose server is a loopback port nothing listens on.
/// `runner-identity ARGS --kubeconfig K`, with K a kubeconfig whose server
/// nothing listens on.
fn run_unreachable(args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_unreachable_kubeconfig(&kubeconfig);
    let mut args = args.to_vec();
    args.extend(["--kubeconfig", kubeconfig.to_str().unwrap()]);
    run(&args, &[])
}

fn write_unreachable_kubeconfig(path: &std::path::Path) {
    std::fs::write(
        path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
}

#[test]
fn plan_prints_every_object_in_a_stable_order() {
    let a = run(&["plan", "-c", "examples/org-irsa.yaml"], &[]);
    assert!(a.code == Some(0), "{}", a.stderr);
    let text = a.stdout;
    // 3 repositories × (Namespace, NetworkPolicy, 2 ServiceAccounts, Role,
    // RoleBinding, ConfigMap).
    assert_eq!(text.matches("---\n").count(), 21);
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .take(7)
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "NetworkPolicy",
            "ServiceAccount",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap"
        ]
    );
    let b = run(&["plan", "-c", "examples/org-irsa.yaml"], &[]);
    assert_eq!(text, b.stdout, "same input, same output");
}

#[test]
fn plan_output_matches_the_snapshot() {
    let o = run(&["plan", "-c", "examples/org-irsa.yaml"], &[]);
    insta::assert_snapshot!("org_irsa_manifests", o.stdout);
    let o = run(
        &["plan", "-c", "examples/pod-identity.yaml", "-o", "json"],
        &[],
    );
    insta::assert_snapshot!("pod_identity_json", o.stdout);
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
    assert!(o.code == Some(0), "{}", o.stderr);
    // stdout says what was written, a line per repository, not the manifests.
    let lines: Vec<String> = o.stdout.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    assert!(!o.stdout.contains("kind: "), "{}", o.stdout);
    let api_folder = dir.path().join("acme.api");
    assert!(
        lines.contains(&format!("{}  acme/api", api_folder.display())),
        "{lines:?}"
    );
    let mut folders: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
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

/// Every file under `dir`, relative, sorted.
fn tree(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn plan_out_dir_replaces_its_own_output_as_a_whole_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let plan_into = |config: &str, out: &std::path::Path| {
        run(
            &["plan", "-c", config, "--out-dir", out.to_str().unwrap()],
            &[],
        )
    };
    let o = plan_into("examples/org-irsa.yaml", &out);
    assert!(o.code == Some(0), "{}", o.stderr);
    let three = tree(&out);
    assert!(
        three.iter().any(|f| f.starts_with("acme.web.frontend/")),
        "{three:?}"
    );

    // Two repositories leave the configuration: their folders go too
    // (before, they stayed beside the new output).
    let one = tmp.path().join("one.yaml");
    let text =
        std::fs::read_to_string(crate::common::root().join("examples/org-irsa.yaml")).unwrap();
    let start = text.find("repositories:").unwrap();
    let end = start + text[start..].find("\ncluster:").unwrap();
    std::fs::write(
        &one,
        format!(
            "{}repositories: [api]\n{}",
            &text[..start],
            &text[end + 1..]
        ),
    )
    .unwrap();
    let o = plan_into(one.to_str().unwrap(), &out);
    assert!(o.code == Some(0), "{}", o.stderr);
    let now = tree(&out);
    assert!(
        now.iter()
            .all(|f| f.starts_with("acme.api/") || f.starts_with(".runner-identity")),
        "{now:?}"
    );
    assert!(now.contains(&"acme.api/values.yaml".to_owned()), "{now:?}");

    // A file runner-identity did not write: refused, the folder unchanged.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = plan_into("examples/org-irsa.yaml", &out);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("notes.txt"), "{}", o.stderr);
    let mut with_notes = now.clone();
    with_notes.push("notes.txt".into());
    with_notes.sort();
    assert_eq!(tree(&out), with_notes);
    std::fs::remove_file(out.join("notes.txt")).unwrap();

    // A link in the folder is never followed: what it points to is untouched.
    let outside = tmp.path().join("outside.yaml");
    std::fs::write(&outside, "precious").unwrap();
    std::fs::remove_file(out.join("acme.api/values.yaml")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("acme.api/values.yaml")).unwrap();
    let o = plan_into("examples/org-irsa.yaml", &out);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("symbolic link"), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");

    // The folder itself a link: refused.
    let linked = tmp.path().join("linked");
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &linked).unwrap();
    std::fs::create_dir(tmp.path().join("elsewhere")).unwrap();
    let o = plan_into("examples/org-irsa.yaml", &linked);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        std::fs::read_dir(tmp.path().join("elsewhere"))
            .unwrap()
            .next()
            .is_none()
    );

    // Nothing of the staging tree is left behind.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("runner-identity-new") || n.ends_with(".old"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // `-o json` with --out-dir: the folders and files written, as JSON.
    let fresh = tmp.path().join("fresh");
    let o = run(
        &[
            "plan",
            "-c",
            "examples/org-irsa.yaml",
            "--out-dir",
            fresh.to_str().unwrap(),
            "-o",
            "json",
        ],
        &[],
    );
    assert!(o.code == Some(0), "{}", o.stderr);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let repos = doc["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 3);
    for r in repos {
        let folder = std::path::PathBuf::from(r["folder"].as_str().unwrap());
        for f in r["files"].as_array().unwrap() {
            assert!(folder.join(f.as_str().unwrap()).is_file(), "{r}");
        }
    }
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
    assert!(o.code == Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
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
    assert!(o.code == Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("name: arc-platform-deploy-tools"));
}

/// `plan -c config --out-dir <config's folder>/out`: the run and the out-dir.
fn plan_to_out_dir(config: &std::path::Path) -> (Ran, std::path::PathBuf) {
    let out = config.with_file_name("out");
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
    (o, out)
}

/// A configuration of `api` and `web` in group `platform`, plus `docs` on
/// its own scale set; `extra` is appended.
fn grouped_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    // `extra` goes under `kubernetes:`, the text's last block.
    let config = dir.join("grouped.yaml");
    let namespace = if extra.contains("sharedNamespace") {
        "arc-runners"
    } else {
        "gha-{repo}"
    };
    let text =
        crate::common::irsa_config("acme", &["api", "web", "docs"], "https://o.example/id/1")
            .replace("\"{owner}-{repo}\"", namespace)
            .replace("  owner: acme\n", "  owner: acme\n  ownerId: 9\n")
            .replace("  - api\n", "  - {name: api, id: 1}\n")
            .replace("  - web\n", "  - {name: web, id: 2}\n");
    std::fs::write(
        &config,
        format!("{text}{extra}groups:\n  - name: platform\n    repositories: [api, web]\n"),
    )
    .unwrap();
    config
}

#[test]
fn a_group_is_planned_as_one_scale_set_with_a_job_identity_per_member() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = plan_to_out_dir(&grouped_config(dir.path(), ""));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let kinds = |f: &str| -> Vec<(String, String, String)> {
        serde_yaml::Deserializer::from_str(&read(f))
            .map(|d| {
                let v = <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap();
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                (
                    s("kind"),
                    v["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    v["metadata"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let api = kinds("acme.api/manifests.yaml");
    let web = kinds("acme.web/manifests.yaml");
    let docs = kinds("acme.docs/manifests.yaml");
    // The group's namespace and runner come once, with its first member.
    assert!(
        api.contains(&("Namespace".into(), String::new(), "gha-platform".into())),
        "{api:?}"
    );
    assert!(api.contains(&(
        "ServiceAccount".into(),
        "gha-platform".into(),
        "gha-runner".into()
    )));
    assert!(api.iter().any(|k| k.0 == "Role") && api.iter().any(|k| k.0 == "ConfigMap"));
    // Each member: its own job ServiceAccount in the group's namespace, and nothing else.
    assert_eq!(web.len(), 1, "{web:?}");
    assert_eq!(web[0].0, "ServiceAccount");
    assert_eq!(web[0].1, "gha-platform");
    let api_job: Vec<_> = api
        .iter()
        .filter(|k| k.0 == "ServiceAccount" && k.2 != "gha-runner")
        .collect();
    assert_eq!(api_job.len(), 1);
    assert_ne!(api_job[0].2, web[0].2);
    // A repository in no group keeps its own scale set and namespace.
    assert!(
        docs.contains(&("Namespace".into(), String::new(), "gha-docs".into())),
        "{docs:?}"
    );
    // One scale set: values with the group's first member only.
    assert!(!out.join("acme.web/values.yaml").exists());
    let values: serde_yaml::Value = serde_yaml::from_str(&read("acme.api/values.yaml")).unwrap();
    assert_eq!(
        values["githubConfigUrl"].as_str(),
        Some("https://github.com/acme")
    );
    assert_eq!(values["runnerGroup"].as_str(), Some("platform"));
    let runner = &values["template"]["spec"]["containers"][0];
    let env = |name: &str| {
        runner["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .map(|e| e["value"].as_str().unwrap().to_owned())
    };
    let template = env("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE").unwrap();
    assert!(!template.starts_with("/home/runner/_work"), "{template}");
    assert_eq!(
        env("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER").as_deref(),
        Some("true")
    );
    assert!(env("ACTIONS_RUNNER_HOOK_JOB_STARTED").is_some());
    // Each member's template names its own job ServiceAccount.
    for (folder, job) in [("acme.api", &api_job[0].2), ("acme.web", &web[0].2)] {
        let t = read(&format!("{folder}/hook-template.yaml"));
        assert!(t.contains(&format!("serviceAccountName: \"{job}\"")), "{t}");
    }
    // Trust: each member's role trusts its own job ServiceAccount only.
    let trust = read("acme.web/trust-policy.json");
    assert!(
        trust.contains(&format!("system:serviceaccount:gha-platform:{}", web[0].2)),
        "{trust}"
    );
    assert!(!trust.contains(&api_job[0].2));
}

#[test]
fn a_group_is_refused_where_it_cannot_be_built() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, says) in [
        (
            "  chart: {name: gha-runner-scale-set-experimental, version: 0.14.2}\n",
            "set kubernetes.verifyRunner.runnerImage to a runner image that carries runner-identity",
        ),
        ("  sharedNamespace: true\n", "has no {repo}"),
        (
            "  podSecurity: privileged\n",
            "must enforce Pod Security baseline",
        ),
        (
            "  names: {scaleSet: \"{repo}-scale-set-of-the-platform\"}\n",
            "a group's may have at most 28",
        ),
    ] {
        let config = grouped_config(dir.path(), extra);
        let (o, out) = plan_to_out_dir(&config);
        assert_eq!(o.code, Some(2), "{extra}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{extra}: {}", o.stderr);
        assert!(!out.exists(), "a refused plan writes nothing");
    }
}

#[test]
fn bad_config_exits_2_names_the_problem_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    let text =
        std::fs::read_to_string(crate::common::root().join("examples/org-irsa.yaml")).unwrap();
    std::fs::write(
        &config,
        text.replace("accountId: \"111122223333\"", "accountId: \"123\""),
    )
    .unwrap();
    let (o, out) = plan_to_out_dir(&config);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("aws.accountId"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
    assert!(!out.exists(), "a failed plan must write nothing");

    let o = run(&["plan", "-c", "does-not-exist.yaml"], &[]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("does-not-exist.yaml"), "{}", o.stderr);
}

#[test]
fn schema_is_a_json_schema_of_the_config() {
    let o = run(&["schema"], &[]);
    assert!(o.code == Some(0));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
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
    let o = run_unreachable(&["apply", "-c", "examples/org-irsa.yaml"]);
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    let err = o.stderr;
    // The first request (the ARC controller's version) names the server.
    assert!(
        err.contains("error: get Deployment arc-systems/arc-gha-rs-controller")
            && err.contains("cannot reach the API server https://127.0.0.1:1")
            && err.contains("Connection refused"),
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
    assert!(o.code == Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["repositories"].as_array().unwrap().len(), 3);

    let o = run(&["action"], &[("INPUT_COMMAND", "destroy")]);
    assert_eq!(o.code, Some(2));
    assert!(
        o.stderr.contains("`destroy`") && o.stderr.contains("verify-job"),
        "{}",
        o.stderr
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
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stdout
            .contains("::error title=runner-identity job%3A mechanism::"),
        "{}",
        o.stdout
    );
}

#[test]
fn action_yml_dockerfile_and_the_binary_agree() {
    let action: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(crate::common::root().join("action.yml")).unwrap(),
    )
    .unwrap();
    let dockerfile =
        std::fs::read_to_string(crate::common::root().join("action/Dockerfile")).unwrap();
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
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    let final_stage = stages.last().unwrap();
    let base = final_stage.split_whitespace().next().unwrap();
    let base_image = stages
        .iter()
        .find_map(|s| s.lines().next()?.strip_suffix(&format!(" AS {base}")))
        .unwrap_or(base);
    assert!(
        base_image.starts_with("busybox:"),
        "final stage must be busybox, not {base_image}"
    );
    assert!(
        final_stage.contains("ca-certificates.crt"),
        "the trust store is copied"
    );
    assert!(!dockerfile.contains("FROM scratch"));
    // The build stage has what the crate reads at build time: action.yml (the
    // declared inputs are compiled in) and .cargo (the build environment).
    let build_stage = stages.iter().find(|s| s.starts_with("rust:")).unwrap();
    let copied: Vec<&str> = build_stage
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(str::split_whitespace)
        .collect();
    for needed in ["action.yml", ".cargo", "src", "templates", "Cargo.lock"] {
        assert!(
            copied.contains(&needed),
            "the build stage does not copy {needed}: {copied:?}"
        );
    }
    // The image's user shares the planned fsGroup, so it reads the projected token.
    let fs_group = crate::common::plan_text(&crate::common::irsa_config(
        "o",
        &["r"],
        "https://x.example/id/1",
    ))
    .repositories[0]
        .scale_set
        .as_ref()
        .unwrap()
        .config_map
        .data
        .as_ref()
        .unwrap()[runner_identity::plan::HOOK_TEMPLATE_KEY]
        .contains("fsGroup: 1001");
    assert!(fs_group && dockerfile.contains("USER 1001:1001"));
}

/// Every `INPUT_*` variable a flag of any command reads.
fn input_variables_read(cmd: &clap::Command, out: &mut std::collections::BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(var) = arg.get_env().and_then(|v| v.to_str())
            && var.starts_with("INPUT_")
        {
            out.insert(var.to_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        input_variables_read(sub, out);
    }
}

#[test]
fn every_declared_input_is_read_and_every_variable_read_is_declared() {
    use clap::CommandFactory;
    let declared = runner_identity::cli::declared_input_variables().unwrap();
    // GitHub's naming: the input name upper-cased, hyphens kept.
    assert!(declared.contains("INPUT_DRY-RUN"), "{declared:?}");
    let mut read = std::collections::BTreeSet::new();
    input_variables_read(&runner_identity::cli::Cli::command(), &mut read);
    // `command` is read by the `action` entry point itself.
    read.insert("INPUT_COMMAND".to_owned());
    let undeclared: Vec<&String> = read.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "read but not declared in action.yml: {undeclared:?}"
    );
    let unread: Vec<&String> = declared.difference(&read).collect();
    assert!(
        unread.is_empty(),
        "declared in action.yml but read by no flag: {unread:?}"
    );
    for input in [
        "dry-run", "prune", "adopt", "skip-aws", "out-dir", "output", "context",
    ] {
        assert!(
            declared.contains(&format!("INPUT_{}", input.to_uppercase())),
            "action.yml does not declare {input}"
        );
    }
}

#[test]
fn action_refuses_an_input_action_yml_does_not_declare() {
    // A misspelt safety input (underscore for hyphen) used to be ignored: a
    // workflow asking for a dry run got a real apply.
    let o = run(
        &["action"],
        &[
            ("INPUT_COMMAND", "plan"),
            ("INPUT_CONFIG", "examples/org-irsa.yaml"),
            ("INPUT_DRY_RUN", "true"),
        ],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("INPUT_DRY_RUN"), "{}", o.stderr);
    assert!(o.stderr.contains("dry-run"), "{}", o.stderr);
    assert!(o.stdout.is_empty(), "nothing ran: {}", o.stdout);
}

#[test]
fn a_non_utf8_environment_variable_does_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    for args in [
        &["verify", "job"][..],
        &["plan", "-c", "examples/org-irsa.yaml"],
    ] {
        let o = ri(args)
            .env("LATIN1_VALUE", bad)
            .env("GITHUB_ACTIONS", "true")
            .run();
        // verify job: no AWS mechanism here, a failed check (1); plan: 0.
        let want = if args[0] == "verify" { 1 } else { 0 };
        assert_eq!(o.code, Some(want), "{args:?}: {}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
}

#[test]
fn a_closed_stdout_exits_0_quietly() {
    use std::io::{BufRead, BufReader};
    // Enough repositories that the output is far larger than a pipe's buffer.
    let repos: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = repos.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        crate::common::irsa_config("acme", &refs, "https://x.example/id/1"),
    )
    .unwrap();
    let mut child = crate::common::cli::command()
        .args(["plan", "-c", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -n 1`: read one line, then close the pipe.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "---\n");
    let o = Ran::from(child.wait_with_output().unwrap());
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stderr.is_empty(), "quietly: {}", o.stderr);
}

#[test]
fn a_missing_or_malformed_local_credential_exits_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let base = "github:\n  owner: acme\nselect:\n  names: [\"*\"]\ncluster:\n  name: c\n  oidcIssuer: https://x.example/id/1\naws:\n  accountId: \"111122223333\"\n  mode: irsa\n";
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "not a key").unwrap();
    let cases = [
        ("", "export GITHUB_TOKEN"),
        (
            "  auth:\n    app: {id: 1, privateKey: {file: /nonexistent/key.pem}}\n",
            "cannot read /nonexistent/key.pem",
        ),
        (
            &format!(
                "  auth:\n    app: {{id: 1, privateKey: {{file: {}}}}}\n",
                key.display()
            ),
            "not an RSA private key",
        ),
    ];
    for (auth, want) in cases {
        let config = dir.path().join("c.yaml");
        std::fs::write(
            &config,
            base.replacen("  owner: acme\n", &format!("  owner: acme\n{auth}"), 1),
        )
        .unwrap();
        let o = ri(&["discover", "-c", config.to_str().unwrap()])
            .env_remove("GITHUB_TOKEN")
            .run();
        assert_eq!(o.code, Some(2), "{auth}: {}", o.stderr);
        assert!(o.stderr.contains(want), "{auth}: {}", o.stderr);
    }
}

#[test]
fn doctor_exits_3_when_the_api_server_does_not_answer_and_2_for_a_missing_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_unreachable_kubeconfig(&kubeconfig);
    // Before, an unreachable server was an "error-level finding" (exit 1).
    let o = run(
        &[
            "doctor",
            "--skip-aws",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    assert!(o.stderr.contains("AutoscalingRunnerSet"), "{}", o.stderr);
    // Before, a kubeconfig that does not exist exited 3 like a failed server.
    let missing = dir.path().join("nope");
    for command in [
        &["doctor", "--skip-aws"][..],
        &["apply", "-c", "examples/org-irsa.yaml"][..],
    ] {
        let mut args = command.to_vec();
        args.extend(["--kubeconfig", missing.to_str().unwrap()]);
        let o = run(&args, &[]);
        assert_eq!(o.code, Some(2), "{command:?}: {}", o.stderr);
        assert!(o.stderr.contains("nope"), "{}", o.stderr);
    }
}

#[test]
fn bootstrap_refuses_a_repository_that_is_not_one_or_that_it_would_ignore() {
    // Before: `not a repo` was accepted, and without --out-dir ignored.
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "bootstrap",
            "-c",
            "examples/org-irsa.yaml",
            "--github-repository",
            "not a repo",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("owner/name"), "{}", o.stderr);
    let o = run(
        &[
            "bootstrap",
            "-c",
            "examples/org-irsa.yaml",
            "--github-repository",
            "acme/platform",
        ],
        &[],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("--out-dir"), "{}", o.stderr);
}

#[test]
fn an_insecure_kubeconfig_is_named_once_in_the_products_words() {
    // Before: kube's `WARN … Server cert bypassed`, once per connection.
    let mut kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(crate::common::kubeconfig_path()).unwrap())
            .unwrap();
    for cluster in kubeconfig["clusters"].as_sequence_mut().unwrap() {
        let c = cluster["cluster"].as_mapping_mut().unwrap();
        c.remove("certificate-authority-data");
        c.remove("certificate-authority");
        c.insert("insecure-skip-tls-verify".into(), true.into());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
    let o = run(
        &[
            "doctor",
            "--skip-aws",
            "--kubeconfig",
            path.to_str().unwrap(),
            "-n",
            "no-such-namespace",
        ],
        &[],
    );
    let err = o.stderr;
    assert_eq!(err.matches("insecure-skip-tls-verify").count(), 1, "{err}");
    assert!(!err.contains("Server cert bypassed"), "{err}");
}

#[test]
fn completion_scripts_name_the_commands_but_not_the_hidden_action() {
    // How each shell's script offers a subcommand.
    let offers = |shell: &str, script: &str, command: &str| match shell {
        "bash" => script.contains(&format!("runner__identity__subcmd__{command}\"")),
        "zsh" => script.contains(&format!("'{command}:")),
        _ => script.contains(&format!("-a \"{command}\"")),
    };
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completion", shell], &[]);
        assert!(o.code == Some(0), "{shell}: {}", o.stderr);
        let script = o.stdout;
        for command in ["plan", "apply", "diff", "doctor", "bootstrap", "verify"] {
            assert!(offers(shell, &script, command), "{shell}: no {command}");
        }
        assert!(
            !offers(shell, &script, "action"),
            "{shell} offers the hidden `action`"
        );
    }
}

#[test]
fn dry_run_takes_kubectls_spelling_and_refuses_a_client_dry_run() {
    // Before, `--dry-run=server` was refused.
    let o = run(
        &["apply", "-c", "examples/org-irsa.yaml", "--dry-run=client"],
        &[],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("runner-identity plan"), "{}", o.stderr);
    let o = run_unreachable(&[
        "apply",
        "-c",
        "examples/org-irsa.yaml",
        "--skip-aws",
        "--dry-run=server",
    ]);
    // Accepted: it gets as far as the (unreachable) server.
    assert_eq!(o.code, Some(3), "{}", o.stderr);
}

/// Every visible command's path (`["verify", "job"]`), depth first.
fn command_paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        out.push(path.clone());
        command_paths(sub, &path, out);
    }
}

#[test]
fn help_of_every_command_matches_its_snapshot() {
    use clap::CommandFactory;
    let mut paths = vec![Vec::new()];
    command_paths(&runner_identity::cli::Cli::command(), &[], &mut paths);
    assert!(paths.len() > 8, "{paths:?}");
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = ri(&args).run().expect(0);
        let name = if path.is_empty() {
            "help".to_owned()
        } else {
            format!("help_{}", path.join("_"))
        };
        insta::assert_snapshot!(name, o.stdout);
    }
}

#[test]
fn experimental_values_that_set_runner_container_env_are_refused_with_why() {
    // 0.14 ignores runner.container.env; the newest templates (0.15 line) let
    // it override runner.env, where the planned variables are: either way
    // the runner would not get what was planned.
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    let stock =
        std::fs::read_to_string(crate::common::root().join("templates/values-experimental.yaml"))
            .unwrap();
    let changed = stock.replacen(
        "  container:\n",
        "  container:\n    env: [{name: ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE, value: /tmp/x.yaml}]\n",
        1,
    );
    assert_ne!(stock, changed);
    std::fs::write(templates.join("values-experimental.yaml"), changed).unwrap();
    let config = dir.path().join("config.yaml");
    let text = crate::common::TestConfig::irsa("acme", &["api"], "https://o.example/id/1")
        .with(|c| {
            c.kubernetes.chart.name = runner_identity::config::ChartName::Experimental;
            c.kubernetes.chart.version = "0.15.0".into();
        })
        .yaml();
    std::fs::write(&config, text).unwrap();
    let ran = ri(&[
        "plan",
        "-c",
        config.to_str().unwrap(),
        "--templates",
        templates.to_str().unwrap(),
    ])
    .run()
    .expect(2);
    assert!(
        ran.stderr.contains("runner.container.env") && ran.stderr.contains("override runner.env"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
}

#[test]
fn an_inline_policy_that_takes_the_chain_statement_id_is_refused_before_apply() {
    // IAM refuses a policy with two statements of one Sid: at apply (exit
    // 3, after other writes) unless plan refuses it first.
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("permissions-policy.json"),
        r#"{"Version": "2012-10-17", "Statement": [{"Sid": "ChainToTargetRole", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}"#,
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    let text = "github: {owner: acme}\nrepositories:\n  - name: api\n    aws: {targetRoleArn: 'arn:aws:iam::444455556666:role/reader'}\n\
                cluster: {name: prod, region: us-east-1}\n\
                aws: {accountId: '111122223333', mode: pod-identity, permissionsBoundary: 'arn:aws:iam::111122223333:policy/b'}\n";
    std::fs::write(&config, text).unwrap();
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "-c", config.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        ri(&args).run()
    };
    let ran = plan(&["--templates", templates.to_str().unwrap()]).expect(2);
    assert!(
        ran.stderr.contains("Sid `ChainToTargetRole`"),
        "{}",
        ran.stderr
    );
    // With the embedded template, the statement is added once.
    let ran = plan(&[]).expect(0);
    assert_eq!(
        ran.stdout.matches("\"ChainToTargetRole\"").count(),
        1,
        "{}",
        ran.stdout
    );
}
