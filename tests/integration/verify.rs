//! `verify runner` and `verify job` with real TokenRequest tokens on the local
//! kube-apiserver and moto's STS; `verify job` runs as the built binary with
//! the environment the EKS webhook gives a pod, the way the action runs it.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::jwt::{REQUEST_TOKEN, TestKey, actions_claims, github_oidc, serve_id_token};
use crate::common::*;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{Api, ObjectMeta, PostParams};
use runner_identity::apply::{self, Options};
use runner_identity::config::ChartName;
use runner_identity::names::RepoNames;
use runner_identity::plan::{
    EXTENSION_KEY, HOOK_TEMPLATE_KEY, IMAGE_JOB_STARTED, JOB_STARTED_KEY, Plan, RUNNER_CONFIG_KEY,
};
use runner_identity::verify::runner::{RunnerInputs, verify};
use runner_identity::verify::{Status, Verdict};

const ACCOUNT: &str = "123456789012";

struct Fixture {
    dir: tempfile::TempDir,
    config: TestConfig,
    plan: Plan,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        Fixture::with(prefix, |c| c).await
    }

    /// A fixture whose configuration `change` adjusts before it is planned and applied.
    async fn with(prefix: &str, change: impl FnOnce(TestConfig) -> TestConfig) -> Fixture {
        let owner = unique(prefix);
        let config =
            change(TestConfig::irsa(&owner, &["app", "other"], &stack_issuer()).account(ACCOUNT));
        let plan = config.plan();
        let admin = admin_client().await;
        let report = apply::apply(&admin, &plan, &Options::default())
            .await
            .unwrap();
        assert!(!report.failed());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), config.yaml()).unwrap();
        let hook = plan.repositories[0].hook_template_text().unwrap();
        std::fs::write(dir.path().join("hook-template.yaml"), hook).unwrap();
        Fixture { dir, config, plan }
    }

    async fn runner_token(&self) -> std::path::PathBuf {
        let n = &self.plan.repositories[0].names;
        let token = service_account_token(
            &admin_client().await,
            &n.namespace,
            &n.runner_service_account,
            None,
        )
        .await;
        let path = self.dir.path().join("runner-token");
        std::fs::write(&path, token).unwrap();
        path
    }

    async fn runner_inputs(&self) -> RunnerInputs {
        RunnerInputs {
            settings: self.config.settings(),
            kubeconfig: Some(kubeconfig_path()),
            token_file: self.runner_token().await,
            hook_template: Some(self.dir.path().join("hook-template.yaml")),
            repository: Some(self.plan.repositories[0].names.repository.clone()),
            require_job_container: Some("true".into()),
            strict: false,
        }
    }
}

fn status(v: &Verdict, name: &str) -> Status {
    v.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))
        .status
}

fn detail(v: &Verdict, name: &str) -> String {
    let c = v.checks.iter().find(|c| c.name == name).unwrap();
    format!("{} {}", c.detail, c.remediation.clone().unwrap_or_default())
}

#[tokio::test]
async fn runner_with_planned_identity_passes() {
    let f = Fixture::new("vr").await;
    let v = verify(&f.runner_inputs().await).await;
    assert!(v.passed(), "{v}");
    assert_eq!(status(&v, "least-privilege"), Status::Pass, "{v}");
    assert_eq!(v.facts["namespace"], f.plan.repositories[0].names.namespace);
}

#[tokio::test]
async fn a_role_without_batch_jobs_is_accepted_as_hooks_v0_8_with_a_warning() {
    // Hooks v0.7.0 check batch/jobs, v0.8 do not: either release's Role is
    // accepted for the `kubernetes` flavour, and the gap is named.
    let f = Fixture::new("vj").await;
    let n = &f.plan.repositories[0].names;
    let batch = |r: &PolicyRule| r.api_groups.as_deref() == Some(&["batch".to_owned()]);
    assert_eq!(drop_role_rules(&n.namespace, &n.role, batch).await, 1);
    let v = verify(&f.runner_inputs().await).await;
    assert!(v.passed(), "{v}");
    assert_eq!(status(&v, "hook-rights"), Status::Warn, "{v}");
    let d = detail(&v, "hook-rights");
    assert!(d.contains("v0.8") && d.contains("v0.7.0"), "{d}");
    assert!(d.contains("create jobs"), "{d}");
    assert_eq!(status(&v, "least-privilege"), Status::Pass, "{v}");
}

#[tokio::test]
async fn runner_missing_pods_exec_names_the_right_and_the_rule() {
    let f = Fixture::new("vx").await;
    let n = &f.plan.repositories[0].names;
    assert_eq!(
        drop_role_rules(&n.namespace, &n.role, rule_for("pods/exec")).await,
        1
    );
    let v = verify(&f.runner_inputs().await).await;
    assert!(!v.passed());
    assert_eq!(status(&v, "hook-rights"), Status::Fail);
    let d = detail(&v, "hook-rights");
    assert!(
        d.contains("get pods/exec") && d.contains("create pods/exec"),
        "{d}"
    );
    assert!(
        d.contains("resources: [\"pods/exec\"]") && d.contains("verbs: [get, create]"),
        "{d}"
    );
}

