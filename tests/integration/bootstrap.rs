//! `bootstrap`'s rights, proven on the real local API server: `apply` (first
//! run, re-run, `--prune`) succeeds as a ServiceAccount bound to exactly the
//! printed ClusterRole, and fails, naming the right, with any one rule removed.

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use runner_identity::apply::{self, Action, Options};
use runner_identity::bootstrap::{self, Grants};

use crate::common::*;

/// Applies the bootstrap objects named `name` with `grants` (as the admin).
pub(crate) async fn grant(name: &str, namespace: &str, grants: &Grants) {
    let admin = admin_client().await;
    for doc in bootstrap::kubernetes_objects(name, namespace, grants) {
        let mut object: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let kind = doc["kind"].as_str().unwrap();
        let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), "v1".to_owned()),
        };
        let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            &group, &version, kind,
        ));
        let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &ar),
            None => Api::all_with(admin.clone(), &ar),
        };
        object.metadata.managed_fields = None;
        api.patch(
            &object.metadata.name.clone().unwrap(),
            &PatchParams::apply("bootstrap-test").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap();
    }
}

/// The scale set's credentials from a token file.
fn token_credentials(file: &std::path::Path) -> runner_identity::config::ScaleSetCredentials {
    runner_identity::config::ScaleSetCredentials {
        token: Some(runner_identity::config::SecretSource {
            env: None,
            file: Some(file.to_owned()),
        }),
        app: None,
        from_secret: None,
    }
}

/// A client authenticated as the bootstrap ServiceAccount `name`.
pub(crate) async fn as_account(name: &str, namespace: &str) -> Client {
    let token = service_account_token(&admin_client().await, namespace, name, None).await;
    token_client(&token).await
}

/// Waits until `client` may (or may not) `verb` `resource`, as RBAC's cache catches up.
async fn settle(
    client: &Client,
    namespace: &str,
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
    want: bool,
) {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_owned()),
                    group: Some(group.to_owned()),
                    resource: Some(resource.to_owned()),
                    verb: Some(verb.to_owned()),
                    name: name.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = api
            .create(&PostParams::default(), &review)
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.allowed);
        if allowed == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "RBAC did not settle: {verb} {resource}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn apply_runs_with_exactly_the_bootstrap_rights() {
    let owner = unique("boot");
    let home = unique("ri-home");
    create_namespace(&home).await;
    let both = TestConfig::irsa(&owner, &["app", "gone"], &stack_issuer());
    let plan = both.plan();
    let name = unique("ri-apply");
    grant(&name, &home, &bootstrap::apply_grants_of(&plan, false)).await;
    let client = as_account(&name, &home).await;
    settle(
        &client,
        &format!("{owner}-app"),
        "",
        "serviceaccounts",
        "patch",
        plan.repositories[0]
            .scale_set
            .as_ref()
            .unwrap()
            .runner_service_account
            .metadata
            .name
            .as_deref(),
        true,
    )
    .await;

    let first = apply::apply(&client, &plan, &Options::default())
        .await
        .unwrap();
    assert!(!first.failed(), "{}", first.table());
    let second = apply::apply(&client, &plan, &Options::default())
        .await
        .unwrap();
    assert_eq!(second.writes, 0, "{}", second.table());

    // Prune the repository that left: its objects go; its namespace, which
    // the role cannot prove empty, stays.
    let one = TestConfig::irsa(&owner, &["app"], &stack_issuer()).plan();
    let pruned = apply::apply(
        &client,
        &one,
        &Options {
            prune: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!pruned.failed(), "{}", pruned.table());
    let actions: Vec<(String, Action)> = pruned
        .repositories
        .iter()
        .flat_map(|r| r.objects.iter())
        .map(|o| (o.kind.to_string(), o.action))
        .collect();
    assert!(
        actions.contains(&("Namespace".to_owned(), Action::Keep)),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("ServiceAccount".to_owned(), Action::Prune)),
        "{actions:?}"
    );
    // The instance metadata policy is the administrator's: kept, and said why.
    let kept = pruned
        .repositories
        .iter()
        .flat_map(|r| r.objects.iter())
        .find(|o| {
            o.kind == runner_identity::plan::Kind::NetworkPolicy && o.namespace.ends_with("-gone")
        })
        .unwrap();
    assert_eq!(kept.action, Action::Keep, "{kept:?}");
    assert!(
        kept.reason
            .as_deref()
            .unwrap_or_default()
            .contains("administrator"),
        "{kept:?}"
    );
    let namespace = pruned
        .repositories
        .iter()
        .flat_map(|r| r.objects.iter())
        .find(|o| o.kind == runner_identity::plan::Kind::Namespace && o.name.ends_with("-gone"))
        .unwrap();
    assert!(
        namespace
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("runner-identity does not manage"),
        "{namespace:?}"
    );
    assert_eq!(
        pruned.totals().pruned,
        plan.repositories[1].objects().len() - 2,
        "{}",
        pruned.table()
    );

    // The read-only role runs `diff`.
    let readonly = unique("ri-read");
    grant(&readonly, &home, &bootstrap::apply_grants_of(&plan, true)).await;
    let reader = as_account(&readonly, &home).await;
    settle(
        &reader,
        &format!("{owner}-app"),
        "",
        "configmaps",
        "list",
        None,
        true,
    )
    .await;
    let diff = apply::apply(
        &reader,
        &plan,
        &Options {
            diff_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!diff.failed(), "{}", diff.table());
    assert_eq!(diff.writes, 0);
}

