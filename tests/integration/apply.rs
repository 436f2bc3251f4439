//! `apply` against the real local kube-apiserver: read-before-write (zero
//! writes on a re-run, counted in the server's audit log), prune, unmanaged
//! objects, dry run, and convergence after the server vanishes mid-run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use runner_identity::Error;
use runner_identity::apply::{self, Action, Options, Report};
use runner_identity::config::{ScaleSetCredentials, SecretRef, SecretSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ISSUER: &str = "https://oidc.example.com/id/X";

async fn run(client: &Client, text: &str, options: Options) -> Report {
    apply::apply(client, &plan_text(text), &options)
        .await
        .unwrap()
}

/// How many objects the plan of `text` holds (all repositories).
fn planned_objects(text: &str) -> usize {
    plan_text(text)
        .repositories
        .iter()
        .map(|r| r.objects().len())
        .sum()
}

fn actions(report: &Report) -> BTreeMap<String, Action> {
    report
        .repositories
        .iter()
        .flat_map(|r| r.objects.iter())
        .map(|o| (format!("{} {}/{}", o.kind, o.namespace, o.name), o.action))
        .collect()
}

#[tokio::test]
async fn second_apply_sends_zero_writes_and_says_so() {
    let owner = unique("zero");
    let text = irsa_config(&owner, &["a", "B.b", "c_c"], ISSUER);
    let admin = admin_client().await;
    let first = run(&admin, &text, Options::default()).await;
    // 3 × (Namespace, NetworkPolicy, 2 ServiceAccounts, Role, RoleBinding, ConfigMap).
    assert_eq!(planned_objects(&text), 21);
    assert_eq!(first.totals().created, 21);
    assert_eq!(first.writes, 21);

    let offset = audit_offset();
    let second = run(&admin, &text, Options::default()).await;
    assert_eq!(
        second.totals().unchanged,
        planned_objects(&text),
        "{}",
        second.table()
    );
    assert_eq!(second.writes, 0);
    assert!(second.table().contains("no changes: 0 write requests sent"));
    let writes = audited_writes(offset, &owner);
    assert!(
        writes.is_empty(),
        "the API server saw writes on a no-change re-run: {writes:?}"
    );

    // One changed label is one write, seen by the server as one patch.
    let offset = audit_offset();
    let changed = with_label(&text, "x");
    let third = run(&admin, &changed, Options::default()).await;
    assert_eq!(third.totals().updated, 21);
    assert_eq!(audited_writes(offset, &owner).len(), 21);
}

#[tokio::test]
async fn a_hand_edit_is_repaired_and_only_that_object_is_written() {
    let owner = unique("drift");
    let text = irsa_config(&owner, &["app"], ISSUER);
    let admin = admin_client().await;
    run(&admin, &text, Options::default()).await;
    let ns = format!("{owner}-app");
    let roles: Api<Role> = Api::namespaced(admin.clone(), &ns);
    let mut role = roles.get("gha-runner-hooks").await.unwrap();
    role.rules.as_mut().unwrap()[0].verbs.push("watch".into());
    role.metadata.managed_fields = None;
    roles
        .replace("gha-runner-hooks", &PostParams::default(), &role)
        .await
        .unwrap();

    let report = run(
        &admin,
        &text,
        Options {
            diff_only: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(report.totals().updated, 1);
    assert!(report.diffs().contains("-  - watch"), "{}", report.diffs());
    assert_eq!(report.writes, 0, "diff sends nothing");

    let report = run(&admin, &text, Options::default()).await;
    assert_eq!((report.totals().updated, report.writes), (1, 1));
    let verbs = &roles.get("gha-runner-hooks").await.unwrap().rules.unwrap()[0].verbs;
    assert_eq!(verbs, &["get", "list", "create", "delete"]);
}

#[tokio::test]
async fn unmanaged_service_account_is_not_overwritten_unless_adopted() {
    let owner = unique("adopt");
    let ns = format!("{owner}-app");
    let admin = admin_client().await;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(&ns),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: meta("gha-runner"),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let text = irsa_config(&owner, &["app"], ISSUER);
    let offset = audit_offset();
    let err = apply::apply(&admin, &plan_text(&text), &Options::default())
        .await
        .unwrap_err();
    let Error::Unmanaged { objects } = &err else {
        panic!("{err}")
    };
    assert!(objects.contains(&format!("Namespace {ns}")), "{objects:?}");
    assert!(
        objects.contains(&format!("ServiceAccount {ns}/gha-runner")),
        "{objects:?}"
    );
    assert!(err.to_string().contains("--adopt"));
    assert!(
        audited_writes(offset, &owner).is_empty(),
        "a refused apply writes nothing"
    );
    assert!(
        sas.get("gha-runner").await.unwrap().labels().is_empty(),
        "left untouched"
    );
    assert!(sas.get_opt("gha-job").await.unwrap().is_none());

    let report = run(
        &admin,
        &text,
        Options {
            adopt: true,
            ..Default::default()
        },
    )
    .await;
    assert!(!report.failed());
    let adopted = sas.get("gha-runner").await.unwrap();
    assert_eq!(
        adopted.labels()["app.kubernetes.io/managed-by"],
        "runner-identity"
    );
    assert_eq!(
        actions(&report)[&format!("ServiceAccount {ns}/gha-runner")],
        Action::Adopt
    );
}

#[tokio::test]
async fn another_configurations_object_is_a_conflict() {
    let owner = unique("inst");
    let admin = admin_client().await;
    let text = irsa_config(&owner, &["app"], ISSUER);
    run(&admin, &text, Options::default()).await;
    let other = format!("instance: someone-else\n{text}");
    let offset = audit_offset();
    let err = apply::apply(&admin, &plan_text(&other), &Options::default())
        .await
        .unwrap_err();
    let Error::Unmanaged { objects } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        objects.len(),
        planned_objects(&other),
        "every object of the repository: {objects:?}"
    );
    // Found from the lists (one per kind), not from a GET per object as before.
    let namespace = format!("/namespaces/{owner}-app/");
    let gets: Vec<String> = audited_requests(offset, &namespace)
        .into_iter()
        .filter(|uri| !uri.contains('?'))
        .collect();
    assert!(gets.is_empty(), "requests per object: {gets:?}");
}

#[tokio::test]
async fn prune_removes_only_managed_objects_of_this_configuration() {
    let owner = unique("prune");
    let admin = admin_client().await;
    let all = irsa_config(&owner, &["keep", "gone", "busy"], ISSUER);
    run(&admin, &all, Options::default()).await;
    // Another configuration instance on the same cluster, and a hand-made
    // object in one of this configuration's namespaces.
    let other = format!(
        "instance: {owner}-other\n{}",
        irsa_config(&format!("{owner}x"), &["gone"], ISSUER)
    );
    run(&admin, &other, Options::default()).await;
    let busy = format!("{owner}-busy");
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &busy);
    let user_cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("user-data".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &user_cm).await.unwrap();

    let only_keep = irsa_config(&owner, &["keep"], ISSUER);
    // Without --prune nothing is deleted.
    let report = run(&admin, &only_keep, Options::default()).await;
    assert_eq!(report.totals().pruned, 0);

    let dry = run(
        &admin,
        &only_keep,
        Options {
            prune: true,
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    let namespaced = planned_objects(&irsa_config(&owner, &["gone"], ISSUER)) - 1;
    assert_eq!(
        dry.totals().pruned,
        2 * namespaced + 1,
        "the namespaced objects of two repositories and one empty namespace: {}",
        dry.table()
    );
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &format!("{owner}-gone"));
    assert!(
        sas.get_opt("gha-runner").await.unwrap().is_some(),
        "a dry-run prune deletes nothing"
    );

    let report = run(
        &admin,
        &only_keep,
        Options {
            prune: true,
            ..Default::default()
        },
    )
    .await;
    let acts = actions(&report);
    assert!(!report.failed(), "{}", report.table());
    for ns in ["gone", "busy"] {
        let ns = format!("{owner}-{ns}");
        for obj in [
            "ServiceAccount {ns}/gha-runner",
            "ServiceAccount {ns}/gha-job",
            "Role {ns}/gha-runner-hooks",
            "RoleBinding {ns}/gha-runner-hooks",
            "ConfigMap {ns}/gha-hook-template",
        ] {
            let key = obj.replace("{ns}", &ns);
            assert_eq!(acts.get(&key), Some(&Action::Prune), "{key}: {acts:?}");
        }
    }
    assert_eq!(acts[&format!("Namespace /{owner}-gone")], Action::Prune);
    assert_eq!(
        acts[&format!("Namespace /{busy}")],
        Action::Keep,
        "holds an unmanaged ConfigMap"
    );
    assert!(
        report
            .problems()
            .iter()
            .any(|p| p.contains(&busy) && p.contains("kept"))
    );

    assert!(sas.get_opt("gha-runner").await.unwrap().is_none());
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let gone = namespaces.get_opt(&format!("{owner}-gone")).await.unwrap();
    assert!(
        gone.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "namespace deleted"
    );
    assert!(
        namespaces
            .get(&busy)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    assert!(
        cms.get_opt("user-data").await.unwrap().is_some(),
        "the unmanaged object survives"
    );
    // This configuration's remaining repository and the other instance are untouched.
    let keep: Api<ServiceAccount> = Api::namespaced(admin.clone(), &format!("{owner}-keep"));
    assert!(keep.get_opt("gha-job").await.unwrap().is_some());
    let other_sa: Api<ServiceAccount> = Api::namespaced(admin.clone(), &format!("{owner}x-gone"));
    assert!(other_sa.get_opt("gha-job").await.unwrap().is_some());
}

#[tokio::test]
async fn dry_run_of_a_change_persists_nothing() {
    let owner = unique("dry");
    let admin = admin_client().await;
    let text = irsa_config(&owner, &["app"], ISSUER);
    run(&admin, &text, Options::default()).await;
    let changed = with_label(&text, "y");
    let report = run(
        &admin,
        &changed,
        Options {
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(report.totals().updated, planned_objects(&text));
    assert!(
        report.repositories[0]
            .objects
            .iter()
            .all(|o| o.server_validated)
    );
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &format!("{owner}-app"));
    assert!(
        !sas.get("gha-job")
            .await
            .unwrap()
            .labels()
            .contains_key("team")
    );
    assert_eq!(run(&admin, &text, Options::default()).await.writes, 0);
}

/// A TCP proxy to the API server that cuts every connection, and refuses new
/// ones, once `budget` bytes have gone from the client to the server.
async fn cutting_proxy(budget: usize) -> (u16, Arc<AtomicBool>) {
    let target = stack_issuer().trim_start_matches("https://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&cut);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if flag.load(Ordering::SeqCst) {
                continue; // dropped: connection closed at once
            }
            let (flag, sent, target) = (Arc::clone(&flag), Arc::clone(&sent), target.clone());
            tokio::spawn(async move {
                let mut server = TcpStream::connect(target).await.unwrap();
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 8192];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || flag.load(Ordering::SeqCst) {
                            return;
                        }
                        if sent.fetch_add(n, Ordering::SeqCst) + n > budget {
                            flag.store(true, Ordering::SeqCst);
                            return;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let mut buf = [0u8; 8192];
                    loop {
                        let n = sr.read(&mut buf).await.unwrap_or(0);
                        if n == 0
                            || flag.load(Ordering::SeqCst)
                            || cw.write_all(&buf[..n]).await.is_err()
                        {
                            return;
                        }
                    }
                };
                tokio::select! { () = up => {}, () = down => {} }
            });
        }
    });
    (port, cut)
}