#[tokio::test]
async fn runner_with_a_cluster_role_binding_fails_least_privilege_when_strict() {
    let f = Fixture::new("vc").await;
    let n = &f.plan.repositories[0].names;
    let admin = admin_client().await;
    // The classic "grant more out of despair": read secrets cluster-wide.
    let name = format!("{}-secrets-reader", n.namespace);
    let cr = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &cr)
        .await
        .unwrap();
    let crbs: Api<ClusterRoleBinding> = Api::all(admin);
    let crb = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: n.runner_service_account.clone(),
            namespace: Some(n.namespace.clone()),
            ..Default::default()
        }]),
    };
    crbs.create(&PostParams::default(), &crb).await.unwrap();
    let mut inputs = f.runner_inputs().await;
    let v = verify(&inputs).await;
    assert_eq!(status(&v, "least-privilege"), Status::Warn, "{v}");
    assert!(v.passed(), "excess rights only warn without --strict");
    inputs.strict = true;
    let v = verify(&inputs).await;
    assert_eq!(status(&v, "least-privilege"), Status::Fail);
    assert!(
        detail(&v, "least-privilege").contains("in every namespace"),
        "{v}"
    );
}

#[tokio::test]
async fn runner_for_another_repository_or_with_a_broken_template_fails() {
    let f = Fixture::new("vw").await;
    let mut inputs = f.runner_inputs().await;
    inputs.repository = Some(f.plan.repositories[1].names.repository.clone());
    let v = verify(&inputs).await;
    assert_eq!(status(&v, "repository"), Status::Fail);
    assert!(
        detail(&v, "repository").contains(&format!(
            "runs-on: {}",
            f.plan.repositories[1].names.scale_set
        )),
        "{v}"
    );

    let mut inputs = f.runner_inputs().await;
    std::fs::write(
        inputs.hook_template.as_ref().unwrap(),
        "spec:\n  securityContext: {fsGroup: 1001}\n",
    )
    .unwrap();
    let v = verify(&inputs).await;
    assert_eq!(status(&v, "hook-template"), Status::Fail);
    assert!(
        detail(&v, "hook-template").contains("serviceAccountName"),
        "{v}"
    );
    inputs.hook_template = Some(f.dir.path().join("missing.yaml"));
    assert_eq!(
        status(&verify(&inputs).await, "hook-template"),
        Status::Fail
    );
    inputs.hook_template = None;
    assert!(detail(&verify(&inputs).await, "hook-template").contains("`default`"));
}

#[test]
fn the_runner_config_map_carries_this_repository_only_and_the_same_names() {
    let config = TestConfig::irsa("acme", &["app", "other"], "https://oidc.example.com/id/X");
    let plan = config.plan();
    for repo in &plan.repositories {
        let data = repo
            .scale_set
            .as_ref()
            .unwrap()
            .config_map
            .data
            .as_ref()
            .unwrap();
        let runner =
            runner_identity::config::parse(&data[RUNNER_CONFIG_KEY], Path::new("cm")).unwrap();
        assert_eq!(runner.repositories.len(), 1, "{}", data[RUNNER_CONFIG_KEY]);
        assert_eq!(RepoNames::new(&runner, &runner.repositories[0]), repo.names);
        assert_eq!(runner.instance, plan.instance);
        assert!(data[JOB_STARTED_KEY].contains(
            "exec /opt/runner-identity/bin/runner-identity verify runner --config /etc/runner-identity/runner-identity.yaml"
        ));
        assert!(
            repo.values()
                .unwrap()
                .contains("ACTIONS_RUNNER_HOOK_JOB_STARTED")
        );
    }
    // Turned off: no hook, no init container, the ConfigMap holds the template only.
    let off = config
        .with(|c| c.kubernetes.verify_runner.enabled = false)
        .plan();
    let repo = &off.repositories[0];
    assert_eq!(
        repo.scale_set
            .as_ref()
            .unwrap()
            .config_map
            .data
            .as_ref()
            .unwrap()
            .len(),
        1
    );
    assert!(
        !repo
            .values()
            .unwrap()
            .contains("ACTIONS_RUNNER_HOOK_JOB_STARTED")
    );
    assert!(!repo.values().unwrap().contains("initContainers"));
}

