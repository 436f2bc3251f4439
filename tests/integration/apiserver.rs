//! Tier 2: the planned objects against the real local kube-apiserver (RBAC,
//! TokenRequest, SelfSubjectAccessReview). These fail, never skip, when the
//! stack is not running.

use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Node, Pod, PodSpec, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use runner_identity::config::Hooks;
use runner_identity::plan::{
    HOOK_TEMPLATE_KEY, HookRight, METADATA_POLICY, RepoPlan, check_hook_template, egress_allowed,
    hook_rights,
};
use runner_identity::policy::{self, Decision, WebIdentityRequest};

async fn can(
    client: &Client,
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    sub: &str,
    verb: &str,
) -> bool {
    runner_identity::verify::runner::can(client, namespace, group, resource, sub, verb)
        .await
        .unwrap()
}

async fn every_right(
    client: &Client,
    namespace: &str,
    rights: &[HookRight],
) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for r in rights {
        for verb in r.verbs {
            let allowed = can(
                client,
                Some(namespace),
                r.group,
                r.resource,
                r.subresource,
                verb,
            )
            .await;
            out.push((format!("{verb} {}", r.resource_path()), allowed));
        }
    }
    out
}

async fn applied(text: &str) -> (Client, Vec<RepoPlan>) {
    let admin = admin_client().await;
    let plan = plan_text(text);
    apply_plan(&admin, &plan, false).await;
    (admin, plan.repositories)
}

#[tokio::test]
async fn examples_apply_cleanly_and_dry_run_persists_nothing() {
    let admin = admin_client().await;
    for example in ["examples/org-irsa.yaml", "examples/pod-identity.yaml"] {
        let text = std::fs::read_to_string(root().join(example)).unwrap();
        // Give every run its own owner so the dry run really meets no object.
        let owner = unique("ex");
        let mut config: runner_identity::config::Config = serde_yaml::from_str(&text).unwrap();
        config.github.owner = owner.clone();
        config.kubernetes.namespace = "{owner}-{repo}".into();
        let text = serde_yaml::to_string(&config).unwrap();
        let plan = plan_text(&text);
        let objects: usize = plan.repositories.iter().map(|r| r.objects().len()).sum();

        let dry = apply_plan(&admin, &plan, true).await;
        assert_eq!(dry.len(), objects, "{example}: every object is reported");
        for a in &dry {
            // In a namespace that does not exist yet only the Namespace can be
            // dry-run by the server; the rest is reported as not validated.
            assert_eq!(
                a.server_validated,
                a.kind == runner_identity::plan::Kind::Namespace,
                "{example}: {a:?}"
            );
        }
        let first = &plan.repositories[0].names.namespace;
        let ns_api: Api<Namespace> = Api::all(admin.clone());
        assert!(
            ns_api.get_opt(first).await.unwrap().is_none(),
            "{example}: dry run created {first}"
        );

        let done = apply_plan(&admin, &plan, false).await;
        assert_eq!(done.len(), objects, "{example}");
        for repo in &plan.repositories {
            let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &repo.names.namespace);
            let cm = cms.get(&repo.names.config_map).await.unwrap();
            assert_eq!(
                cm.labels()["app.kubernetes.io/managed-by"],
                "runner-identity"
            );
            assert_eq!(
                cm.annotations()["runner-identity.dev/repository"],
                repo.names.repository
            );
            // The fields the server keeps are owned by the one field manager.
            let managers: Vec<_> = cm
                .managed_fields()
                .iter()
                .filter_map(|m| m.manager.clone())
                .collect();
            assert_eq!(managers, vec!["runner-identity".to_owned()], "{example}");
        }
        // Once the namespaces exist, a dry run validates every object on the server.
        let dry = apply_plan(&admin, &plan, true).await;
        assert!(dry.iter().all(|a| a.server_validated), "{example}: {dry:?}");
        // A second apply of the same plan is accepted (idempotent).
        apply_plan(&admin, &plan, false).await;
    }
}

#[tokio::test]
async fn hook_template_makes_a_pod_the_server_accepts_as_the_job_service_account() {
    let owner = unique("pod");
    let (admin, repos) = applied(&irsa_config(
        &owner,
        &["app"],
        "https://oidc.example.com/id/X",
    ))
    .await;
    let repo = &repos[0];
    let text = &repo
        .scale_set
        .as_ref()
        .unwrap()
        .config_map
        .data
        .as_ref()
        .unwrap()[HOOK_TEMPLATE_KEY];
    let template = check_hook_template(text, &repo.names).unwrap();
    let mut spec: PodSpec = template.spec.unwrap();
    spec.containers = vec![Container {
        name: "job".into(),
        image: Some("busybox".into()),
        ..Default::default()
    }];
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("job".into()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    };
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &repo.names.namespace);
    // The ServiceAccount admission plugin rejects a pod whose SA does not exist.
    let created = pods
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod,
        )
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some(repo.names.job_service_account.as_str())
    );
    assert_eq!(spec.security_context.unwrap().fs_group, Some(1001));
    assert_eq!(
        spec.automount_service_account_token, None,
        "the SA, not the pod, turns automount off"
    );
}