#[tokio::test]
async fn server_vanishing_mid_apply_then_rerun_converges() {
    let owner = unique("cut");
    let repos: Vec<String> = (0..24).map(|i| format!("r{i}")).collect();
    let names: Vec<&str> = repos.iter().map(String::as_str).collect();
    let text = irsa_config(&owner, &names, ISSUER);
    let (port, cut) = cutting_proxy(60_000).await;
    let kubeconfig = std::fs::read_to_string(kubeconfig_path()).unwrap();
    let server = stack_issuer();
    let dir = tempfile::tempdir().unwrap();
    let proxied = dir.path().join("kubeconfig");
    std::fs::write(
        &proxied,
        kubeconfig.replace(&server, &format!("https://127.0.0.1:{port}")),
    )
    .unwrap();
    let through_proxy =
        runner_identity::net::kube::client(Some(&proxied), None, Default::default())
            .await
            .unwrap();

    let interrupted = apply::apply(&through_proxy, &plan_text(&text), &Options::default()).await;
    assert!(
        cut.load(Ordering::SeqCst),
        "the proxy cut the connection mid-run"
    );
    match &interrupted {
        Ok(report) => assert!(report.failed(), "an interrupted apply reports failures"),
        Err(e) => assert!(matches!(e, Error::Kube { .. }), "{e}"),
    }

    let admin = admin_client().await;
    let rerun = run(&admin, &text, Options::default()).await;
    assert!(!rerun.failed(), "{}", rerun.table());
    let totals = rerun.totals();
    assert_eq!(
        totals.created + totals.updated + totals.unchanged,
        planned_objects(&text)
    );
    assert!(
        totals.unchanged > 0,
        "part of the first run had landed: {}",
        rerun.table()
    );
    assert_eq!(
        run(&admin, &text, Options::default()).await.writes,
        0,
        "converged"
    );
}