#[tokio::test]
async fn any_rule_removed_makes_apply_fail_naming_the_right() {
    let home = unique("ri-home");
    create_namespace(&home).await;
    let name = unique("ri-less");
    // With the scale set's credentials planned too: the Secret rules.
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "ghp_bootstrap_test").unwrap();
    let planned = |owner: &str| {
        let config = TestConfig::irsa(owner, &["app"], &stack_issuer()).with(|c| {
            c.kubernetes.github_credentials = Some(token_credentials(token.path()));
        });
        let settings = config.settings();
        let data = futures::executor::block_on(runner_identity::github::credentials::load(
            &settings, None,
        ))
        .unwrap();
        plan_with_credentials(&settings, &data)
    };
    let sample = bootstrap::apply_grants_of(&planned("sample"), false);
    let held = sample.held.values().next().unwrap().len();
    assert_eq!(
        (
            sample.cluster.len(),
            sample.namespaced.len(),
            sample.held.len()
        ),
        (6, 5, 1),
        "{sample:#?}"
    );
    assert!(held >= 5, "the hooks' rules: {sample:#?}");
    assert!(
        sample
            .namespaced
            .iter()
            .any(|r| r.resources.as_deref() == Some(&["secrets".to_owned()]))
    );
    // Each rule of every scope, removed in turn: 0 cluster-wide, 1 per
    // namespace, 2 held in the repository's namespace.
    let positions: Vec<(u8, usize)> = (0..sample.cluster.len())
        .map(|i| (0, i))
        .chain((0..sample.namespaced.len()).map(|i| (1, i)))
        .chain((0..held).map(|i| (2, i)))
        .collect();
    for (i, (scope, at)) in positions.into_iter().enumerate() {
        let owner = unique("less");
        let plan = planned(&owner);
        let mut all = bootstrap::apply_grants_of(&plan, false);
        let removed = match scope {
            0 => all.cluster.remove(at),
            1 => all.namespaced.remove(at),
            _ => all.held.values_mut().next().unwrap().remove(at),
        };
        grant(&name, &home, &all).await;
        let client = as_account(&name, &home).await;
        let resource = removed.resources.as_ref().unwrap()[0].clone();
        // A verb of the removed rule that no other rule grants (a held rule
        // may overlap the namespace's other rules).
        let others: Vec<&k8s_openapi::api::rbac::v1::PolicyRule> =
            all.rules().chain(all.held.values().flatten()).collect();
        let verb = removed
            .verbs
            .iter()
            .find(|v| {
                !others.iter().any(|r| {
                    r.resources
                        .as_deref()
                        .is_some_and(|rs| rs.contains(&resource))
                        && r.verbs.contains(v)
                })
            })
            .unwrap_or_else(|| panic!("rule {i} is granted by the others too: {removed:?}"))
            .clone();
        let object = removed
            .resource_names
            .as_ref()
            .and_then(|n| n.first().cloned());
        settle(
            &client,
            &format!("{owner}-app"),
            &removed.api_groups.as_ref().unwrap()[0],
            &resource,
            &verb,
            object.as_deref(),
            false,
        )
        .await;
        let outcome = apply::apply(&client, &plan, &Options::default()).await;
        let text = match &outcome {
            Err(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            }
            Ok(report) => {
                assert!(
                    report.failed(),
                    "rule {i} ({verb} {resource}) was not needed: {}",
                    report.table()
                );
                report
                    .repositories
                    .iter()
                    .flat_map(|r| r.objects.iter())
                    .filter_map(|o| o.error.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        assert!(
            text.contains("forbidden")
                || text.contains("Forbidden")
                || text.contains("not currently held"),
            "rule {i} ({verb} {resource}): {text}"
        );
        let kind_word = resource.trim_end_matches('s');
        assert!(
            text.to_lowercase().contains(kind_word)
                || text.contains("escalat")
                || text.contains("not currently held"),
            "rule {i} ({verb} {resource}) is not named: {text}"
        );
    }
}

/// The query-protocol parameters of one IAM request.
type Call = Vec<(String, String)>;

/// Records the parameters of every IAM request sent.
#[derive(Debug, Clone, Default)]
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<Call>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for Recorder {
    fn name(&self) -> &'static str {
        "iam-call-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(bytes) = context.request().body().bytes() {
            let pairs = url::form_urlencoded::parse(bytes).into_owned().collect();
            self.0.lock().unwrap().push(pairs);
        }
        Ok(())
    }
}