#[tokio::test]
async fn the_job_started_hook_from_the_applied_config_map_runs_verify_runner() {
    let f = Fixture::new("vh").await;
    let n = &f.plan.repositories[0].names;
    // What the runner pod mounts at /etc/runner-identity, read back from the API server.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin_client().await, &n.namespace);
    let data = cms.get(&n.config_map).await.unwrap().data.unwrap();
    let etc = f.dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    for (k, v) in &data {
        std::fs::write(etc.join(k), v).unwrap();
    }
    // The script as planned, with the pod's paths pointed at this machine and
    // the out-of-pod token and API server added to its command line.
    let token = f.runner_token().await;
    let script = data[JOB_STARTED_KEY]
        .replace(
            "/opt/runner-identity/bin/runner-identity",
            env!("CARGO_BIN_EXE_runner-identity"),
        )
        .replace("/etc/runner-identity", etc.to_str().unwrap())
        .trim_end()
        .to_owned()
        + &format!(
            " --token-file {} --kubeconfig {}\n",
            token.display(),
            kubeconfig_path().display()
        );
    let script_path = f.dir.path().join(JOB_STARTED_KEY);
    std::fs::write(&script_path, script).unwrap();
    let run = |repository: &str| {
        Command::new("bash")
            .arg("-e")
            .arg(&script_path)
            .env_clear()
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_REPOSITORY", repository)
            .env("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true")
            .env(
                "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE",
                etc.join(HOOK_TEMPLATE_KEY),
            )
            .output()
            .unwrap()
    };
    let o = run(&n.repository);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("result: pass"), "{}", text(&o));
    let other = &f.plan.repositories[1].names.repository;
    let o = run(other);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("::error title=runner-identity runner%3A"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn the_experimental_charts_runner_image_runs_verify_runner_from_its_variable() {
    let f = Fixture::with("ve", |c| {
        c.with(|cfg| {
            cfg.kubernetes.chart.name = ChartName::Experimental;
            cfg.kubernetes.verify_runner.runner_image =
                Some("registry.example.com/runner-with-runner-identity:1".into());
            cfg.kubernetes.verify_runner.strict = true;
        })
    })
    .await;
    let n = &f.plan.repositories[0].names;
    // The runner container's variables, as the chart passes runner.env.
    let values: serde_yaml::Value =
        serde_yaml::from_str(f.plan.repositories[0].values().unwrap()).unwrap();
    let env: std::collections::BTreeMap<String, String> = values["runner"]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(env["ACTIONS_RUNNER_HOOK_JOB_STARTED"], IMAGE_JOB_STARTED);
    // The hook template the chart mounts: the applied ConfigMap's `extension` key.
    let admin = admin_client().await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin.clone(), &n.namespace);
    let data = cms.get(&n.config_map).await.unwrap().data.unwrap();
    assert!(!data.contains_key(JOB_STARTED_KEY), "{data:?}");
    let template = f.dir.path().join("extension-template.yaml");
    std::fs::write(&template, &data[EXTENSION_KEY]).unwrap();
    // The script runner-identity's image ships, pointed at this machine.
    let token = f.runner_token().await;
    let script = std::fs::read_to_string(root().join("action/job-started.sh"))
        .unwrap()
        .replace(
            "/opt/runner-identity/bin/runner-identity",
            env!("CARGO_BIN_EXE_runner-identity"),
        )
        .trim_end()
        .to_owned()
        + &format!(
            " --token-file {} --kubeconfig {}\n",
            token.display(),
            kubeconfig_path().display()
        );
    let script_path = f.dir.path().join("job-started.sh");
    std::fs::write(&script_path, script).unwrap();
    let run = |repository: &str| {
        Command::new("sh")
            .arg("-e")
            .arg(&script_path)
            .env_clear()
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_REPOSITORY", repository)
            .env("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true")
            .env("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE", &template)
            .env(
                "RUNNER_IDENTITY_CONFIG_TEXT",
                &env["RUNNER_IDENTITY_CONFIG_TEXT"],
            )
            .output()
            .unwrap()
    };
    let o = run(&n.repository);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("result: pass"), "{}", text(&o));
    let o = run(&f.plan.repositories[1].names.repository);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // `strict: true` in the configuration text fails excess rights without
    // a --strict flag.
    let roles: Api<Role> = Api::namespaced(admin.clone(), &n.namespace);
    let extra = Role {
        metadata: ObjectMeta {
            name: Some("extra".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
    };
    roles.create(&PostParams::default(), &extra).await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(admin, &n.namespace);
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("extra".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "extra".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: n.runner_service_account.clone(),
            namespace: Some(n.namespace.clone()),
            ..Default::default()
        }]),
    };
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let o = run(&n.repository);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("get configmaps"), "{}", text(&o));
}