/// `apply --prune` from a saved discovery (`--repos-file`): an incomplete
/// discovery deletes nothing; a complete one prunes what left the selection.
#[tokio::test]
async fn prune_refuses_an_incomplete_discovery() {
    let owner = unique("disc");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let text = TestConfig::irsa(&owner, &[], &stack_issuer())
        .selecting_topic("arc-runner")
        .yaml();
    std::fs::write(&config, &text).unwrap();
    let discovery = |names: &[&str], complete: bool| {
        let path = dir
            .path()
            .join(format!("repos-{}-{complete}.json", names.len()));
        let selected: Vec<serde_json::Value> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "reasons": ["topic `arc-runner`"]}))
            .collect();
        let mut doc = serde_json::json!({
            "owner": owner, "api": "https://api.github.com", "complete": complete,
            "listed": names.len(), "selected": selected, "rejected": [], "problems": [],
        });
        if !complete {
            doc["incomplete"] = "GitHub counts 3 repositories but the listing returned 1".into();
        }
        std::fs::write(&path, doc.to_string()).unwrap();
        path
    };
    let apply = |repos: &std::path::Path| {
        crate::common::cli::command()
            .args(["apply", "--skip-aws", "--prune", "-c"])
            .arg(&config)
            .arg("--repos-file")
            .arg(repos)
            .env("KUBECONFIG", kubeconfig_path())
            .output()
            .unwrap()
    };
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    let exists = |ns: String| {
        let api = namespaces.clone();
        async move {
            api.get_opt(&ns)
                .await
                .unwrap()
                .is_some_and(|n| n.metadata.deletion_timestamp.is_none())
        }
    };
    let ns = |repo: &str| format!("{}-{repo}", owner.to_lowercase());

    let o = apply(&discovery(&["app", "other"], true));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(exists(ns("other")).await);

    let o = apply(&discovery(&["app"], false));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("refusing to prune") && err.contains("counts 3"),
        "{err}"
    );
    assert!(exists(ns("other")).await, "an incomplete discovery pruned");

    let o = apply(&discovery(&[], true));
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("selected no repository"));
    assert!(exists(ns("app")).await);

    let o = apply(&discovery(&["app"], true));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!exists(ns("other")).await, "a complete discovery prunes");
    assert!(exists(ns("app")).await);
}