#[tokio::test]
async fn runner_token_has_exactly_the_hook_rights_in_its_own_namespace() {
    let owner = unique("rbac");
    let (admin, repos) = applied(&irsa_config(
        &owner,
        &["one", "Two.Repo"],
        "https://oidc.example.com/id/X",
    ))
    .await;
    let (mine, other) = (&repos[0].names, &repos[1].names);
    let token =
        service_account_token(&admin, &mine.namespace, &mine.runner_service_account, None).await;
    let runner = token_client(&token).await;

    let rights = hook_rights(Hooks::Kubernetes);
    for (right, allowed) in every_right(&runner, &mine.namespace, &rights).await {
        assert!(allowed, "runner lacks `{right}` in its own namespace");
    }
    for (right, allowed) in every_right(&runner, &other.namespace, &rights).await {
        assert!(
            !allowed,
            "runner has `{right}` in another repository's namespace"
        );
    }
    // Real requests, not only reviews.
    let own_secrets: Api<Secret> = Api::namespaced(runner.clone(), &mine.namespace);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("probe".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    own_secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert!(
        own_secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|s| s.name_any() == "probe")
    );
    own_secrets
        .delete("probe", &DeleteParams::default())
        .await
        .unwrap();

    let foreign_secrets: Api<Secret> = Api::namespaced(runner.clone(), &other.namespace);
    assert_forbidden(
        foreign_secrets
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list secrets in another namespace",
    );
    let foreign_pods: Api<Pod> = Api::namespaced(runner.clone(), &other.namespace);
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "x".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_forbidden(
        foreign_pods
            .create(&PostParams::default(), &pod)
            .await
            .map(|_| ()),
        "create pods in another namespace",
    );
    assert_forbidden(
        Api::<Namespace>::all(runner.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list namespaces",
    );
    assert_forbidden(
        Api::<Node>::all(runner.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list nodes",
    );
    // No escalation: it can neither create Roles nor bind them.
    let roles: Api<Role> = Api::namespaced(runner.clone(), &mine.namespace);
    let role = Role {
        metadata: kube::api::ObjectMeta {
            name: Some("escalate".into()),
            ..Default::default()
        },
        rules: None,
    };
    assert_forbidden(
        roles
            .create(&PostParams::default(), &role)
            .await
            .map(|_| ()),
        "create roles",
    );
    for verb in ["escalate", "bind"] {
        assert!(
            !can(
                &runner,
                Some(&mine.namespace),
                "rbac.authorization.k8s.io",
                "roles",
                "",
                verb
            )
            .await,
            "{verb}"
        );
    }
    assert!(!can(&runner, None, "", "serviceaccounts", "", "impersonate").await);
}

#[tokio::test]
async fn novolume_runner_gets_no_jobs_rights() {
    let owner = unique("novol");
    let text = irsa_config(&owner, &["svc"], "https://oidc.example.com/id/X")
        + "  hooks: kubernetes-novolume\n";
    let (admin, repos) = applied(&text).await;
    let n = &repos[0].names;
    let runner = token_client(
        &service_account_token(&admin, &n.namespace, &n.runner_service_account, None).await,
    )
    .await;
    for (right, allowed) in every_right(
        &runner,
        &n.namespace,
        &hook_rights(Hooks::KubernetesNovolume),
    )
    .await
    {
        assert!(allowed, "{right}");
    }
    assert!(!can(&runner, Some(&n.namespace), "batch", "jobs", "", "create").await);
}

#[tokio::test]
async fn job_token_has_no_kubernetes_rights() {
    let owner = unique("job");
    let (admin, repos) = applied(&irsa_config(
        &owner,
        &["app"],
        "https://oidc.example.com/id/X",
    ))
    .await;
    let n = &repos[0].names;
    let token = service_account_token(
        &admin,
        &n.namespace,
        &n.job_service_account,
        Some("sts.amazonaws.com"),
    )
    .await;
    let job = token_client(&token).await;
    for (right, allowed) in every_right(&job, &n.namespace, &hook_rights(Hooks::Kubernetes)).await {
        assert!(!allowed, "the job ServiceAccount has `{right}`");
    }
    let pods: Api<Pod> = Api::namespaced(job, &n.namespace);
    assert_forbidden(
        pods.list(&ListParams::default()).await.map(|_| ()),
        "job SA lists pods",
    );
}

#[tokio::test]
async fn job_token_subject_is_what_the_trust_policy_pins() {
    let owner = unique("sub");
    let issuer = stack_issuer();
    let issuer_host = issuer.trim_start_matches("https://");
    let (admin, repos) = applied(&irsa_config(&owner, &["app", "other"], &issuer)).await;
    let (repo, other) = (&repos[0], &repos[1]);
    let n = &repo.names;
    let token = service_account_token(
        &admin,
        &n.namespace,
        &n.job_service_account,
        Some("sts.amazonaws.com"),
    )
    .await;
    let claims = jwt_claims(&token);
    assert_eq!(
        claims["iss"],
        issuer.as_str(),
        "the stack's issuer is the one the plan was made for"
    );
    assert_eq!(claims["aud"][0], "sts.amazonaws.com");

    let sub = claims["sub"].as_str().unwrap();
    let pinned = &repo.iam_role.trust_policy["Statement"][0]["Condition"]["StringEquals"]
        [format!("{issuer_host}:sub")];
    assert_eq!(
        pinned, sub,
        "trust policy StringEquals sub == the token's sub"
    );

    let provider_arn = format!("arn:aws:iam::111122223333:oidc-provider/{issuer_host}");
    let decide = |sub: &str| {
        let request = WebIdentityRequest {
            provider_arn: &provider_arn,
            issuer: issuer_host,
            sub,
            aud: "sts.amazonaws.com",
        };
        policy::evaluate_web_identity(&repo.iam_role.trust_policy, &request)
    };
    assert_eq!(decide(sub), Decision::Allowed(0));

    // Another repository's job token, and this repository's runner token, are refused.
    let other_token = service_account_token(
        &admin,
        &other.names.namespace,
        &other.names.job_service_account,
        Some("sts.amazonaws.com"),
    )
    .await;
    let other_sub = jwt_claims(&other_token)["sub"].as_str().unwrap().to_owned();
    assert!(matches!(decide(&other_sub), Decision::NotAllowed(_)));
    let runner_token = service_account_token(
        &admin,
        &n.namespace,
        &n.runner_service_account,
        Some("sts.amazonaws.com"),
    )
    .await;
    let runner_sub = jwt_claims(&runner_token)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(matches!(decide(&runner_sub), Decision::NotAllowed(_)));
}

fn assert_forbidden(result: Result<(), kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn the_egress_policy_and_pod_security_labels_are_stored_as_planned() {
    let owner = unique("iso");
    let (admin, repos) = applied(&irsa_config(&owner, &["app"], "https://o.example/id/1")).await;
    let n = &repos[0].names;
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &n.namespace);
    let stored = policies.get(METADATA_POLICY).await.unwrap();
    // What the server keeps is what a CNI enforces: IMDS denied, the Pod
    // Identity agent and everything else allowed.
    // Literal addresses (AWS's), not the product's constants: a wrong
    // constant would otherwise pass.
    for imds in ["169.254.169.254", "fd00:ec2::254"] {
        assert!(!egress_allowed(&stored, imds.parse().unwrap()), "{imds}");
    }
    for agent in ["169.254.170.23", "fd00:ec2::23", "10.0.0.1", "52.94.0.1"] {
        assert!(egress_allowed(&stored, agent.parse().unwrap()), "{agent}");
    }
    // Its rules, as a CNI reads them: everything except the two IMDS hosts.
    let rules = serde_json::to_value(stored.spec.as_ref().unwrap().egress.clone()).unwrap();
    let text = rules.to_string();
    assert!(
        text.contains("169.254.169.254/32") && text.contains("fd00:ec2::254/128"),
        "{text}"
    );
    let spec = stored.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Egress"]);
    assert_eq!(spec.pod_selector.unwrap_or_default(), Default::default());
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let labels = namespaces.get(&n.namespace).await.unwrap().labels().clone();
    for mode in ["enforce", "warn", "audit"] {
        assert_eq!(
            labels
                .get(&format!("pod-security.kubernetes.io/{mode}"))
                .map(String::as_str),
            Some("baseline"),
            "{labels:?}"
        );
    }

    // Opting out plans neither.
    let off = TestConfig::irsa(&unique("isx"), &["app"], "https://o.example/id/1").with(|c| {
        c.kubernetes.block_instance_metadata = false;
        c.kubernetes.pod_security = None;
    });
    let plan = off.plan();
    assert!(plan.repositories[0].network_policy.is_none());
    let ns_labels = plan.repositories[0].namespace.as_ref().unwrap().labels();
    assert!(
        !ns_labels
            .keys()
            .any(|k| k.starts_with("pod-security.kubernetes.io/"))
    );
}