/// Runs `verify job` as the action runs it, with a pod's environment.
fn verify_job(f: &Fixture, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = crate::common::cli::command();
    cmd.args(["verify", "job", "--kubernetes-token", "/nonexistent"])
        .args(args)
        .env_clear()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_REGION", "us-east-1")
        .env("INPUT_CONFIG", f.dir.path().join("config.yaml"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

async fn job_token(f: &Fixture, audience: &str) -> std::path::PathBuf {
    let n = &f.plan.repositories[0].names;
    let token = service_account_token(
        &admin_client().await,
        &n.namespace,
        &n.job_service_account,
        Some(audience),
    )
    .await;
    let path = f
        .dir
        .path()
        .join(format!("job-token-{}", audience.replace(['/', ':'], "_")));
    std::fs::write(&path, token).unwrap();
    path
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn job_with_its_role_passes_and_writes_github_files_without_tokens() {
    let f = Fixture::new("vj").await;
    let token_file = job_token(&f, "sts.amazonaws.com").await;
    let token = std::fs::read_to_string(&token_file).unwrap();
    let role = f.plan.repositories[0].iam_role.arn.clone();
    let (out_file, summary) = (f.dir.path().join("output"), f.dir.path().join("summary"));
    // The job may request a GitHub OIDC token (`id-token: write`) from a
    // GitHub Enterprise Server whose issuer the configuration names.
    let key = TestKey::generate("ghes-1");
    let github = github_oidc(&key).await;
    let id_token = key.sign(&actions_claims(
        &format!("{}/_services/token", github.uri()),
        &f.plan.repositories[0].names.repository,
        "runner-identity",
        300,
    ));
    serve_id_token(&github, &id_token).await;
    let config = f.dir.path().join("config-ghes.yaml");
    std::fs::write(&config, f.config.clone().github_url(&github.uri()).yaml()).unwrap();
    let request_url = format!("{}/idtoken?api-version=2.0", github.uri());
    // Exactly as the runner starts the action: `action` with INPUT_* variables.
    let mut cmd = crate::common::cli::command();
    cmd.arg("action")
        .env_clear()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_REGION", "us-east-1");
    for (k, v) in [
        ("INPUT_COMMAND", "verify-job"),
        ("INPUT_CONFIG", config.to_str().unwrap()),
        ("INPUT_GITHUB-OIDC", "require"),
        ("INPUT_EXPECTED-ROLE-ARN", ""),
        ("INPUT_MASK-ACCOUNT-ID", "true"),
        ("AWS_ROLE_ARN", &role),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", &request_url),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_OUTPUT", out_file.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ] {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(all.contains(&format!("::add-mask::{ACCOUNT}")), "{all}");
    assert!(
        all.contains(&format!(
            ":assumed-role/{}/",
            f.plan.repositories[0].iam_role.name
        )),
        "{all}"
    );
    let outputs = std::fs::read_to_string(&out_file).unwrap();
    // Every output action.yml declares is written, with a value.
    let action: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("action.yml")).unwrap()).unwrap();
    let declared = action["outputs"].as_mapping().unwrap();
    assert!(declared.len() >= 7, "{declared:?}");
    for (name, _) in declared {
        let name = name.as_str().unwrap();
        let value = outputs
            .split(&format!("{name}<<"))
            .nth(1)
            .and_then(|rest| rest.lines().nth(1))
            .unwrap_or_else(|| panic!("output {name} missing in {outputs}"));
        assert!(
            !value.is_empty() && !value.starts_with("ghadelimiter"),
            "output {name} is empty: {outputs}"
        );
    }
    assert!(outputs.contains("\npass\n"));
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.contains("| caller-identity | pass |"), "{summary}");
    assert!(summary.contains("| github-oidc | pass |"), "{summary}");
    for (name, content) in [
        ("stdout+stderr", &all),
        ("GITHUB_OUTPUT", &outputs),
        ("summary", &summary),
    ] {
        assert!(
            !content.contains(token.trim()),
            "the token leaked into {name}"
        );
        assert!(
            !content.contains(token.split('.').nth(2).unwrap()),
            "the token signature leaked into {name}"
        );
        for secret in [
            REQUEST_TOKEN,
            id_token.as_str(),
            id_token.split('.').nth(2).unwrap(),
        ] {
            assert!(
                !content.contains(secret),
                "a GitHub token leaked into {name}"
            );
        }
    }

    // GHE.com-style: the Actions issuer is configured, not derived from the
    // URL (which points somewhere the test never contacts).
    let issuer = format!("{}/_services/token", github.uri());
    std::fs::write(
        &config,
        f.config
            .clone()
            .github_url("https://acme.ghe.invalid")
            .with(|c| c.github.actions_issuer = Some(issuer.clone()))
            .yaml(),
    )
    .unwrap();
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("signed by {issuer}")),
        "{}",
        text(&o)
    );
    // Without the override the derived issuer is not the token's: a failure.
    std::fs::write(
        &config,
        f.config
            .clone()
            .github_url("https://acme.ghe.invalid")
            .yaml(),
    )
    .unwrap();
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("github-oidc"), "{}", text(&o));
}