/// Marks a recorded change made by the test's hand, not by apply.
const HAND: &str = "by-hand";

#[tokio::test]
async fn every_iam_call_of_apply_is_allowed_by_the_bootstrap_policy_and_nothing_wider() {
    use runner_identity::aws::{AwsOptions, Clients};
    use runner_identity::policy::iam_context::{Account, Request};
    use runner_identity::policy::{ApiRequest, Decision, evaluate_identity};
    let owner = unique("iamb");
    let boundary = "arn:aws:iam::123456789012:policy/gha-boundary";
    let issuer = format!("https://oidc.example.com/id/{owner}");
    let config = |repos: &[&str]| {
        TestConfig::irsa(&owner, repos, &issuer)
            .account("123456789012")
            .with(|c| {
                c.aws.role_path = None;
                c.aws.permissions_boundary = Some(boundary.into());
                c.aws.managed_policy_arns = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
            })
    };
    let sdk = moto_config().await;
    let recorder = Recorder::default();
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk)
            .interceptor(recorder.clone())
            .build(),
    );
    let clients = Clients {
        iam,
        eks: aws_sdk_eks::Client::new(&sdk),
    };
    // Someone else's hand (not recorded): the provider, and the drift below.
    let hand = aws_sdk_iam::Client::new(&sdk);
    crate::aws::provider(&clients, &issuer).await;
    recorder.0.lock().unwrap().clear();
    // First apply, a drift repaired, a prune: every IAM call apply makes.
    let both = config(&["api", "web"]);
    let report = runner_identity::aws::apply(
        &clients,
        &both.settings(),
        &both.plan(),
        &AwsOptions::default(),
    )
    .await;
    assert!(!report.failed(), "{}", report.table());
    let role = both.plan().repositories[0].iam_role.name.clone();
    hand.update_role()
        .role_name(&role)
        .max_session_duration(7200)
        .send()
        .await
        .unwrap();
    hand.delete_role_policy()
        .role_name(&role)
        .policy_name("runner-identity")
        .send()
        .await
        .unwrap();
    hand.untag_role()
        .role_name(&role)
        .tag_keys("runner-identity.dev/repository")
        .send()
        .await
        .unwrap();
    recorder.0.lock().unwrap().push(
        [
            ("Action", "UntagRole"),
            ("RoleName", role.as_str()),
            ("TagKeys.member.1", "runner-identity.dev/repository"),
            (HAND, ""),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
    );
    let repaired = runner_identity::aws::apply(
        &clients,
        &both.settings(),
        &both.plan(),
        &AwsOptions::default(),
    )
    .await;
    assert!(!repaired.failed(), "{}", repaired.table());
    let one = config(&["api"]);
    let pruned = runner_identity::aws::apply(
        &clients,
        &one.settings(),
        &one.plan(),
        &AwsOptions {
            prune: true,
            ..Default::default()
        },
    )
    .await;
    assert!(!pruned.failed(), "{}", pruned.table());

    // Each recorded request, in order, with the context IAM would give it:
    // the keys its action carries, the role's tags and boundary as they were
    // when it arrived (the hand's untag included).
    let policy = runner_identity::bootstrap::iam_policy(&both.settings(), false);
    let calls = recorder.0.lock().unwrap().clone();
    let mut iam = Account {
        partition: "aws".into(),
        account: "123456789012".into(),
        ..Default::default()
    };
    let mut actions = std::collections::BTreeSet::new();
    for call in &calls {
        let action = call
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .unwrap();
        let request = Request {
            action: action.clone(),
            params: call.clone(),
        };
        let authorizations = iam.authorize(&request);
        if call.iter().any(|(k, _)| k == HAND) {
            // Not apply's: its effect on the roles only.
            continue;
        }
        for auth in authorizations {
            let context: Vec<(&str, &str)> = auth
                .context
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let decision = evaluate_identity(
                &policy,
                &ApiRequest {
                    action: &auth.action,
                    resource: &auth.resource,
                    context: &context,
                },
            );
            assert!(
                matches!(decision, Decision::Allowed(_)),
                "{} on {} with {context:?}: {decision:?}",
                auth.action,
                auth.resource
            );
            actions.insert(auth.action);
        }
    }
    for expected in [
        "iam:CreateRole",
        "iam:TagRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:UpdateRole",
        "iam:DetachRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
        "iam:ListRoles",
    ] {
        assert!(
            actions.contains(expected),
            "apply made no {expected}: {actions:?}"
        );
    }
}