/// The scale sets' credentials Secret: created in every repository namespace
/// with ARC's keys, never printed, updated when the source changes, copied
/// from an existing Secret, and pruned with its repository.
#[tokio::test]
async fn github_config_secret_is_applied_never_printed_and_pruned() {
    use k8s_openapi::api::core::v1::Secret;
    let owner = unique("sec");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = format!("ghp_{}", unique("secretvalue"));
    std::fs::write(&token_file, &token).unwrap();
    let config = dir.path().join("config.yaml");
    let with_credentials = |repos: &[&str], credentials: ScaleSetCredentials| {
        TestConfig::irsa(&owner, repos, &stack_issuer())
            .with(|c| c.kubernetes.github_credentials = Some(credentials))
            .yaml()
    };
    let token_source = ScaleSetCredentials {
        token: Some(SecretSource {
            env: None,
            file: Some(token_file.clone()),
        }),
        app: None,
        from_secret: None,
    };
    std::fs::write(&config, with_credentials(&["app", "other"], token_source)).unwrap();
    let cli = |args: &[&str]| {
        let o = crate::common::cli::command()
            .args(args)
            .arg("-c")
            .arg(&config)
            .env("KUBECONFIG", kubeconfig_path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let all = format!("{stdout}{}", String::from_utf8_lossy(&o.stderr));
        (o.status.code(), all, stdout)
    };
    let admin = admin_client().await;
    let secrets = |ns: &str| Api::<Secret>::namespaced(admin.clone(), ns);
    let ns = |repo: &str| format!("{}-{repo}", owner.to_lowercase());

    let (code, all, _) = cli(&["plan"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains("kind: Secret") && all.contains("(redacted)"),
        "{all}"
    );
    assert!(all.contains("runner-identity.dev/content-sha256"));
    assert!(!all.contains(&token), "plan printed the token");

    let (code, all, _) = cli(&["diff", "--skip-aws"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(!all.contains(&token), "diff printed the token");
    let (code, all, _) = cli(&["apply", "--skip-aws"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(!all.contains(&token), "apply printed the token");
    let live = secrets(&ns("app")).get("github-config").await.unwrap();
    let data = live.data.clone().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["github_token"]);
    assert_eq!(data["github_token"].0, token.as_bytes());
    assert_eq!(
        live.labels()["runner-identity.dev/instance"],
        settings(&std::fs::read_to_string(&config).unwrap()).instance
    );

    // Unchanged source: no write. Changed source: the Secret follows.
    let (_, _, stdout) = cli(&["apply", "--skip-aws", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["kubernetes"]["writes"], 0, "{report}");
    std::fs::write(&token_file, format!("{token}-rotated")).unwrap();
    let (code, all, stdout) = cli(&["apply", "--skip-aws", "-o", "json"]);
    assert_eq!(code, Some(0), "{all}");
    // The report names each object as Kubernetes does: its kind, namespace
    // and name, and what was done, in lower case.
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let updated: Vec<(&str, &str, &str)> = report["kubernetes"]["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["objects"].as_array().unwrap())
        .filter(|o| o["action"] == "update")
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["namespace"].as_str().unwrap(),
                o["name"].as_str().unwrap(),
            )
        })
        .collect();
    let (app, other) = (ns("app"), ns("other"));
    assert_eq!(
        updated,
        [
            ("Secret", app.as_str(), "github-config"),
            ("Secret", other.as_str(), "github-config")
        ],
        "{report}"
    );
    let live = secrets(&ns("other")).get("github-config").await.unwrap();
    assert_eq!(
        live.data.unwrap()["github_token"].0,
        format!("{token}-rotated").as_bytes()
    );

    // From an existing Secret holding a GitHub App: its ARC keys are copied.
    let source_ns = ns("app");
    let source = Secret {
        metadata: ObjectMeta {
            name: Some("org-app".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("github_app_id".into(), "123".into()),
            ("github_app_installation_id".into(), "456".into()),
            (
                "github_app_private_key".into(),
                "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----".into(),
            ),
            ("unrelated".into(), "not copied".into()),
        ])),
        ..Default::default()
    };
    secrets(&source_ns)
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    let from_secret = |name: &str| ScaleSetCredentials {
        token: None,
        app: None,
        from_secret: Some(SecretRef {
            namespace: source_ns.clone(),
            name: name.to_owned(),
        }),
    };
    std::fs::write(
        &config,
        with_credentials(&["app", "other"], from_secret("org-app")),
    )
    .unwrap();
    let (code, all, _) = cli(&["apply", "--skip-aws"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(!all.contains("BEGIN PRIVATE KEY"));
    let data = secrets(&ns("other"))
        .get("github-config")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        [
            "github_app_id",
            "github_app_installation_id",
            "github_app_private_key"
        ],
        "one kind only: the token key is gone"
    );
    assert_eq!(data["github_app_id"].0, b"123");

    // A source holding both kinds is refused, and nothing changes.
    let mut both = source.clone();
    both.metadata.name = Some("both".into());
    both.string_data
        .as_mut()
        .unwrap()
        .insert("github_token".into(), "t".into());
    secrets(&source_ns)
        .create(&PostParams::default(), &both)
        .await
        .unwrap();
    std::fs::write(
        &config,
        with_credentials(&["app", "other"], from_secret("both")),
    )
    .unwrap();
    let (code, all, _) = cli(&["apply", "--skip-aws"]);
    // A malformed credential source is the user's to fix: exit 2, not 3.
    assert_eq!(code, Some(2), "{all}");
    assert!(all.contains("not both kinds"), "{all}");

    // Pruned with its repository; the unmanaged source Secret is untouched.
    std::fs::write(&config, with_credentials(&["app"], from_secret("org-app"))).unwrap();
    let (code, all, _) = cli(&["apply", "--skip-aws", "--prune"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        secrets(&ns("other"))
            .get_opt("github-config")
            .await
            .unwrap()
            .is_none()
            || namespace_gone(&ns("other")).await
    );
    assert!(
        secrets(&source_ns)
            .get_opt("org-app")
            .await
            .unwrap()
            .is_some()
    );
}

async fn namespace_gone(ns: &str) -> bool {
    let api: Api<Namespace> = Api::all(admin_client().await);
    api.get_opt(ns)
        .await
        .unwrap()
        .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
}

/// `text` with the label `team: <team>` on every object.
fn with_label(text: &str, team: &str) -> String {
    let mut config: runner_identity::config::Config = serde_yaml::from_str(text).unwrap();
    config.kubernetes.labels.insert("team".into(), team.into());
    serde_yaml::to_string(&config).unwrap()
}

#[tokio::test]
async fn the_inventory_is_read_across_pages_smaller_than_the_object_count() {
    // Before, the continue loop was unreachable (one watch-cache read) and a
    // continue token would have been sent with resourceVersion=0.
    let owner = unique("page");
    let text = irsa_config(&owner, &["a", "b", "c"], ISSUER);
    let admin = admin_client().await;
    let paged = Options {
        page_size: 2,
        ..Default::default()
    };
    let first = run(&admin, &text, paged.clone()).await;
    assert_eq!(
        first.totals().created,
        planned_objects(&text),
        "{}",
        first.table()
    );
    // Three ConfigMaps, ServiceAccounts in pairs…: every kind needs more than
    // one page of 2, and every object must still be found.
    let offset = audit_offset();
    let second = run(&admin, &text, paged).await;
    assert_eq!(
        second.totals().unchanged,
        planned_objects(&text),
        "{}",
        second.table()
    );
    assert_eq!(second.writes, 0);
    assert!(audited_writes(offset, &owner).is_empty());
    let lists = audited_requests(offset, "limit=2")
        .iter()
        .filter(|uri| uri.contains("continue="))
        .count();
    assert!(lists >= 3, "continued lists: {lists}");
}

/// `diff --skip-aws` of `config` with `KUBECONFIG=list` and no `--kubeconfig`.
fn diff_with_kubeconfig_list(
    config: &std::path::Path,
    list: &std::ffi::OsStr,
) -> std::process::Output {
    crate::common::cli::command()
        .args(["diff", "--skip-aws", "-c"])
        .arg(config)
        .env("KUBECONFIG", list)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_kubeconfig_list_is_merged_like_kubectl() {
    // The stack's kubeconfig split in two files, cluster and context in one,
    // the user in the other, with a missing file before both: kubectl merges
    // them (the first file to set a value wins, missing files are skipped).
    let kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut first = kc.clone();
    first["users"] = serde_yaml::Value::Sequence(Vec::new());
    let mut second = kc.clone();
    second["clusters"] = serde_yaml::Value::Sequence(Vec::new());
    second["contexts"] = serde_yaml::Value::Sequence(Vec::new());
    second.as_mapping_mut().unwrap().remove("current-context");
    std::fs::write(&a, serde_yaml::to_string(&first).unwrap()).unwrap();
    std::fs::write(&b, serde_yaml::to_string(&second).unwrap()).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, irsa_config(&unique("kcl"), &["app"], ISSUER)).unwrap();
    let list = std::env::join_paths([dir.path().join("missing"), a.clone(), b.clone()]).unwrap();
    let o = diff_with_kubeconfig_list(&config, &list);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(all.contains("create"), "{all}");
    // Only the half without the user: the server refuses (exit 3), it is no
    // longer "one path named a:b".
    let o = diff_with_kubeconfig_list(&config, a.as_os_str());
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn the_action_dry_run_input_persists_nothing() {
    // `with: dry-run: true` reaches the container as INPUT_DRY-RUN; before,
    // apply read INPUT_DRY_RUN and really applied.
    let owner = unique("adr");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, irsa_config(&owner, &["app"], ISSUER)).unwrap();
    let o = crate::common::cli::command()
        .arg("action")
        .env("KUBECONFIG", kubeconfig_path())
        .env("INPUT_COMMAND", "apply")
        .env("INPUT_CONFIG", &config)
        .env("INPUT_DRY-RUN", "true")
        .env("INPUT_SKIP-AWS", "true")
        .env("INPUT_PRUNE", "false")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("dry run"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let ns = plan_text(&irsa_config(&owner, &["app"], ISSUER)).repositories[0]
        .names
        .namespace
        .clone();
    assert!(namespace_gone(&ns).await, "the dry run created {ns}");
}

#[tokio::test]
async fn prune_reads_every_page_of_a_namespace_before_deleting_it() {
    // The hand-made object sorts after the tool's own ConfigMap and
    // kube-root-ca.crt: with pages of one object it is on the third page.
    let owner = unique("pgp");
    let admin = admin_client().await;
    run(
        &admin,
        &irsa_config(&owner, &["keep", "busy"], ISSUER),
        Options::default(),
    )
    .await;
    let busy = format!("{owner}-busy");
    let user_cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("zz-user-data".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(admin.clone(), &busy)
        .create(&PostParams::default(), &user_cm)
        .await
        .unwrap();
    let report = run(
        &admin,
        &irsa_config(&owner, &["keep"], ISSUER),
        Options {
            prune: true,
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    let kept = actions(&report)
        .into_iter()
        .find(|(k, _)| k.starts_with("Namespace ") && k.ends_with(&format!("/{busy}")))
        .map(|(_, a)| a);
    assert_eq!(kept, Some(Action::Keep), "{}", report.table());
    assert!(
        !namespace_gone(&busy).await,
        "the namespace holding a foreign object survives"
    );
}

#[tokio::test]
async fn a_repository_gets_its_own_credentials_and_the_shared_ones_are_warned_about() {
    use k8s_openapi::api::core::v1::Secret;
    use runner_identity::config::RepositoryEntry;
    let owner = unique("own");
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        ScaleSetCredentials {
            token: Some(SecretSource {
                env: None,
                file: Some(path),
            }),
            app: None,
            from_secret: None,
        }
    };
    let (shared, own) = (unique("ghp_shared"), unique("github_pat_own"));
    let config = TestConfig::irsa(&owner, &["app", "other"], &stack_issuer()).with(|c| {
        c.kubernetes.github_credentials = Some(file("shared", &shared));
        let mut entry: runner_identity::config::RepositoryOverride =
            serde_yaml::from_str("name: app").unwrap();
        entry.kubernetes.github_credentials = Some(file("own", &own));
        c.repositories[0] = RepositoryEntry::Detailed(Box::new(entry));
    });
    let settings = config.settings();
    let warnings = runner_identity::plan::planning_warnings(&settings);
    // The shared token reaches one repository's runner besides its own...
    let shared_warning = warnings
        .iter()
        .find(|w| w.starts_with("kubernetes.githubCredentials"))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(
        shared_warning.contains("1 repositories (other)"),
        "{shared_warning}"
    );
    // ...and a repository's own token is not warned about.
    assert!(
        !warnings.iter().any(|w| w.contains("repositories[app]")),
        "{warnings:?}"
    );

    let credentials = runner_identity::github::credentials::load(&settings, None)
        .await
        .unwrap();
    let plan = plan_with_credentials(&settings, &credentials);
    // The runner's configuration names no credential source.
    let runner_config = &plan.repositories[0]
        .scale_set
        .as_ref()
        .unwrap()
        .config_map
        .data
        .as_ref()
        .unwrap()[runner_identity::plan::RUNNER_CONFIG_KEY];
    assert!(
        !runner_config.contains("githubCredentials"),
        "{runner_config}"
    );
    let admin = admin_client().await;
    assert!(
        !apply::apply(&admin, &plan, &Options::default())
            .await
            .unwrap()
            .failed()
    );
    for (repo, want) in [("app", &own), ("other", &shared)] {
        let secrets: Api<Secret> =
            Api::namespaced(admin.clone(), &format!("{}-{repo}", owner.to_lowercase()));
        let data = secrets.get("github-config").await.unwrap().data.unwrap();
        assert_eq!(data["github_token"].0, want.as_bytes(), "{repo}");
    }
}

#[tokio::test]
async fn diff_exit_code_reports_drift_as_1() {
    let owner = unique("drift");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, irsa_config(&owner, &["app"], ISSUER)).unwrap();
    let cli = |args: &[&str]| {
        crate::common::cli::command()
            .args(args)
            .arg("-c")
            .arg(&config)
            .args(["--skip-aws"])
            .env("KUBECONFIG", kubeconfig_path())
            .output()
            .unwrap()
    };
    let o = cli(&["diff", "--exit-code"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("would be made"));
    assert_eq!(cli(&["diff"]).status.code(), Some(0));
    assert_eq!(cli(&["apply"]).status.code(), Some(0));
    let o = cli(&["diff", "--exit-code"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(cli(&["apply", "--exit-code"]).status.code(), Some(2));
}
