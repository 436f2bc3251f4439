//! The real runner-container-hooks (tests/data/runner-container-hooks: v0.7.0
//! `k8s` and v0.8.1 `k8s-novolume`, as the runner image ships them) run
//! `prepare_job` with node, as the runner runs them: in-cluster credentials
//! of the planned runner ServiceAccount (a token minted for it, in a private
//! mount namespace at the path a pod has), the planned hook template in
//! ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE, one JSON document on stdin. The
//! stack has no kubelet: the workflow pod stays Pending, so the test reads
//! the pod the hooks created and stops them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use runner_identity::config::Hooks;
use runner_identity::policy::{Decision, WebIdentityRequest};
use sha2::Digest;

use crate::common::cli::ri;
use crate::common::*;

/// The hooks' bundles and their SHA-256, as copied from the runner image's
/// releases (tests/data/runner-container-hooks/README.md).
const BUNDLES: [(Hooks, &str, &str); 2] = [
    (
        Hooks::Kubernetes,
        "v0.7.0/k8s/index.js",
        "ab92729b095f5fdb8b51b8a6f8cfc2f1647617e0e12c17f2ff39feea686a1966",
    ),
    (
        Hooks::KubernetesNovolume,
        "v0.8.1/k8s-novolume/index.js",
        "1dc375f7ca29d6a8d7a75e0a9207794de7817b7da5a1707e80d00e6ace12f78b",
    ),
];

fn bundle(hooks: Hooks) -> PathBuf {
    let (_, path, sha256) = BUNDLES.iter().find(|(h, _, _)| *h == hooks).unwrap();
    let file = root().join("tests/data/runner-container-hooks").join(path);
    let bytes = std::fs::read(&file).unwrap();
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest,
        *sha256,
        "{} is not the release's bundle",
        file.display()
    );
    file
}

/// Starts `node <bundle>` with `input` on stdin, as the runner ServiceAccount
/// `token` of `namespace` sees the cluster from inside a pod.
fn run_hook(
    bundle: &Path,
    work: &Path,
    namespace: &str,
    token: &str,
    env: &[(&str, String)],
    input: &serde_json::Value,
) -> Child {
    let stack = PathBuf::from(std::env::var("RUNNER_IDENTITY_STACK").expect(
        "RUNNER_IDENTITY_STACK is not set: start the stack (scripts/stack.sh up) and source its env",
    ));
    std::fs::write(work.join("token"), token).unwrap();
    std::fs::write(work.join("namespace"), namespace).unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["-m", "sh", "-ec"])
        .arg(
            "mount -t tmpfs tmpfs /run\n\
             d=/run/secrets/kubernetes.io/serviceaccount; mkdir -p \"$d\"\n\
             cp \"$1\" \"$d/ca.crt\"; cp \"$2/namespace\" \"$d/namespace\"; cp \"$2/token\" \"$d/token\"\n\
             shift 2; exec node \"$@\"",
        )
        .arg("sh")
        .arg(stack.join("pki/ca.crt"))
        .arg(work)
        .arg(bundle)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", work)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", "16443")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    child
}

/// The job container as the runner asks for it (a `container:` job).
fn prepare_job_input(work: &Path) -> serde_json::Value {
    serde_json::json!({
        "command": "prepare_job",
        "responseFile": work.join("response.json"),
        "args": {
            "container": {
                "image": "node:20",
                "workingDirectory": "/__w/app/app",
                "createOptions": "",
                "environmentVariables": {},
                "userMountVolumes": [],
                "systemMountVolumes": [],
                "registry": null,
                "portMappings": []
            },
            "services": []
        },
        "state": {}
    })
}