/// The status code of a server-side apply of `doc` into `namespace` as `client`.
async fn apply_status(client: &Client, namespace: &str, doc: serde_json::Value) -> u16 {
    let kind = doc["kind"].as_str().unwrap().to_owned();
    let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "rbac.authorization.k8s.io",
        "v1",
        &kind,
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
    match api
        .patch(
            &name,
            &PatchParams::apply("runner-identity").force(),
            &Patch::Apply(&doc),
        )
        .await
    {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("{kind} {namespace}/{name}: {e}"),
    }
}

/// Whether `client` may `verb` `resource` in `namespace`, by access review.
async fn can_i(client: &Client, namespace: &str, group: &str, resource: &str, verb: &str) -> bool {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                verb: Some(verb.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn the_bootstrap_identity_cannot_grant_itself_anything_outside_its_namespaces() {
    let owner = unique("esc");
    let home = unique("ri-home");
    create_namespace(&home).await;
    let elsewhere = unique("unmanaged");
    create_namespace(&elsewhere).await;
    let plan = TestConfig::irsa(&owner, &["app"], &stack_issuer()).plan();
    let name = unique("ri-esc");
    grant(&name, &home, &bootstrap::apply_grants_of(&plan, false)).await;
    let client = as_account(&name, &home).await;
    let managed = format!("{owner}-app");
    settle(
        &client,
        &managed,
        "",
        "serviceaccounts",
        "patch",
        Some(
            plan.repositories[0]
                .scale_set
                .as_ref()
                .unwrap()
                .runner_service_account
                .metadata
                .name
                .as_deref()
                .unwrap(),
        ),
        true,
    )
    .await;
    // It converges its own configuration.
    let report = apply::apply(&client, &plan, &Options::default())
        .await
        .unwrap();
    assert!(!report.failed(), "{}", report.table());

    // The attack: a Role named like the planned one with every right, and a
    // binding of it to the identity itself, written as apply writes (SSA).
    let role_name = plan.repositories[0]
        .scale_set
        .as_ref()
        .unwrap()
        .role
        .metadata
        .name
        .clone()
        .unwrap();
    let binding_name = plan.repositories[0]
        .scale_set
        .as_ref()
        .unwrap()
        .role_binding
        .metadata
        .name
        .clone()
        .unwrap();
    let everything = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": role_name},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    });
    let to_itself = |role_kind: &str, role: &str| {
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": binding_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": home}],
        })
    };
    for target in ["kube-system", elsewhere.as_str(), home.as_str()] {
        assert_eq!(
            apply_status(&client, target, everything.clone()).await,
            403,
            "a Role with every right in {target}"
        );
        assert_eq!(
            apply_status(&client, target, to_itself("Role", &role_name)).await,
            403,
            "a RoleBinding to itself in {target}"
        );
        for (group, resource, verb) in [
            ("", "secrets", "get"),
            ("", "secrets", "list"),
            ("", "pods", "create"),
            ("rbac.authorization.k8s.io", "rolebindings", "create"),
        ] {
            assert!(
                !can_i(&client, target, group, resource, verb).await,
                "{verb} {resource} in {target}"
            );
        }
    }
    // Secrets of every namespace at once: refused.
    assert!(!can_i(&client, "", "", "secrets", "list").await);
    // Inside its own namespace it may not bind cluster-admin either (it
    // holds no such rights there, and no `bind` on ClusterRoles).
    assert_eq!(
        apply_status(&client, &managed, to_itself("ClusterRole", "cluster-admin")).await,
        403
    );
    assert!(!can_i(&client, "kube-system", "", "secrets", "get").await);
}

