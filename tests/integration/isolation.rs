//! Shared namespaces on the real local API server: refused without the
//! opt-in; with it, the guard is planned and an API server that cannot
//! enforce it (v1.20 serves no ValidatingAdmissionPolicy) gets nothing
//! written; and `verify runner` reports a runner that can start pods next to
//! another repository's job ServiceAccount. (The CEL of the guard is
//! evaluated in `plan::admission`'s unit tests.)

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use runner_identity::Error;
use runner_identity::apply::{self, Options};
use runner_identity::plan::Kind;
use runner_identity::verify::Status;
use runner_identity::verify::runner::{RunnerInputs, verify};

use crate::common::*;

/// Two repositories in the namespace `namespace` (names keep them apart).
fn shared(owner: &str, namespace: &str, opt_in: bool) -> TestConfig {
    TestConfig::irsa(owner, &["api", "web"], &stack_issuer()).with(|c| {
        let k = &mut c.kubernetes;
        k.namespace = namespace.to_owned();
        k.names.runner_service_account = "gha-{repo}-runner".into();
        k.names.job_service_account = "gha-{repo}-job".into();
        k.names.role = "gha-{repo}-hooks".into();
        k.names.config_map = "gha-{repo}-hook-template".into();
        k.shared_namespace = opt_in;
    })
}

#[test]
fn a_shared_namespace_is_refused_with_the_risk_unless_opted_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, shared("acme", "ci-shared", false).yaml()).unwrap();
    let o = crate::common::cli::command()
        .args(["plan", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("kubernetes.namespace"), "{err}");
    assert!(
        err.contains("2 repositories in namespace `ci-shared`"),
        "{err}"
    );
    assert!(
        err.contains("assume its IAM role") && err.contains("Secrets"),
        "{err}"
    );
    assert!(err.contains("sharedNamespace"), "{err}");
    assert!(o.stdout.is_empty(), "nothing is planned");

    // Opted in: one guard and one egress policy for the namespace, with the
    // first repository; both runners mapped to their own job accounts.
    let plan = shared("acme", "ci-shared", true).plan();
    let (first, second) = (&plan.repositories[0], &plan.repositories[1]);
    assert_eq!(first.admission_policy.len(), 1);
    let (policy, binding) = &first.admission_policy[0];
    assert!(second.admission_policy.is_empty() && second.network_policy.is_none());
    assert!(first.network_policy.is_some());
    let spec = serde_json::to_string(&policy.spec).unwrap();
    for n in [&first.names, &second.names] {
        let user = format!(
            "system:serviceaccount:ci-shared:{}",
            n.runner_service_account
        );
        assert!(
            spec.contains(&format!("'{user}': '{}'", n.job_service_account)),
            "{spec}"
        );
    }
    assert_eq!(
        binding.spec.as_ref().unwrap().policy_name,
        policy.metadata.name
    );
    let kinds: Vec<Kind> = first.objects().iter().map(|o| o.kind()).collect();
    assert_eq!(
        kinds[..2],
        [
            Kind::ValidatingAdmissionPolicy,
            Kind::ValidatingAdmissionPolicyBinding
        ]
    );
}

#[tokio::test]
async fn an_api_server_without_admission_policies_gets_nothing_written() {
    let owner = unique("shr");
    let namespace = unique("shared");
    create_namespace(&namespace).await;
    let plan = shared(&owner, &namespace, true).plan();
    let admin = admin_client().await;
    // First: a shared namespace that enforces no Pod Security level is
    // refused (what the admission policy does not judge, baseline does).
    let err = apply::apply(&admin, &plan, &Options::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3, "{text}");
    assert!(
        text.contains("enforces no Pod Security level")
            && text.contains(&format!(
                "kubectl label namespace {namespace} pod-security.kubernetes.io/enforce=baseline"
            )),
        "{text}"
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    namespaces
        .patch(
            &namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "baseline"}}})),
        )
        .await
        .unwrap();
    let err = apply::apply(&admin, &plan, &Options::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ClusterUnsupported { .. }), "{err}");
    assert_eq!(err.exit_code(), 3);
    let text = err.to_string();
    assert!(
        text.contains("ValidatingAdmissionPolicy") && text.contains("1.30"),
        "{text}"
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(admin, &namespace);
    let listed = accounts.list(&Default::default()).await.unwrap();
    assert!(listed.items.is_empty(), "written: {:?}", listed.items);
}

#[tokio::test]
async fn verify_runner_reports_pods_it_can_start_next_to_another_job_account() {
    let owner = unique("shv");
    let namespace = unique("sharedv");
    create_namespace(&namespace).await;
    let config = shared(&owner, &namespace, true);
    let mut plan = config.plan();
    // What a cluster without the guard holds: everything else of the plan.
    plan.repositories[0].admission_policy.clear();
    let admin = admin_client().await;
    let report = apply::apply(&admin, &plan, &Options::default())
        .await
        .unwrap();
    assert!(!report.failed(), "{}", report.table());
    let n = &plan.repositories[0].names;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        service_account_token(&admin, &namespace, &n.runner_service_account, None).await,
    )
    .unwrap();
    let template = dir.path().join("hook-template.yaml");
    std::fs::write(
        &template,
        plan.repositories[0].hook_template_text().unwrap(),
    )
    .unwrap();
    let inputs = RunnerInputs {
        settings: config.settings(),
        kubeconfig: Some(kubeconfig_path()),
        token_file: token,
        hook_template: Some(template),
        repository: Some(n.repository.clone()),
        require_job_container: Some("true".into()),
        strict: false,
    };
    let v = verify(&inputs).await;
    let check = v
        .checks
        .iter()
        .find(|c| c.name == "least-privilege")
        .unwrap();
    assert_eq!(check.status, Status::Warn, "{v}");
    let other = &plan.repositories[1].names;
    assert!(
        check.detail.contains(&format!(
            "{} ({})",
            other.job_service_account, other.repository
        )),
        "{v}"
    );
    let strict = verify(&RunnerInputs {
        strict: true,
        ..inputs
    })
    .await;
    assert!(!strict.passed(), "{strict}");
}

#[test]
fn scale_sets_whose_names_prefix_each_other_are_refused_in_a_shared_namespace() {
    // ARC names runner pods `<scale set>-<hash>-runner-<hash>`: `api` and
    // `api-7xk2p-runner` could share the prefix the guard tells pods apart by.
    let config = shared("acme", "ci-shared", true).with(|c| {
        c.repositories = ["api", "api-7xk2p-runner"]
            .into_iter()
            .map(|r| runner_identity::config::RepositoryEntry::Name(r.to_owned()))
            .collect();
    });
    let settings = config.settings();
    let err = runner_identity::plan::plan(
        &settings,
        &runner_identity::templates::Templates::load(None).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("kubernetes.names.scaleSet")
            && err.contains("`api-7xk2p-runner`")
            && err.contains("`api`"),
        "{err}"
    );
    // Names that do not prefix each other (`api`, `web`) are fine.
    assert!(shared("acme", "ci-shared", true).plan().repositories.len() == 2);
}