/// The pod `name`, waited for while `hook` runs.
async fn named_pod(pods: &Api<Pod>, name: &str, hook: &mut Child) -> Pod {
    for _ in 0..300 {
        if let Some(pod) = pods.get_opt(name).await.unwrap() {
            return pod;
        }
        if let Some(status) = hook.try_wait().unwrap() {
            let out = hook.wait_with_output_lossy();
            panic!("the hook exited ({status}) before creating {name}:\n{out}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the hook created no pod {name} in 30 s");
}

trait Lossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl Lossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut out) = self.stdout.take() {
            out.read_to_string(&mut text).ok();
        }
        if let Some(mut err) = self.stderr.take() {
            err.read_to_string(&mut text).ok();
        }
        // The hooks' debug lines carry the request's bearer token.
        let mut shown = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find("Bearer ") {
            shown.push_str(&rest[..at + "Bearer ".len()]);
            rest = &rest[at + "Bearer ".len()..];
            let end = rest.find(['"', '\n', ' ']).unwrap_or(rest.len());
            shown.push_str("<redacted>");
            rest = &rest[end..];
        }
        shown.push_str(rest);
        shown
    }
}

#[tokio::test]
async fn the_real_hooks_start_the_workflow_pod_as_the_planned_job_service_account() {
    let admin = admin_client().await;
    for (hooks, _, _) in BUNDLES {
        let owner = unique("hk");
        let config = TestConfig::irsa(&owner, &["app"], &stack_issuer())
            .with(|c| c.kubernetes.hooks = hooks);
        let plan = config.plan();
        apply_plan(&admin, &plan, false).await;
        let repo = &plan.repositories[0];
        let n = &repo.names;

        // The runner pod the hooks read their node (and v0.7.0 its work
        // volume's claim) from; a kubelet never runs it here.
        let pods: Api<Pod> = Api::namespaced(admin.clone(), &n.namespace);
        let runner: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app-runner-x1"},
            "spec": {
                "nodeName": "node-a",
                "serviceAccountName": n.runner_service_account,
                // The stack runs no token controller: no legacy token Secret.
                "automountServiceAccountToken": false,
                "containers": [{"name": "runner", "image": "ghcr.io/actions/actions-runner:2.336.0"}]
            }
        }))
        .unwrap();
        pods.create(&PostParams::default(), &runner).await.unwrap();

        let work = tempfile::tempdir().unwrap();
        let template = work.path().join("hook-template.yaml");
        std::fs::write(&template, repo.hook_template_text().unwrap()).unwrap();
        let token =
            service_account_token(&admin, &n.namespace, &n.runner_service_account, None).await;
        let mut hook = run_hook(
            &bundle(hooks),
            work.path(),
            &n.namespace,
            &token,
            &[
                ("ACTIONS_RUNNER_POD_NAME", "app-runner-x1".to_owned()),
                (
                    "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE",
                    template.display().to_string(),
                ),
                ("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true".to_owned()),
                ("GITHUB_WORKSPACE", "/home/runner/_work/app/app".to_owned()),
            ],
            &prepare_job_input(work.path()),
        );
        // Both releases name the workflow pod after the runner's.
        let pod = named_pod(&pods, "app-runner-x1-workflow", &mut hook).await;
        hook.kill().ok();
        hook.wait().ok();

        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.service_account_name.as_deref(),
            Some(n.job_service_account.as_str()),
            "{hooks:?}: the workflow pod's ServiceAccount"
        );
        assert_eq!(
            spec.security_context.and_then(|s| s.fs_group),
            Some(config.config.kubernetes.fs_group),
            "{hooks:?}: the workflow pod's fsGroup (the job's user reads the token through it)"
        );
        if hooks == Hooks::Kubernetes {
            // v0.7.0 shares the runner's work volume: the pod goes to its node.
            assert_eq!(
                spec.node_name.as_deref(),
                Some("node-a"),
                "beside the runner"
            );
        }
        assert_eq!(
            pod.metadata.annotations.unwrap_or_default()["runner-identity.dev/repository"],
            n.repository,
            "{hooks:?}: the template's annotation"
        );
    }
}

/// Creates runner pod `name` (as ARC would, on a node nothing runs) and
/// returns a token of `account` bound to it, as the pod's projected token is.
async fn runner_pod_token(
    admin: &kube::Client,
    namespace: &str,
    account: &str,
    name: &str,
) -> String {
    use k8s_openapi::api::authentication::v1::{
        BoundObjectReference, TokenRequest, TokenRequestSpec,
    };
    use k8s_openapi::api::core::v1::ServiceAccount;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": account,
            "automountServiceAccountToken": false,
            "containers": [{"name": "runner", "image": "ghcr.io/actions/actions-runner:2.336.0"}]
        }
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.to_owned()),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