#[tokio::test]
async fn apply_names_a_namespace_it_was_not_granted_before_writing_anything() {
    let owner = unique("ungr");
    let home = unique("ri-home");
    create_namespace(&home).await;
    let granted = TestConfig::irsa(&owner, &["app"], &stack_issuer()).plan();
    let name = unique("ri-ungr");
    grant(&name, &home, &bootstrap::apply_grants_of(&granted, false)).await;
    let client = as_account(&name, &home).await;
    let runner = granted.repositories[0]
        .scale_set
        .as_ref()
        .unwrap()
        .runner_service_account
        .metadata
        .name
        .clone()
        .unwrap();
    settle(
        &client,
        &format!("{owner}-app"),
        "",
        "serviceaccounts",
        "patch",
        Some(&runner),
        true,
    )
    .await;
    // A repository added to the configuration after bootstrap ran.
    let grown = TestConfig::irsa(&owner, &["app", "new"], &stack_issuer()).plan();
    let err = apply::apply(&client, &grown, &Options::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3, "{text}");
    assert!(text.contains(&format!("{owner}-new")), "{text}");
    assert!(!text.contains(&format!("{owner}-app,")), "{text}");
    assert!(text.contains("bootstrap"), "{text}");
    // Nothing was written, not even in the namespace it may write in.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(admin_client().await, &format!("{owner}-app"));
    assert!(accounts.get_opt(&runner).await.unwrap().is_none());
    // Bootstrap again for the grown configuration: apply converges.
    grant(&name, &home, &bootstrap::apply_grants_of(&grown, false)).await;
    settle(
        &client,
        &format!("{owner}-new"),
        "",
        "serviceaccounts",
        "patch",
        Some(&runner),
        true,
    )
    .await;
    let report = apply::apply(&client, &grown, &Options::default())
        .await
        .unwrap();
    assert!(!report.failed(), "{}", report.table());
}

/// The `sub` of the OIDC token GitHub issues to `job` of a workflow run for
/// `event` (GitHub's rules: an environment names it; else a pull request;
/// else the ref, the default branch for schedule and dispatch).
fn github_subject(job: &serde_yaml::Value, event: &str) -> String {
    if let Some(environment) = job["environment"].as_str() {
        return format!("environment:{environment}");
    }
    match event {
        "pull_request" => "pull_request".to_owned(),
        _ => "ref:refs/heads/main".to_owned(),
    }
}

#[test]
fn every_example_workflow_job_can_assume_the_role_bootstrap_trusts_it_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::cli::command()
        .args([
            "bootstrap",
            "-c",
            "examples/org-irsa.yaml",
            "--github-repository",
            "acme/platform",
            "--out-dir",
        ])
        .arg(dir.path())
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trust = |file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(file)).unwrap()).unwrap()
    };
    let (apply_trust, readonly_trust) = (
        trust("github-oidc-trust-policy.json"),
        trust("github-oidc-trust-policy-readonly.json"),
    );
    let allowed = github_token_allowed;
    let mut jobs_checked = 0;
    for entry in std::fs::read_dir(root().join("examples/workflows")).unwrap() {
        let path = entry.unwrap().path();
        let workflow: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let events: Vec<String> = workflow["on"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        for (name, job) in workflow["jobs"].as_mapping().unwrap() {
            let name = name.as_str().unwrap();
            let condition = job["if"].as_str().unwrap_or_default();
            let role = job["steps"]
                .as_sequence()
                .unwrap()
                .iter()
                .find_map(|s| s["with"]["role-to-assume"].as_str())
                .unwrap_or_else(|| panic!("{}: {name} assumes no role", path.display()));
            let readonly = role.contains("READONLY");
            for event in &events {
                if !condition.is_empty() && !condition.contains(&format!("'{event}'")) {
                    continue;
                }
                let sub = format!("repo:acme/platform:{}", github_subject(job, event));
                let policy = if readonly {
                    &readonly_trust
                } else {
                    &apply_trust
                };
                assert!(
                    allowed(policy, &sub),
                    "{} job {name} on {event} (sub {sub}) cannot assume its role",
                    path.display()
                );
                // Pull requests never get the write role or its kubeconfig.
                if event == "pull_request" {
                    let text = serde_yaml::to_string(job).unwrap();
                    assert!(readonly, "{name} on pull_request uses the write role");
                    assert!(
                        !text.contains("secrets.RUNNER_IDENTITY_KUBECONFIG"),
                        "{name}: {text}"
                    );
                    assert!(!allowed(&apply_trust, &sub), "the apply role trusts {sub}");
                }
                jobs_checked += 1;
            }
        }
    }
    assert!(jobs_checked >= 4, "{jobs_checked}");
}