#[tokio::test]
async fn job_failures_each_have_their_own_diagnosis() {
    let f = Fixture::new("vf").await;
    let good = job_token(&f, "sts.amazonaws.com").await;
    let role = f.plan.repositories[0].iam_role.arn.clone();
    let ok_env = |token: &Path| {
        vec![
            ("AWS_ROLE_ARN".to_owned(), role.clone()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
                token.display().to_string(),
            ),
        ]
    };
    let run = |env: Vec<(String, String)>, args: &[&str]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        verify_job(&f, &env, args)
    };

    // No mechanism at all.
    let o = run(vec![], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("serviceAccountName"), "{}", text(&o));

    // A wrong expected role.
    let o = run(
        ok_env(&good),
        &[
            "--expected-role-arn",
            &format!("arn:aws:iam::{ACCOUNT}:role/someone-else"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("expected the role arn:aws:iam::123456789012:role/someone-else"),
        "{}",
        text(&o)
    );

    // The wrong audience.
    let wrong_aud = job_token(&f, "https://kubernetes.default.svc").await;
    let o = run(ok_env(&wrong_aud), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("does not include `sts.amazonaws.com`"),
        "{}",
        text(&o)
    );

    // An expired token (exp in the past, signature irrelevant to the check).
    let expired = f.dir.path().join("expired");
    let claims = base64_url(&format!(
        r#"{{"aud":["sts.amazonaws.com"],"exp":1000,"sub":"system:serviceaccount:{}:{}"}}"#,
        f.plan.repositories[0].names.namespace, f.plan.repositories[0].names.job_service_account
    ));
    std::fs::write(&expired, format!("e30.{claims}.c2ln")).unwrap();
    let o = run(ok_env(&expired), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("token expired"), "{}", text(&o));

    // The node's instance role: STS answers for an EC2 instance session.
    let o = run(
        vec![
            ("AWS_ROLE_ARN".into(), role.clone()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
                good.display().to_string(),
            ),
            ("AWS_ROLE_SESSION_NAME".into(), "i-0123456789abcdef0".into()),
        ],
        &[
            "--expected-role-arn",
            &format!("arn:aws:iam::{ACCOUNT}:role/not-this"),
        ],
    );
    assert!(text(&o).contains("node's instance role"), "{}", text(&o));
}

#[tokio::test]
async fn job_with_a_select_configuration_uses_the_saved_discovery() {
    let f = Fixture::new("vd").await;
    let token_file = job_token(&f, "sts.amazonaws.com").await;
    let owner = f.plan.repositories[0]
        .names
        .repository
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let select = f.dir.path().join("select.yaml");
    std::fs::write(
        &select,
        f.config.clone().selecting_topic("arc-runner").yaml(),
    )
    .unwrap();
    let repos = f.dir.path().join("repos.json");
    std::fs::write(
        &repos,
        serde_json::json!({
            "owner": owner, "api": "https://api.github.com", "complete": true, "listed": 2,
            "selected": [{"name": "app", "reasons": []}, {"name": "other", "reasons": []}],
            "rejected": [], "problems": [],
        })
        .to_string(),
    )
    .unwrap();
    let env = [
        ("AWS_ROLE_ARN", f.plan.repositories[0].iam_role.arn.as_str()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
    ];
    let o = verify_job(
        &f,
        &env,
        &[
            "-c",
            select.to_str().unwrap(),
            "--repos-file",
            repos.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["facts"]["repository"],
        f.plan.repositories[0].names.repository
    );
    // Without the discovery the selected repositories are unknown: a clear failure.
    let o = verify_job(&f, &env, &["-c", select.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("no configured repository has job ServiceAccount"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn job_token_unreadable_for_a_non_root_user_is_explained() {
    let f = Fixture::new("vu").await;
    let token = job_token(&f, "sts.amazonaws.com").await;
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The binary and the config must be reachable by the unprivileged user.
    let bin = f.dir.path().join("runner-identity");
    std::fs::copy(env!("CARGO_BIN_EXE_runner-identity"), &bin).unwrap();
    for p in [f.dir.path(), &f.dir.path().join("config.yaml")] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    // `verify job` as another user: setpriv's identity options, then the binary.
    let run_as = |ids: &[&str]| {
        Command::new("setpriv")
            .args(ids)
            .args([
                bin.to_str().unwrap(),
                "verify",
                "job",
                "--kubernetes-token",
                "/nonexistent",
            ])
            .env_clear()
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
            .env("AWS_ROLE_ARN", &f.plan.repositories[0].iam_role.arn)
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ENDPOINT_URL", moto_url())
            .env("AWS_REGION", "us-east-1")
            .env("INPUT_CONFIG", f.dir.path().join("config.yaml"))
            .output()
            .unwrap()
    };
    let o = run_as(&["--reuid=65534", "--regid=65534", "--clear-groups"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("not readable by uid 65534") && t.contains("fsGroup"),
        "{t}"
    );

    // The action image's user (uid/gid 1001) in a pod with the planned
    // `fsGroup: 1001`: the kubelet makes the token group-readable (0640,
    // group fsGroup) and adds fsGroup to the container's groups.
    std::os::unix::fs::chown(&token, Some(0), Some(1001)).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let o = run_as(&["--reuid=1001", "--regid=1001", "--groups=1001"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!("{} is readable", token.display())),
        "{t}"
    );
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// `verify job` with the pod's environment, `extra` args, and `env`; the
/// Kubernetes token and kubeconfig given (not the `/nonexistent` default).
fn verify_job_with(f: &Fixture, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut cmd = crate::common::cli::command();
    cmd.args(["verify", "job"])
        .args(extra)
        .env_clear()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("INPUT_CONFIG", f.dir.path().join("config.yaml"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn check_of(o: &Output, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {}", text(o)))
        .clone()
}

#[tokio::test]
async fn job_caller_with_the_same_role_name_in_another_account_fails() {
    let f = Fixture::new("va").await;
    let token = job_token(&f, "sts.amazonaws.com").await;
    let role = &f.plan.repositories[0].iam_role;
    // moto answers for the job's real role (account 123456789012); the
    // expectation names a role of the same name in another account.
    let elsewhere = role.arn.replace(ACCOUNT, "999988887777");
    assert_ne!(elsewhere, role.arn);
    let env = [
        ("AWS_ENDPOINT_URL", moto_url()),
        ("AWS_ROLE_ARN", role.arn.clone()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["--kubernetes-token", "/nonexistent", "-o", "json"];
    let o = verify_job_with(
        &f,
        &env,
        &[&args[..], &["--expected-role-arn", &elsewhere]].concat(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let caller = check_of(&o, "caller-identity");
    assert_eq!(caller["status"], "fail", "{caller}");
    assert!(
        caller["detail"]
            .as_str()
            .unwrap()
            .contains("account 123456789012 is not 999988887777"),
        "{caller}"
    );
    // The same call expecting the real ARN passes: only the account differed.
    let o = verify_job_with(
        &f,
        &env,
        &[&args[..], &["--expected-role-arn", &role.arn]].concat(),
    );
    assert_eq!(
        check_of(&o, "caller-identity")["status"],
        "pass",
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn job_kubernetes_rights_are_reviewed_in_the_tokens_namespace_not_pod_namespace() {
    let f = Fixture::new("vn").await;
    let (n, other) = (&f.plan.repositories[0].names, &f.plan.repositories[1].names);
    let admin = admin_client().await;
    // The job ServiceAccount can read pods in its own namespace (a mistake
    // verify must report), and nothing in the other repository's namespace.
    let role = Role {
        metadata: ObjectMeta {
            name: Some("job-reads-pods".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &n.namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = k8s_openapi::api::rbac::v1::RoleBinding {
        metadata: ObjectMeta {
            name: Some("job-reads-pods".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "job-reads-pods".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: n.job_service_account.clone(),
            namespace: Some(n.namespace.clone()),
            ..Default::default()
        }]),
    };
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &n.namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let api_token = service_account_token(&admin, &n.namespace, &n.job_service_account, None).await;
    let api_token_file = f.dir.path().join("api-token");
    std::fs::write(&api_token_file, api_token).unwrap();
    // A workflow sets POD_NAMESPACE to a namespace where it has no rights.
    let kubeconfig = kubeconfig_path();
    let sts_token = job_token(&f, "sts.amazonaws.com").await;
    let (moto, sts_token) = (moto_url(), sts_token.display().to_string());
    let o = verify_job_with(
        &f,
        &[
            ("POD_NAMESPACE", other.namespace.as_str()),
            ("AWS_ENDPOINT_URL", &moto),
            ("AWS_ROLE_ARN", &f.plan.repositories[0].iam_role.arn),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &sts_token),
        ],
        &[
            "--kubernetes-token",
            api_token_file.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--github-oidc",
            "off",
            "-o",
            "json",
        ],
    );
    let rights = check_of(&o, "kubernetes-rights");
    assert_eq!(rights["status"], "fail", "{rights}");
    assert!(
        rights["detail"].as_str().unwrap().contains("get pods"),
        "{rights}"
    );
}

#[tokio::test]
async fn job_diagnosis_shows_the_trust_policy_of_the_tokens_repository() {
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let f = Fixture::new("vt").await;
    // The token of the configuration's second repository.
    let second = &f.plan.repositories[1];
    let token = service_account_token(
        &admin_client().await,
        &second.names.namespace,
        &second.names.job_service_account,
        Some("sts.amazonaws.com"),
    )
    .await;
    let token_file = f.dir.path().join("second-token");
    std::fs::write(&token_file, token).unwrap();
    // An STS that refuses the web identity, as AWS does when the trust
    // policy does not admit the token.
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("AssumeRoleWithWebIdentity"))
        .respond_with(ResponseTemplate::new(403).set_body_string(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>\
             </Error><RequestId>r-1</RequestId></ErrorResponse>",
        ))
        .mount(&sts)
        .await;
    // A template directory whose trust policy carries a marker statement id.
    let templates = f.dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    let trust = std::fs::read_to_string(
        root()
            .join("templates")
            .join(runner_identity::templates::TRUST_IRSA),
    )
    .unwrap()
    .replacen("RunnerIdentityIrsa", "MarkerFromTemplatesDir", 1);
    std::fs::write(
        templates.join(runner_identity::templates::TRUST_IRSA),
        trust,
    )
    .unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", sts.uri()),
        ("AWS_ROLE_ARN", second.iam_role.arn.clone()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = verify_job_with(
        &f,
        &env,
        &[
            "--kubernetes-token",
            "/nonexistent",
            "--github-oidc",
            "off",
            "--templates",
            templates.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    let own = format!(
        "system:serviceaccount:{}:{}",
        second.names.namespace, second.names.job_service_account
    );
    let first = &f.plan.repositories[0].names;
    let first_sub = format!(
        "system:serviceaccount:{}:{}",
        first.namespace, first.job_service_account
    );
    assert!(
        all.contains(&own),
        "the second repository's subject is shown: {all}"
    );
    assert!(
        !all.contains(&first_sub),
        "not the first repository's: {all}"
    );
    assert!(
        all.contains("MarkerFromTemplatesDir"),
        "rendered with --templates: {all}"
    );
}

/// The status `verify job -o json` gave the check `name`, if it ran.
fn json_status(o: &Output, name: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["status"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn job_reports_an_instance_metadata_service_that_answers() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let f = Fixture::new("vm").await;
    let token = job_token(&f, "sts.amazonaws.com").await;
    let role = f.plan.repositories[0].iam_role.arn.clone();
    // A loopback IMDS fake that issues IMDSv2 tokens.
    let imds = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .and(header("X-aws-ec2-metadata-token-ttl-seconds", "60"))
        .respond_with(ResponseTemplate::new(200).set_body_string("imds-token"))
        .mount(&imds)
        .await;
    let token = token.display().to_string();
    let env = |endpoint: &str| {
        vec![
            ("AWS_ROLE_ARN", role.clone()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.clone()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint.to_owned()),
        ]
    };
    let run = |env: Vec<(&str, String)>, args: &[&str]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        verify_job(
            &f,
            &env,
            &[&["--github-oidc", "off", "-o", "json"], args].concat(),
        )
    };

    let o = run(env(&imds.uri()), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        json_status(&o, "instance-metadata").as_deref(),
        Some("warn")
    );
    assert!(
        text(&o).contains("http_put_response_hop_limit = 1"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("NetworkPolicy"), "{}", text(&o));
    assert_eq!(imds.received_requests().await.unwrap().len(), 1);
    let o = run(env(&imds.uri()), &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        json_status(&o, "instance-metadata").as_deref(),
        Some("fail")
    );

    // A service that never answers (a listener that accepts nothing): pass,
    // after the 1 s timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let o = run(env(&silent_url), &["--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        json_status(&o, "instance-metadata").as_deref(),
        Some("pass")
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    // A refused connection (the helper's loopback port 1): pass. (Without
    // the variable, outside a pod, the check does not run at all: the unit
    // test `outside_a_pod_without_the_variable_nothing_is_contacted`.)
    let o = verify_job(
        &f,
        &[
            ("AWS_ROLE_ARN", role.as_str()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
        ],
        &["--github-oidc", "off", "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        json_status(&o, "instance-metadata").as_deref(),
        Some("pass")
    );
    drop(silent);
}

#[tokio::test]
async fn runner_reports_github_credentials_it_can_read_and_steps_outside_job_containers() {
    use k8s_openapi::api::core::v1::Secret;
    let f = Fixture::new("vc").await;
    let n = &f.plan.repositories[0].names;
    let inputs = f.runner_inputs().await;
    let v = verify(&inputs).await;
    assert_eq!(status(&v, "github-credentials"), Status::Pass, "{v}");
    assert_eq!(status(&v, "job-container"), Status::Pass, "{v}");

    // The scale set's App key in the runner's namespace, as ARC needs it.
    let key = "-----BEGIN RSA PRIVATE KEY-----\nnot-a-real-key\n-----END RSA PRIVATE KEY-----";
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("github-config".into()),
            ..Default::default()
        },
        string_data: Some(
            [
                ("github_app_id", "1"),
                ("github_app_installation_id", "2"),
                ("github_app_private_key", key),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin_client().await, &n.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let v = verify(&inputs).await;
    assert!(v.passed(), "a warning unless strict: {v}");
    assert_eq!(status(&v, "github-credentials"), Status::Warn, "{v}");
    let d = detail(&v, "github-credentials");
    assert!(d.contains("github-config (github_app_private_key)"), "{d}");
    assert!(
        !format!("{v}").contains("not-a-real-key"),
        "a value was shown: {v}"
    );
    let strict = RunnerInputs {
        strict: true,
        ..inputs.clone()
    };
    let v = verify(&strict).await;
    assert!(!v.passed());
    assert_eq!(status(&v, "github-credentials"), Status::Fail, "{v}");

    // Steps in the runner container: a failure, whatever else holds.
    for value in [Some("false"), None] {
        let outside = RunnerInputs {
            require_job_container: value.map(str::to_owned),
            ..inputs.clone()
        };
        let v = verify(&outside).await;
        assert!(!v.passed(), "{value:?}: {v}");
        assert_eq!(status(&v, "job-container"), Status::Fail, "{v}");
    }
}

#[tokio::test]
async fn job_identity_takes_one_sts_request_unless_the_chain_prefers_other_credentials() {
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let f = Fixture::new("vs").await;
    let token = job_token(&f, "sts.amazonaws.com").await;
    let role = f.plan.repositories[0].iam_role.arn.clone();
    let (account, name) = {
        let mut parts = role.split(':');
        let account = parts.nth(4).unwrap().to_owned();
        (account, role.rsplit('/').next().unwrap().to_owned())
    };
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("AssumeRoleWithWebIdentity"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAFAKE</AccessKeyId>\
             <SecretAccessKey>fake</SecretAccessKey><SessionToken>fake</SessionToken>\
             <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
             <AssumedRoleUser><AssumedRoleId>AROAFAKE:s</AssumedRoleId>\
             <Arn>arn:aws:sts::{account}:assumed-role/{name}/s</Arn></AssumedRoleUser>\
             </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        )))
        .mount(&sts)
        .await;
    // Static keys in the environment come first in the SDK's chain: the job
    // would act as this user, not as the role.
    Mock::given(method("POST"))
        .and(body_string_contains("GetCallerIdentity"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/leaked-key</Arn>\
             <UserId>AIDAFAKE</UserId><Account>{account}</Account></GetCallerIdentityResult>\
             </GetCallerIdentityResponse>"
        )))
        .mount(&sts)
        .await;
    let uri = sts.uri();
    let token = token.display().to_string();
    let irsa = [
        ("AWS_ENDPOINT_URL", uri.as_str()),
        ("AWS_ROLE_ARN", role.as_str()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
    ];
    let args = [
        "--kubernetes-token",
        "/nonexistent",
        "--github-oidc",
        "off",
        "-o",
        "json",
    ];
    let o = verify_job_with(&f, &irsa, &args);
    assert_eq!(
        check_of(&o, "caller-identity")["status"],
        "pass",
        "{}",
        text(&o)
    );
    let received = sts.received_requests().await.unwrap();
    let bodies: Vec<String> = received
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(bodies.len(), 1, "one STS request: {bodies:?}");
    assert!(
        bodies[0].contains("Action=AssumeRoleWithWebIdentity"),
        "{bodies:?}"
    );

    let keys = [
        &irsa[..],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAFAKE"),
            ("AWS_SECRET_ACCESS_KEY", "fake"),
        ],
    ]
    .concat();
    let o = verify_job_with(&f, &keys, &args);
    let caller = check_of(&o, "caller-identity");
    assert_eq!(caller["status"], "fail", "{}", text(&o));
    assert!(
        caller["detail"]
            .as_str()
            .unwrap()
            .contains("user/leaked-key"),
        "{caller}"
    );
}

#[tokio::test]
async fn an_unreachable_sts_is_named_with_its_endpoint_and_no_region_is_asked_of_imds() {
    let f = Fixture::new("vu").await;
    let token = job_token(&f, "sts.amazonaws.com").await;
    let role = &f.plan.repositories[0].iam_role;
    // Nothing listens on port 1; no AWS_REGION: the partition's region.
    let mut cmd = crate::common::cli::command();
    cmd.args(["verify", "job", "--kubernetes-token", "/nonexistent"])
        .env_clear()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", f.dir.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ROLE_ARN", &role.arn)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
        .env("INPUT_CONFIG", f.dir.path().join("config.yaml"));
    let o = cmd.output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("cannot reach STS at http://127.0.0.1:1"), "{t}");
    assert!(t.contains("Connection refused"), "{t}");
    for raw in ["DispatchFailure", "imds", "ConnectorError {"] {
        assert!(!t.contains(raw), "{raw}: {t}");
    }
}

#[tokio::test]
async fn a_stray_aws_role_arn_beside_pod_identity_is_pod_identity_as_the_sdk_decides() {
    // Before: "neither IRSA nor Pod Identity", though the SDK's chain skips
    // web identity without a token file and uses the container credentials.
    let f = Fixture::new("vpi").await;
    let token = job_token(&f, "pods.eks.amazonaws.com").await;
    let role = &f.plan.repositories[0].iam_role;
    let env = [
        ("AWS_ROLE_ARN", role.arn.clone()),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://127.0.0.1:1/v1/credentials".to_owned(),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token.display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = verify_job_with(
        &f,
        &env,
        &["--kubernetes-token", "/nonexistent", "-o", "json"],
    );
    let mechanism = check_of(&o, "mechanism");
    assert_eq!(mechanism["status"], "pass", "{mechanism}");
    let detail = mechanism["detail"].as_str().unwrap();
    assert!(
        detail.contains("EKS Pod Identity") && detail.contains("AWS_ROLE_ARN is set"),
        "{detail}"
    );
}

/// Credentials of `role_arn` from moto's STS, assumed with `credentials`
/// (moto's default when `None`) and `external_id`.
async fn assumed(
    credentials: Option<aws_sdk_sts::types::Credentials>,
    role_arn: &str,
    external_id: Option<&str>,
) -> aws_sdk_sts::types::Credentials {
    let mut sdk = moto_config().await.into_builder();
    if let Some(c) = credentials {
        sdk.set_credentials_provider(Some(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_owned()),
                    None,
                    "chain",
                ),
            ),
        ));
    }
    let sts = aws_sdk_sts::Client::new(&sdk.build());
    sts.assume_role()
        .role_arn(role_arn)
        .role_session_name("eks-ci-pod")
        .set_external_id(external_id.map(str::to_owned))
        .send()
        .await
        .unwrap()
        .credentials()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_job_chained_to_its_target_role_is_verified_as_the_target() {
    use runner_identity::config::{Mode, RepositoryEntry, RepositoryOverride};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let target = "arn:aws:iam::444455556666:role/data/reader";
    let f = Fixture::with("vtr", |c| {
        c.with(|c| {
            c.aws.mode = Mode::PodIdentity;
            c.cluster.region = Some("us-east-1".into());
            let mut app = RepositoryOverride {
                name: "app".into(),
                ..Default::default()
            };
            app.aws.target_role_arn = Some(target.into());
            c.repositories[0] = RepositoryEntry::Detailed(Box::new(app));
        })
    })
    .await;
    let token = job_token(&f, "pods.eks.amazonaws.com").await;
    let role_arn = f.plan.repositories[0].iam_role.arn.clone();
    // What the EKS Pod Identity Agent hands the pod: the chain's end, or,
    // when the association does not chain, the repository's own role.
    let agent = MockServer::start().await;
    let serve = |c: aws_sdk_sts::types::Credentials| {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "AccessKeyId": c.access_key_id(),
            "SecretAccessKey": c.secret_access_key(),
            "Token": c.session_token(),
            "AccountId": "444455556666",
            "Expiration": "2099-01-01T00:00:00Z",
        }))
    };
    let first = assumed(None, &role_arn, None).await;
    let chained = assumed(Some(first.clone()), target, Some("ext-1")).await;
    Mock::given(method("GET"))
        .and(path("/chained"))
        .respond_with(serve(chained))
        .mount(&agent)
        .await;
    Mock::given(method("GET"))
        .and(path("/unchained"))
        .respond_with(serve(first))
        .mount(&agent)
        .await;
    let run = |route: &str| {
        let uri = format!("{}/{route}", agent.uri());
        let env = [
            ("AWS_ENDPOINT_URL", moto_url()),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token.display().to_string(),
            ),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        verify_job_with(
            &f,
            &env,
            &[
                "--kubernetes-token",
                "/nonexistent",
                "--github-oidc",
                "off",
                "-o",
                "json",
            ],
        )
    };
    let o = run("chained");
    let caller = check_of(&o, "caller-identity");
    assert_eq!(caller["status"], "pass", "{}", text(&o));
    let detail = caller["detail"].as_str().unwrap();
    assert!(
        detail.contains("assumed-role/reader/")
            && detail.contains(&format!("chained by EKS Pod Identity from {role_arn}")),
        "{detail}"
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The association lost its target: the job runs as the first role.
    let o = run("unchained");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let caller = check_of(&o, "caller-identity");
    let said = format!("{} {}", caller["detail"], caller["remediation"]);
    assert!(
        said.contains("did not chain to the target role") && said.contains("targetRoleArn"),
        "{said}"
    );
}

/// The runner's own client (`verify runner`, `job-started`) speaks HTTP/2
/// with the API server, which takes it in the TLS handshake: concurrent
/// requests share one connection. The clients of `apply` and the others keep
/// HTTP/1.1.
#[tokio::test]
async fn the_runners_client_negotiates_http2_with_the_api_server() {
    let admin = admin_client().await;
    let ns = unique("h2");
    create_namespace(&ns).await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(admin.clone(), &ns);
    let sa = k8s_openapi::api::core::v1::ServiceAccount {
        metadata: ObjectMeta {
            name: Some("runner".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        service_account_token(&admin, &ns, "runner", None).await,
    )
    .unwrap();
    let version = |client: kube::Client| async move {
        let request = http::Request::get("/version").body(Vec::new()).unwrap();
        client
            .send(request.map(kube::client::Body::from))
            .await
            .unwrap()
            .version()
    };
    let runner = runner_identity::verify::runner::token_client(Some(&kubeconfig_path()), &token)
        .await
        .unwrap();
    assert_eq!(version(runner).await, http::Version::HTTP_2);
    let apply = runner_identity::net::kube::client(
        Some(&kubeconfig_path()),
        None,
        runner_identity::net::KubeTimeouts::for_request(std::time::Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(version(apply).await, http::Version::HTTP_11);
}