/// The decision of the product's evaluator on a web-identity request of
/// the stack's issuer, subject `sub` (the provider of account 111122223333).
fn trusts(policy: &serde_json::Value, sub: &str) -> Decision {
    let issuer = stack_issuer();
    let issuer = issuer.trim_start_matches("https://");
    let provider_arn = format!("arn:aws:iam::111122223333:oidc-provider/{issuer}");
    runner_identity::policy::evaluate_web_identity(
        policy,
        &WebIdentityRequest {
            provider_arn: &provider_arn,
            issuer,
            sub,
            aud: "sts.amazonaws.com",
        },
    )
}

/// The stack's IRSA configuration of `owner`'s `api` (id 901), `web` (902)
/// and `docs`, the owner pinned by id 900 (group members are pinned by id).
fn pinned_config(owner: &str) -> String {
    irsa_config(owner, &["api", "web", "docs"], &stack_issuer())
        .replace(
            &format!("  owner: {owner}\n"),
            &format!("  owner: {owner}\n  ownerId: 900\n"),
        )
        .replace("  - api\n", "  - {name: api, id: 901}\n")
        .replace("  - web\n", "  - {name: web, id: 902}\n")
}

/// A grouped scale set, planned and applied by the product: one runner
/// ServiceAccount with the hooks' rights in the group's namespace, and each
/// member's job ServiceAccount. For each member, `job-started` (the built
/// binary, in the runner's environment, reading the configuration the
/// planned ConfigMap gives the runner pod) writes the template, and the real
/// hooks v0.7.0 start that member's workflow pod as its own job
/// ServiceAccount. A repository outside the group is refused (exit 1): the
/// previous job's template is gone, none is written.
#[tokio::test]
async fn in_a_group_each_members_job_starts_as_its_own_job_service_account() {
    let admin = admin_client().await;
    let owner = unique("gr");
    let group = "platform";
    // Members are pinned by repository id, the owner by its id.
    let base = pinned_config(&owner);
    let text = format!("{base}groups:\n  - name: {group}\n    repositories: [api, web]\n");
    let settings = settings(&text);
    let mut plan = runner_identity::plan::plan(
        &settings,
        &runner_identity::templates::Templates::load(None).unwrap(),
    )
    .unwrap();
    // The group's guard and claim policy: the local v1.20 server serves no
    // ValidatingAdmissionPolicy (their CEL is proven in
    // src/plan/group_admission.rs); everything else is applied.
    assert_eq!(plan.repositories[0].admission_policy.len(), 2);
    plan.repositories[0].admission_policy.clear();
    apply_plan(&admin, &plan, false).await;
    let members: Vec<&runner_identity::names::RepoNames> =
        plan.repositories[..2].iter().map(|r| &r.names).collect();
    let shared = members[0];
    assert_eq!(members[1].namespace, shared.namespace);
    assert_eq!(
        members[1].runner_service_account,
        shared.runner_service_account
    );
    assert_ne!(
        members[0].job_service_account,
        members[1].job_service_account
    );
    // The configuration the runner pod mounts: the group's members alone.
    let cm: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin.clone(), &shared.namespace);
    let mounted = cm.get(&shared.config_map).await.unwrap().data.unwrap();
    let runner_config = &mounted[runner_identity::plan::RUNNER_CONFIG_KEY];
    assert!(!runner_config.contains("docs"), "{runner_config}");
    assert!(
        !mounted.contains_key(runner_identity::plan::HOOK_TEMPLATE_KEY),
        "a group's template is written per job, never mounted"
    );

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("runner-identity.yaml");
    std::fs::write(&config, runner_config).unwrap();
    // The runner container's own emptyDir, and its work directory.
    let own = work.path().join("hook");
    std::fs::create_dir(&own).unwrap();
    let template = own.join("template.yaml");
    let workspace = work.path().join("_work/app");
    std::fs::create_dir_all(&workspace).unwrap();
    // The runner's environment, and the job's repository as the runner
    // exports it from the job message.
    // The runner checks run with the runner's token (out of a pod: the
    // stack's kubeconfig names the API server).
    let runner_token = work.path().join("runner-token");
    std::fs::write(
        &runner_token,
        service_account_token(
            &admin,
            &shared.namespace,
            &shared.runner_service_account,
            None,
        )
        .await,
    )
    .unwrap();
    let kubeconfig = kubeconfig_path();
    let job_started = |repository: &str, id: u64, config: &Path| {
        ri(&[
            "job-started",
            "-c",
            config.to_str().unwrap(),
            "--token-file",
            runner_token.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .env("GITHUB_REPOSITORY", format!("{owner}/{repository}"))
        .env("GITHUB_REPOSITORY_ID", id.to_string())
        .env("GITHUB_REPOSITORY_OWNER_ID", "900")
        .env("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE", &template)
        .env("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true")
        .env("RUNNER_WORKSPACE", &workspace)
        .run()
    };

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &shared.namespace);
    let token = service_account_token(
        &admin,
        &shared.namespace,
        &shared.runner_service_account,
        None,
    )
    .await;
    for (n, (repository, id)) in members.iter().zip([("api", 901), ("web", 902)]) {
        // The runner pod, and its pod-bound token (the claim names its pod).
        let runner = format!("{group}-runner-{repository}");
        std::fs::write(
            &runner_token,
            runner_pod_token(
                &admin,
                &shared.namespace,
                &shared.runner_service_account,
                &runner,
            )
            .await,
        )
        .unwrap();
        let ran = job_started(repository, id, &config).expect(0);
        assert!(ran.stdout.contains("claim recorded"), "{}", ran.stdout);
        assert!(
            ran.stdout.contains(&n.job_service_account),
            "{}",
            ran.stdout
        );
        // The runner checks passed for this member: its repository, its
        // template, the hooks' rights, and no excess (the other member's job
        // ServiceAccount beside it is the group's by design).
        for check in [
            "repository",
            "hook-template",
            "hook-rights",
            "least-privilege",
        ] {
            assert!(
                ran.stdout
                    .lines()
                    .any(|l| l.contains(check) && l.contains("pass")),
                "{check}: {}",
                ran.stdout
            );
        }
        // What it wrote is what plan shows for the member.
        let planned = plan.repositories.iter().find(|r| &r.names == *n).unwrap();
        assert_eq!(
            std::fs::read_to_string(&template).unwrap(),
            planned.job_template
        );
        let hook_work = tempfile::tempdir().unwrap();
        // The job's attack through its own `env:`: the variable the hooks
        // read the template from, naming a file in the work volume (which the
        // job writes) that holds the other member's template. The runner
        // passes the job's variables in the hook's input, not its
        // environment: the hooks must not take it.
        let other = plan.repositories[..2]
            .iter()
            .find(|r| &r.names != *n)
            .unwrap();
        let forged = hook_work.path().join("forged-template.yaml");
        std::fs::write(&forged, &other.job_template).unwrap();
        let mut input = prepare_job_input(hook_work.path());
        input["args"]["container"]["environmentVariables"] =
            serde_json::json!({"ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE": forged});
        let mut hook = run_hook(
            &bundle(Hooks::Kubernetes),
            hook_work.path(),
            &shared.namespace,
            &token,
            &[
                ("ACTIONS_RUNNER_POD_NAME", runner.clone()),
                (
                    "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE",
                    template.display().to_string(),
                ),
                ("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true".to_owned()),
            ],
            &input,
        );
        // The hooks name the workflow pod after the runner's.
        let pod = named_pod(&pods, &format!("{runner}-workflow"), &mut hook).await;
        hook.kill().ok();
        hook.wait().ok();
        let spec = pod.spec.unwrap();
        let account = spec.service_account_name.clone().unwrap();
        assert_eq!(
            account, n.job_service_account,
            "{repository}'s workflow pod"
        );
        // The job's variable reached its container only, as data.
        let job = spec.containers.iter().find(|c| c.name == "job").unwrap();
        assert!(
            job.env
                .iter()
                .flatten()
                .any(|e| e.name == "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"),
            "{:?}",
            job.env
        );
        // A token of the workflow pod's ServiceAccount: its own member's role
        // trusts it, the other member's does not.
        let token = service_account_token(
            &admin,
            &shared.namespace,
            &account,
            Some("sts.amazonaws.com"),
        )
        .await;
        let sub = jwt_claims(&token)["sub"].as_str().unwrap().to_owned();
        for other in &plan.repositories[..2] {
            let decision = trusts(&other.iam_role.trust_policy, &sub);
            if &other.names == *n {
                assert_eq!(decision, Decision::Allowed(0), "{sub} by its own role");
            } else {
                assert!(
                    matches!(decision, Decision::NotAllowed(_)),
                    "{sub} by {}'s role: {decision:?}",
                    other.names.repository
                );
            }
        }
        assert_eq!(
            pod.metadata.annotations.unwrap_or_default()["runner-identity.dev/repository"],
            n.repository
        );
    }

    // Each runner pod's claim names its own member, immutable; a second
    // job-started on a runner that has one is refused (one job per runner).
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin.clone(), &shared.namespace);
    for (n, repository) in members.iter().zip(["api", "web"]) {
        let claim = configmaps
            .get(&format!("{group}-runner-{repository}-claim"))
            .await
            .unwrap();
        assert_eq!(claim.immutable, Some(true));
        assert_eq!(
            claim.data.unwrap()["serviceAccountName"],
            n.job_service_account
        );
        assert_eq!(
            claim.metadata.owner_references.unwrap()[0].name,
            format!("{group}-runner-{repository}")
        );
    }
    // The attack on the claim with the runner's own token (what a member's
    // job can obtain): overwrite, patch or delete the neighbour's claim, or
    // read it, or mint a neighbour's token. RBAC refuses each (create is the
    // runner's only ConfigMap right; on Kubernetes >= 1.30 the guard also
    // refuses any ConfigMap but its own claim).
    let stolen = token_client(&std::fs::read_to_string(&runner_token).unwrap()).await;
    let as_runner: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(stolen.clone(), &shared.namespace);
    let theirs = format!("{group}-runner-api-claim");
    let forbidden = |r: Result<(), kube::Error>, what: &str| match r {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{what}: {s:?}"),
        other => panic!("{what} was not refused: {other:?}"),
    };
    let mut forged = configmaps.get(&theirs).await.unwrap();
    forged.data = Some(std::collections::BTreeMap::from([(
        "serviceAccountName".to_owned(),
        members[1].job_service_account.clone(),
    )]));
    forbidden(
        as_runner
            .replace(&theirs, &PostParams::default(), &forged)
            .await
            .map(drop),
        "replace",
    );
    forbidden(
        as_runner
            .patch(
                &theirs,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
            .map(drop),
        "patch",
    );
    forbidden(
        as_runner
            .delete(&theirs, &Default::default())
            .await
            .map(drop),
        "delete",
    );
    forbidden(as_runner.get(&theirs).await.map(drop), "get");
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(stolen, &shared.namespace);
    forbidden(
        accounts
            .create_token_request(
                &members[0].job_service_account,
                &PostParams::default(),
                &Default::default(),
            )
            .await
            .map(drop),
        "a member's token",
    );
    assert_eq!(
        configmaps.get(&theirs).await.unwrap().data.unwrap()["serviceAccountName"],
        members[0].job_service_account,
        "the claim is unchanged"
    );
    let again = job_started("api", 901, &config).expect(1);
    assert!(
        again.stderr.contains("has a claim already"),
        "{}",
        again.stderr
    );
    assert!(!template.exists(), "no template is left by a refused job");

    // The group's runner is no member's identity.
    let runner_sub = jwt_claims(
        &service_account_token(
            &admin,
            &shared.namespace,
            &shared.runner_service_account,
            Some("sts.amazonaws.com"),
        )
        .await,
    )["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    for member in &plan.repositories[..2] {
        assert!(matches!(
            trusts(&member.iam_role.trust_policy, &runner_sub),
            Decision::NotAllowed(_)
        ));
    }

    // Outside the group, or a member's name under another id (the name
    // passed to another repository): refused, and the previous job's
    // template is gone.
    for (repository, id, says) in [
        ("docs", 903, "is not a repository of group `platform`"),
        ("web", 904, "the configuration pins 902"),
    ] {
        std::fs::write(&template, "left by the previous job").unwrap();
        let ran = job_started(repository, id, &config).expect(1);
        assert!(ran.stderr.contains(says), "{}", ran.stderr);
        assert!(!template.exists(), "no template is left for a refused job");
    }
    // A runner that fails its checks starts no job: without a right the
    // hooks need, job-started exits 1 and leaves no template (a fresh runner
    // pod, which has no claim yet).
    std::fs::write(
        &runner_token,
        runner_pod_token(
            &admin,
            &shared.namespace,
            &shared.runner_service_account,
            &format!("{group}-runner-fresh"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        drop_role_rules(&shared.namespace, &shared.role, rule_for("pods/exec")).await,
        1
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ran = loop {
        let ran = job_started("api", 901, &config);
        if ran.code == Some(1) || std::time::Instant::now() > deadline {
            break ran;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.contains("hook-rights") && l.contains("FAIL")),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stderr.contains("the runner checks failed"),
        "{}",
        ran.stderr
    );
    assert!(!template.exists(), "no template is left by a failed runner");

    // Whatever fails, the previous template goes first: here a
    // configuration in the work directory, which the job's pod writes.
    std::fs::write(&template, "left by the previous job").unwrap();
    let planted = workspace.join("runner-identity.yaml");
    std::fs::write(&planted, &text).unwrap();
    let ran = job_started("api", 901, &planted).expect(2);
    assert!(
        ran.stderr.contains("under the runner's work directory"),
        "{}",
        ran.stderr
    );
    assert!(!template.exists(), "no template is left after a refusal");
}

/// A group on gha-runner-scale-set-experimental, whose runner container
/// mounts nothing of runner-identity's: the planned `runner.env` gives the
/// runner the group and its configuration, and the script runner-identity's
/// image ships (`action/job-started.sh`) runs `job-started` for the group.
/// It writes each member's template to the path the values name (outside
/// the work volume) and records the claim; a repository outside the group is
/// refused (exit 1) and leaves no template.
#[tokio::test]
async fn on_the_experimental_chart_the_images_script_writes_the_members_template_from_runner_env() {
    let admin = admin_client().await;
    let owner = unique("gx");
    let group = "platform";
    let base = pinned_config(&owner);
    let text = format!(
        "{base}  chart: {{name: gha-runner-scale-set-experimental, version: 0.14.2}}\n  \
         verifyRunner: {{runnerImage: 'registry.example/runner-with-identity:2.336.0'}}\n\
         groups:\n  - name: {group}\n    repositories: [api, web]\n"
    );
    let settings = settings(&text);
    let mut plan = runner_identity::plan::plan(
        &settings,
        &runner_identity::templates::Templates::load(None).unwrap(),
    )
    .unwrap();
    plan.repositories[0].admission_policy.clear();
    apply_plan(&admin, &plan, false).await;
    let shared = plan.repositories[0].names.clone();
    let values: serde_yaml::Value =
        serde_yaml::from_str(plan.repositories[0].values().unwrap()).unwrap();
    let env: std::collections::BTreeMap<String, String> = values["runner"]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(env["RUNNER_IDENTITY_GROUP"], group);
    assert_eq!(
        env["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"],
        runner_identity::plan::IMAGE_JOB_TEMPLATE
    );
    assert!(!env["RUNNER_IDENTITY_CONFIG_TEXT"].contains("docs"));

    let work = tempfile::tempdir().unwrap();
    // The runner's home (its own files) and its work directory.
    let template = work.path().join("runner-identity-hook-template.yaml");
    let workspace = work.path().join("_work/app");
    std::fs::create_dir_all(&workspace).unwrap();
    let runner_token = work.path().join("runner-token");
    // The image's script, pointed at this machine (out of a pod: a token
    // file and the stack's kubeconfig).
    let script = std::fs::read_to_string(root().join("action/job-started.sh"))
        .unwrap()
        .replace(
            "/opt/runner-identity/bin/runner-identity job-started",
            &format!(
                "{} job-started --token-file {} --kubeconfig {}",
                env!("CARGO_BIN_EXE_runner-identity"),
                runner_token.display(),
                kubeconfig_path().display()
            ),
        );
    let script_path = work.path().join("job-started.sh");
    std::fs::write(&script_path, script).unwrap();
    let run = |repository: &str, id: u64| {
        Command::new("sh")
            .arg("-e")
            .arg(&script_path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_REPOSITORY", format!("{owner}/{repository}"))
            .env("GITHUB_REPOSITORY_ID", id.to_string())
            .env("GITHUB_REPOSITORY_OWNER_ID", "900")
            .env("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true")
            .env("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE", &template)
            .env("RUNNER_WORKSPACE", &workspace)
            .env("RUNNER_IDENTITY_GROUP", &env["RUNNER_IDENTITY_GROUP"])
            .env(
                "RUNNER_IDENTITY_CONFIG_TEXT",
                &env["RUNNER_IDENTITY_CONFIG_TEXT"],
            )
            .output()
            .unwrap()
    };
    let out = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for (i, (repository, id)) in [("api", 901), ("web", 902)].into_iter().enumerate() {
        std::fs::write(
            &runner_token,
            runner_pod_token(
                &admin,
                &shared.namespace,
                &shared.runner_service_account,
                &format!("{group}-x-runner-{repository}"),
            )
            .await,
        )
        .unwrap();
        let o = run(repository, id);
        assert_eq!(o.status.code(), Some(0), "{}", out(&o));
        assert!(out(&o).contains("claim recorded"), "{}", out(&o));
        let member = &plan.repositories[i];
        assert_eq!(
            std::fs::read_to_string(&template).unwrap(),
            member.job_template
        );
        assert!(
            member
                .job_template
                .contains(&member.names.job_service_account)
        );
    }
    // Outside the group: refused, and the last job's template is gone.
    std::fs::write(
        &runner_token,
        runner_pod_token(
            &admin,
            &shared.namespace,
            &shared.runner_service_account,
            &format!("{group}-x-runner-docs"),
        )
        .await,
    )
    .unwrap();
    let o = run("docs", 903);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(!template.exists());
}

/// A group in Pod Identity mode: each member's role trusts EKS Pod Identity
/// only for its own job ServiceAccount in the group's namespace, as EKS tags
/// the session (the product's evaluator on the planned trust policies), and
/// the group's runner ServiceAccount is no member's identity.
#[test]
fn with_pod_identity_each_members_role_trusts_only_its_own_job_account() {
    use runner_identity::policy::{ServiceRequest, evaluate_service_assume};
    let text = "github: {owner: acme, ownerId: 900}\n\
                repositories: [{name: api, id: 901}, {name: web, id: 902}]\n\
                groups: [{name: platform, repositories: [api, web]}]\n\
                cluster: {name: prod, region: us-east-1}\n\
                aws: {accountId: '111122223333', mode: pod-identity}\n";
    let plan = plan_text(text);
    let members = &plan.repositories[..2];
    let tags = |sa: &str| {
        vec![
            ("aws:SourceAccount", "111122223333".to_owned()),
            ("aws:RequestTag/eks-cluster-name", "prod".to_owned()),
            (
                "aws:RequestTag/eks-cluster-arn",
                "arn:aws:eks:us-east-1:111122223333:cluster/prod".to_owned(),
            ),
            (
                "aws:RequestTag/kubernetes-namespace",
                members[0].names.namespace.clone(),
            ),
            ("aws:RequestTag/kubernetes-service-account", sa.to_owned()),
        ]
    };
    let decide = |policy: &serde_json::Value, sa: &str| {
        let tags = tags(sa);
        let context: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        evaluate_service_assume(
            policy,
            &ServiceRequest {
                service: "pods.eks.amazonaws.com",
                context: &context,
            },
        )
    };
    assert_eq!(members[0].names.namespace, members[1].names.namespace);
    for member in members {
        for other in members {
            let decision = decide(
                &member.iam_role.trust_policy,
                &other.names.job_service_account,
            );
            if other.names == member.names {
                assert_eq!(
                    decision,
                    Decision::Allowed(0),
                    "{}",
                    member.names.repository
                );
            } else {
                assert!(
                    matches!(decision, Decision::NotAllowed(_)),
                    "{}'s role for {}: {decision:?}",
                    member.names.repository,
                    other.names.repository
                );
            }
        }
        let runner = decide(
            &member.iam_role.trust_policy,
            &members[0].names.runner_service_account,
        );
        assert!(matches!(runner, Decision::NotAllowed(_)), "{runner:?}");
    }
}