#[tokio::test]
async fn the_read_only_identity_reads_no_secret_and_mints_no_token_yet_diff_runs() {
    // It is the identity pull requests get (examples/workflows): before, it
    // could list every managed namespace's Secrets and mint a token of any
    // job ServiceAccount for STS.
    let home = unique("ri-home");
    create_namespace(&home).await;
    let owner = unique("ro");
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "ghp_readonly_test").unwrap();
    let config = TestConfig::irsa(&owner, &["app"], &stack_issuer()).with(|c| {
        c.kubernetes.github_credentials = Some(token_credentials(token.path()));
    });
    let settings = config.settings();
    let data = runner_identity::github::credentials::load(&settings, None)
        .await
        .unwrap();
    let plan = plan_with_credentials(&settings, &data);
    let report = apply::apply(&admin_client().await, &plan, &Options::default())
        .await
        .unwrap();
    assert!(!report.failed(), "{}", report.table());
    let name = unique("ri-ro");
    grant(&name, &home, &bootstrap::apply_grants_of(&plan, true)).await;
    let reader = as_account(&name, &home).await;
    let managed = format!("{owner}-app");
    settle(&reader, &managed, "", "configmaps", "list", None, true).await;
    for (resource, verb) in [
        ("secrets", "get"),
        ("secrets", "list"),
        ("serviceaccounts/token", "create"),
        ("pods", "create"),
    ] {
        assert!(
            !can_i(&reader, &managed, "", resource, verb).await,
            "{verb} {resource}"
        );
    }
    let diff = apply::apply(
        &reader,
        &plan,
        &Options {
            diff_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!diff.failed(), "{}", diff.table());
    let secret = diff
        .repositories
        .iter()
        .flat_map(|r| r.objects.iter())
        .find(|o| o.kind == runner_identity::plan::Kind::Secret)
        .unwrap();
    assert_eq!(secret.action, Action::NotCompared, "{secret:?}");
    assert!(
        secret
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("not compared"),
        "{secret:?}"
    );
    // Everything else was compared, and is unchanged.
    assert!(
        diff.repositories
            .iter()
            .flat_map(|r| r.objects.iter())
            .filter(|o| o.kind != runner_identity::plan::Kind::Secret)
            .all(|o| o.action == Action::Unchanged)
    );
}

#[tokio::test]
async fn the_bootstrap_identity_reads_the_arc_controller_by_name_and_nothing_else_there() {
    let owner = unique("bctl");
    let home = unique("ri-home");
    create_namespace(&home).await;
    let arc = unique("arc");
    crate::controller::controller(&arc, "0.15.0").await;
    let config = TestConfig::irsa(&owner, &["app"], &stack_issuer()).with(|c| {
        c.kubernetes.chart.controller.namespace = arc.clone();
    });
    let (settings, plan) = (config.settings(), config.plan());
    for readonly in [false, true] {
        let name = unique("ri-ctl");
        grant(
            &name,
            &home,
            &bootstrap::apply_grants(&settings, &plan, readonly),
        )
        .await;
        let client = as_account(&name, &home).await;
        settle(
            &client,
            &arc,
            "apps",
            "deployments",
            "get",
            Some("arc-gha-rs-controller"),
            true,
        )
        .await;
        // What apply and diff do with it: the version, from the image tag.
        let seen = runner_identity::controller::read(&client, &settings)
            .await
            .unwrap();
        assert_eq!(seen.version, "0.15.0");
        // Nothing else of the controller's namespace.
        for (verb, resource, object) in [
            ("get", "deployments", Some("another-deployment")),
            ("list", "deployments", None),
            ("patch", "deployments", Some("arc-gha-rs-controller")),
            ("get", "secrets", None),
            ("list", "pods", None),
        ] {
            settle(
                &client,
                &arc,
                if resource == "deployments" {
                    "apps"
                } else {
                    ""
                },
                resource,
                verb,
                object,
                false,
            )
            .await;
        }
    }
}

#[test]
fn github_trusts_pin_the_immutable_subject_and_refuse_a_recycled_name() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(root().join("examples/org-irsa.yaml")).unwrap();
    let bootstrap = |forms: Option<&str>, repository: &str| {
        let config = dir.path().join("config.yaml");
        let text = match forms {
            Some(f) => example.replacen("github:\n", &format!("github:\n  oidcSubjects: {f}\n"), 1),
            None => example.clone(),
        };
        std::fs::write(&config, text).unwrap();
        let out = dir.path().join(format!(
            "out-{}-{}",
            forms.unwrap_or("default"),
            repository.len()
        ));
        let ran = crate::common::cli::ri(&[
            "bootstrap",
            "-c",
            config.to_str().unwrap(),
            "--github-repository",
            repository,
            "--out-dir",
            out.to_str().unwrap(),
        ])
        .run();
        (ran, out)
    };
    let allowed = |out: &std::path::Path, sub: &str| {
        let trust: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("github-oidc-trust-policy.json")).unwrap(),
        )
        .unwrap();
        github_token_allowed(&trust, sub)
    };
    let ours = "repo:acme@4242/platform@987654:environment:production";
    let by_name = "repo:acme/platform:environment:production";
    // A repository registered under the freed name gets new ids.
    let recycled = "repo:acme@4242/platform@555:environment:production";
    let other_owner = "repo:acme@1/platform@987654:environment:production";

    // Default (`both`, the migration window): either form of this repository.
    let (ran, out) = bootstrap(None, "acme@4242/platform@987654");
    ran.expect(0);
    assert!(allowed(&out, ours) && allowed(&out, by_name));
    assert!(!allowed(&out, recycled) && !allowed(&out, other_owner));

    // `immutable`: the name form, which a recycled name could carry, is refused.
    let (ran, out) = bootstrap(Some("immutable"), "acme@4242/platform@987654");
    ran.expect(0);
    assert!(allowed(&out, ours));
    for sub in [by_name, recycled, other_owner] {
        assert!(!allowed(&out, sub), "{sub}");
    }
    // Without the ids it cannot be pinned: refused with the way to get them.
    let (ran, _) = bootstrap(Some("immutable"), "acme/platform");
    let ran = ran.expect(2);
    assert!(
        ran.stderr.contains("OWNER@OWNER_ID/REPO@REPO_ID"),
        "{}",
        ran.stderr
    );
    // `both` without ids: the name form only, and a warning that says so.
    let (ran, out) = bootstrap(None, "acme/platform");
    let ran = ran.expect(0);
    assert!(ran.stderr.contains("only by name"), "{}", ran.stderr);
    assert!(allowed(&out, by_name) && !allowed(&out, ours));
    // `name` (GitHub Enterprise Server): the name form only, even with ids.
    let (ran, out) = bootstrap(Some("name"), "acme@4242/platform@987654");
    ran.expect(0);
    assert!(allowed(&out, by_name) && !allowed(&out, ours));
    // Half an id is not a repository.
    let (ran, _) = bootstrap(None, "acme@4242/platform");
    ran.expect(2);
}

/// Whether a GitHub OIDC token with `sub` (audience sts.amazonaws.com, from
/// github.com) may assume a role of trust `policy`, by the product's evaluator.
fn github_token_allowed(policy: &serde_json::Value, sub: &str) -> bool {
    use runner_identity::policy::{Decision, WebIdentityRequest, evaluate_web_identity};
    let issuer = "token.actions.githubusercontent.com";
    let provider = format!("arn:aws:iam::111122223333:oidc-provider/{issuer}");
    matches!(
        evaluate_web_identity(
            policy,
            &WebIdentityRequest {
                provider_arn: &provider,
                issuer,
                sub,
                aud: "sts.amazonaws.com"
            }
        ),
        Decision::Allowed(_)
    )
}

#[tokio::test]
async fn github_trusts_follow_the_subject_template_github_reports() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let github = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(root().join("examples/org-irsa.yaml")).unwrap();
    let answer = |body: serde_json::Value| {
        let github = &github;
        async move {
            github.reset().await;
            Mock::given(method("GET"))
                .and(path(
                    "/api/v3/repos/acme/platform/actions/oidc/customization/sub",
                ))
                .and(header("authorization", "Bearer ghp_subject_test"))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .mount(github)
                .await;
        }
    };
    let run = |forms: &str, extra: &[&str]| {
        let config = dir.path().join(format!("config-{forms}.yaml"));
        let text = example
            .replacen("  url: https://github.com\n", &format!("  url: {}\n", github.uri()), 1)
            .replacen(
                "github:\n",
                &format!(
                    "github:\n  oidcSubjects: {forms}\n  actionsIssuer: https://token.actions.githubusercontent.com\n"
                ),
                1,
            );
        std::fs::write(&config, text).unwrap();
        let out = dir.path().join(crate::common::unique("out"));
        let mut args = vec![
            "bootstrap".to_owned(),
            "-c".into(),
            config.display().to_string(),
            "--out-dir".into(),
            out.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let ran = crate::common::cli::ri(&args)
            .env("GITHUB_TOKEN", "ghp_subject_test")
            .run();
        (ran, out)
    };
    let allowed = |out: &std::path::Path, sub: &str| {
        let trust: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("github-oidc-trust-policy.json")).unwrap(),
        )
        .unwrap();
        github_token_allowed(&trust, sub)
    };
    let ours = "repo:acme@4242/platform@987654:environment:production";
    let by_name = "repo:acme/platform:environment:production";
    let recycled = "repo:acme@4242/platform@555:environment:production";

    // GitHub sends the immutable form (its flag says otherwise, as stored
    // answers show): `immutable` pins the ids it reports, from the name alone.
    answer(
        serde_json::json!({"use_default": true, "use_immutable_subject": false,
        "sub_claim_prefix": "repo:acme@4242/platform@987654"}),
    )
    .await;
    let from_api = [
        "--github-repository",
        "acme/platform",
        "--github-subject-from-api",
    ];
    let (ran, out) = run("immutable", &from_api);
    let ran = ran.expect(0);
    assert!(allowed(&out, ours), "{}", ran.stderr);
    for sub in [by_name, recycled] {
        assert!(!allowed(&out, sub), "{sub}");
    }
    assert!(!ran.stdout.contains("ghp_subject_test") && !ran.stderr.contains("ghp_subject_test"));
    // Ids given that GitHub contradicts: the name was registered again.
    let (ran, out) = run(
        "both",
        &[
            "--github-repository",
            "acme@4242/platform@555",
            "--github-subject-from-api",
        ],
    );
    let ran = ran.expect(2);
    assert!(ran.stderr.contains("repository id 555"), "{}", ran.stderr);
    assert!(!out.exists(), "nothing written");

    // The name form, as GitHub sends it: `immutable` cannot be pinned.
    answer(serde_json::json!({"use_default": true, "sub_claim_prefix": "repo:acme/platform"}))
        .await;
    let (ran, _) = run("immutable", &from_api);
    let ran = ran.expect(2);
    assert!(
        ran.stderr.contains("GitHub sends the name form"),
        "{}",
        ran.stderr
    );

    // A customised template that names no repository (the owner's id and
    // the context): any repository of the owner with an environment called
    // `production` would get in. Refused.
    answer(serde_json::json!({"use_default": false,
        "include_claim_keys": ["repository_owner_id", "context"]}))
    .await;
    let mut args = from_api.to_vec();
    args.extend([
        "--github-subject",
        "repository_owner_id:4242:environment:production",
        "--github-readonly-subject",
        "repository_owner_id:4242:pull_request",
    ]);
    let (ran, out) = run("both", &args);
    let ran = ran.expect(2);
    assert!(ran.stderr.contains("names no repository"), "{}", ran.stderr);
    assert!(!out.exists());

    // One that holds repository_id: whole subjects of this repository only.
    answer(serde_json::json!({"use_default": false,
        "include_claim_keys": ["repository_id", "context"]}))
    .await;
    let custom = "repository_id:987654:environment:production";
    let by_id = [
        "--github-repository",
        "acme@4242/platform@987654",
        "--github-subject-from-api",
        "--github-subject",
        custom,
        "--github-readonly-subject",
        "repository_id:987654:pull_request",
    ];
    let (ran, out) = run("both", &by_id);
    ran.expect(0);
    assert!(allowed(&out, custom));
    assert!(!allowed(&out, ours) && !allowed(&out, "repository_id:555:environment:production"));
    // Another repository's id, or the default context alone: refused.
    let mut other = by_id.to_vec();
    other[4] = "repository_id:555:environment:production";
    let (ran, _) = run("both", &other);
    let ran = ran.expect(2);
    assert!(ran.stderr.contains("repository_id `555`"), "{}", ran.stderr);
    let (ran, _) = run("both", &by_id[..3]);
    ran.expect(2);

    // `use_default: false` without keys: the organization's template.
    github.reset().await;
    Mock::given(method("GET"))
        .and(path(
            "/api/v3/repos/acme/platform/actions/oidc/customization/sub",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"use_default": false})),
        )
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/actions/oidc/customization/sub"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"include_claim_keys": ["repo", "context"]})),
        )
        .mount(&github)
        .await;
    let by_org = "repo:acme/platform:environment:production";
    let mut args = from_api.to_vec();
    args.extend([
        "--github-subject",
        by_org,
        "--github-readonly-subject",
        "repo:acme/platform:pull_request",
    ]);
    let (ran, out) = run("both", &args);
    let ran = ran.expect(0);
    assert!(allowed(&out, by_org) && !allowed(&out, "repo:acme/other:environment:production"));
    assert!(ran.stderr.contains("only by name"), "{}", ran.stderr);

    // GitHub refuses: an external failure, named with the fix.
    github.reset().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(serde_json::json!({"message": "Not Found"})),
        )
        .mount(&github)
        .await;
    let (ran, _) = run("both", &from_api);
    let ran = ran.expect(3);
    assert!(
        ran.stderr.contains("customization/sub") && ran.stderr.contains("404"),
        "{}",
        ran.stderr
    );
}

#[test]
fn configured_ids_pin_the_immutable_subject_without_asking_github() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(root().join("examples/org-irsa.yaml")).unwrap();
    let text = example
        .replacen(
            "github:\n",
            "github:\n  ownerId: 4242\n  oidcSubjects: immutable\n",
            1,
        )
        .replacen(
            "  - api\n",
            "  - api\n  - name: platform\n    id: 987654\n",
            1,
        );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    crate::common::cli::ri(&[
        "bootstrap",
        "-c",
        config.to_str().unwrap(),
        "--github-repository",
        "acme/platform",
        "--out-dir",
        out.to_str().unwrap(),
    ])
    .run()
    .expect(0);
    let trust: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("github-oidc-trust-policy.json")).unwrap(),
    )
    .unwrap();
    assert!(github_token_allowed(
        &trust,
        "repo:acme@4242/platform@987654:environment:production"
    ));
    assert!(!github_token_allowed(
        &trust,
        "repo:acme/platform:environment:production"
    ));
}
