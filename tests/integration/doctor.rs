//! `doctor` against the real local stack: ARC's CRDs, AutoscalingRunnerSets
//! as the real chart renders them (`tests/data/arc/rendered`), the objects
//! `apply` makes, IAM in moto. A healthy setup has no error-level finding;
//! each broken one is named with its fix.

use std::io::Write;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use runner_identity::apply::{self, Options as ApplyOptions};
use runner_identity::aws::{self, AwsOptions, Clients};
use runner_identity::doctor::{self, Finding, Options, Severity, autoscaling_runner_set};
use runner_identity::plan::Plan;
use serde_json::{Value, json};

use crate::common::*;

const ACCOUNT: &str = "123456789012";

/// One repository applied (Kubernetes and IAM) and its scale set installed
/// as the real chart 0.14.2 renders runner-identity's values.
struct Setup {
    namespace: String,
    config: TestConfig,
    plan: Plan,
    clients: Clients,
}

impl Setup {
    async fn new(prefix: &str) -> Setup {
        let owner = unique(prefix);
        let config = TestConfig::irsa(&owner, &["api"], &stack_issuer()).account(ACCOUNT);
        let (settings, plan) = (config.settings(), config.plan());
        let admin = admin_client().await;
        crate::arc::install_arc_crds(&admin).await;
        let report = apply::apply(&admin, &plan, &ApplyOptions::default())
            .await
            .unwrap();
        assert!(!report.failed(), "{}", report.table());
        let clients = Clients::from_sdk_config(&moto_config().await);
        crate::aws::provider(&clients, &stack_issuer()).await;
        let iam = aws::apply(&clients, &settings, &plan, &AwsOptions::default()).await;
        assert!(!iam.failed(), "{}", iam.table());
        let namespace = plan.repositories[0].names.namespace.clone();
        let setup = Setup {
            namespace,
            config,
            plan,
            clients,
        };
        setup.install_scale_set(|_| {}).await;
        setup
    }

    /// Creates the rendered AutoscalingRunnerSet in this namespace, changed by `change`.
    async fn install_scale_set(&self, change: impl FnOnce(&mut Value)) {
        let mut set = crate::arc::yaml_documents("rendered/0.14.2-kubernetes.yaml")
            .into_iter()
            .find(|d| d["kind"] == "AutoscalingRunnerSet")
            .unwrap();
        set["metadata"]["namespace"] = json!(self.namespace);
        let names = &self.plan.repositories[0].names;
        assert_eq!(
            set["spec"]["template"]["spec"]["serviceAccountName"],
            json!(names.runner_service_account)
        );
        change(&mut set);
        let api: Api<DynamicObject> = Api::namespaced_with(
            admin_client().await,
            &self.namespace,
            &autoscaling_runner_set(),
        );
        let name = set["metadata"]["name"].as_str().unwrap().to_owned();
        api.patch(
            &name,
            &PatchParams::apply("doctor-test").force(),
            &Patch::Apply(&set),
        )
        .await
        .unwrap();
    }

    async fn diagnose(&self) -> Vec<Finding> {
        let options = Options {
            settings: None,
            namespace: Some(self.namespace.clone()),
            scale_set: None,
            cluster: None,
            aws: Some(self.clients.clone()),
            controller: None,
        };
        doctor::diagnose(&admin_client().await, &options)
            .await
            .findings
    }

    /// The job ServiceAccount without its IRSA annotation.
    async fn remove_role_annotation(&self) {
        let accounts: Api<ServiceAccount> = Api::namespaced(admin_client().await, &self.namespace);
        let none = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": null}}});
        accounts
            .patch(
                &self.names().job_service_account,
                &PatchParams::default(),
                &Patch::Merge(&none),
            )
            .await
            .unwrap();
    }

    fn names(&self) -> &runner_identity::names::RepoNames {
        &self.plan.repositories[0].names
    }
}

/// DescribeCluster of `prod`, whose issuer is the stack's.
fn cluster_prod() -> aws_smithy_mocks::Rule {
    use aws_sdk_eks::types::{Cluster, Identity, Oidc};
    aws_smithy_mocks::mock!(aws_sdk_eks::Client::describe_cluster).then_output(|| {
        aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput::builder()
            .cluster(
                Cluster::builder()
                    .name("prod")
                    .identity(
                        Identity::builder()
                            .oidc(Oidc::builder().issuer(stack_issuer()).build())
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

/// The finding of `check` about `object`, with `severity`.
fn find<'a>(findings: &'a [Finding], severity: Severity, check: &str, object: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.severity == severity && f.check == check && f.object == object)
        .unwrap_or_else(|| panic!("no {severity:?} {check} on {object}: {findings:#?}"))
}

#[tokio::test]
async fn a_setup_made_by_apply_has_no_error() {
    let s = Setup::new("dok").await;
    let findings = s.diagnose().await;
    assert!(errors(&findings).is_empty(), "{findings:#?}");
    assert!(
        !findings.iter().any(|f| f.severity == Severity::Warning),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn a_scale_set_the_controller_deletes_is_named_with_the_helm_fix() {
    let s = Setup::new("dsk").await;
    let arc = unique("arc");
    let diagnose = |arc: String| {
        let s = &s;
        async move {
            let options = Options {
                settings: None,
                namespace: Some(s.namespace.clone()),
                scale_set: None,
                cluster: None,
                aws: Some(s.clients.clone()),
                controller: Some(runner_identity::config::ControllerDeployment {
                    namespace: arc,
                    deployment: "arc-gha-rs-controller".into(),
                }),
            };
            doctor::diagnose(&admin_client().await, &options)
                .await
                .findings
        }
    };
    // The scale set is the real chart's 0.14.2 rendering; the controller 0.15.0.
    crate::controller::controller(&arc, "0.15.0").await;
    let findings = diagnose(arc.clone()).await;
    let skew: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.check == "controller-version")
        .collect();
    assert_eq!(skew.len(), 1, "{findings:#?}");
    assert_eq!(skew[0].severity, Severity::Error);
    assert!(
        skew[0]
            .evidence
            .contains("the controller deletes this scale set"),
        "{skew:?}"
    );
    assert!(skew[0].evidence.contains("0.14.2"), "{skew:?}");
    assert!(
        skew[0].fix.starts_with("helm upgrade ") && skew[0].fix.contains("--version 0.15.0"),
        "{skew:?}"
    );
    // A controller of the same minor version keeps it.
    crate::controller::controller(&arc, "0.14.0").await;
    let findings = diagnose(arc.clone()).await;
    assert!(
        !findings.iter().any(|f| f.check == "controller-version"),
        "{findings:#?}"
    );
    // No controller there: said, nothing compared.
    let findings = diagnose("no-such-arc".into()).await;
    let info: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.check == "controller-version")
        .collect();
    assert_eq!(info.len(), 1, "{findings:#?}");
    assert_eq!(info[0].severity, Severity::Info);
}

#[tokio::test]
async fn a_hook_template_without_the_job_account_or_none_at_all_is_named() {
    let s = Setup::new("dht").await;
    let n = s.names().clone();
    let admin = admin_client().await;
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &s.namespace);
    let broken =
        json!({"data": {"hook-template.yaml": "spec:\n  securityContext:\n    fsGroup: 1001\n"}});
    maps.patch(
        &n.config_map,
        &PatchParams::default(),
        &Patch::Merge(&broken),
    )
    .await
    .unwrap();
    let findings = s.diagnose().await;
    let f = find(
        &findings,
        Severity::Error,
        "hook-template",
        &format!("ConfigMap/{}/{}", s.namespace, n.config_map),
    );
    assert!(
        f.evidence.contains("no spec.serviceAccountName") && f.fix.contains("serviceAccountName"),
        "{f:?}"
    );
    // The namespace's `default` then is the job account: it does not exist
    // here (no controller), and is named as such, not as the template's.
    let missing = find(
        &findings,
        Severity::Error,
        "job-identity",
        &format!("ServiceAccount/{}/default", s.namespace),
    );
    assert!(
        missing.evidence.contains("`default` ServiceAccount")
            && !missing.evidence.contains("the hook template names"),
        "{missing:?}"
    );

    // No template variable at all.
    s.install_scale_set(|set| {
        let env = set["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        env.retain(|e| e["name"] != "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE");
    })
    .await;
    let findings = s.diagnose().await;
    let f = find(
        &findings,
        Severity::Error,
        "hook-template",
        &format!("AutoscalingRunnerSet/{}/api", s.namespace),
    );
    assert!(f.evidence.contains("AccessDenied"), "{f:?}");
}

#[tokio::test]
async fn a_runner_role_without_pods_exec_is_named_with_the_rule() {
    let s = Setup::new("dre").await;
    let n = s.names().clone();
    assert_eq!(
        drop_role_rules(&s.namespace, &n.role, rule_for("pods/exec")).await,
        1
    );
    let findings = s.diagnose().await;
    let f = find(
        &findings,
        Severity::Error,
        "runner-rights",
        &format!(
            "ServiceAccount/{}/{}",
            s.namespace, n.runner_service_account
        ),
    );
    assert!(f.evidence.contains("create pods/exec"), "{f:?}");
    assert!(f.fix.contains("resources: [\"pods/exec\"]"), "{f:?}");
}

#[tokio::test]
async fn job_accounts_without_a_role_or_with_a_missing_one_are_named() {
    let s = Setup::new("dja").await;
    let n = s.names().clone();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin_client().await, &s.namespace);
    let job = format!("ServiceAccount/{}/{}", s.namespace, n.job_service_account);
    let annotate =
        |value: Value| json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": value}}});
    accounts
        .patch(
            &n.job_service_account,
            &PatchParams::default(),
            &Patch::Merge(&annotate(Value::Null)),
        )
        .await
        .unwrap();
    let findings = s.diagnose().await;
    let f = find(&findings, Severity::Error, "job-identity", &job);
    assert!(
        f.evidence.contains("no eks.amazonaws.com/role-arn"),
        "{f:?}"
    );
    assert!(f.fix.contains("create-pod-identity-association"), "{f:?}");

    let missing = format!("arn:aws:iam::{ACCOUNT}:role/gha-no-such-role");
    accounts
        .patch(
            &n.job_service_account,
            &PatchParams::default(),
            &Patch::Merge(&annotate(json!(missing))),
        )
        .await
        .unwrap();
    let findings = s.diagnose().await;
    let f = find(
        &findings,
        Severity::Error,
        "trust-policy",
        "Role/gha-no-such-role",
    );
    assert!(f.evidence.contains("does not exist"), "{f:?}");
}

#[tokio::test]
async fn each_way_a_trust_policy_goes_wrong_is_explained() {
    let s = Setup::new("dtp").await;
    let n = s.names().clone();
    let role_name = s.plan.repositories[0].iam_role.name.clone();
    let at = format!("Role/{role_name}");
    let issuer = stack_issuer().trim_start_matches("https://").to_owned();
    let sub = format!(
        "system:serviceaccount:{}:{}",
        s.namespace, n.job_service_account
    );
    let provider = |account: &str| format!("arn:aws:iam::{account}:oidc-provider/{issuer}");
    let set_trust = |doc: Value| {
        let clients = s.clients.clone();
        let role = role_name.clone();
        async move {
            clients
                .iam
                .update_assume_role_policy()
                .role_name(role)
                .policy_document(json!({"Version": "2012-10-17", "Statement": [doc]}).to_string())
                .send()
                .await
                .unwrap();
        }
    };
    let statement = |federated: String, condition: Value| {
        json!({"Effect": "Allow", "Principal": {"Federated": federated},
               "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition})
    };

    // A wildcard subject: admits the job, and more.
    set_trust(statement(provider(ACCOUNT), json!({
        "StringLike": {format!("{issuer}:sub"): format!("system:serviceaccount:{}:*", s.namespace)},
        "StringEquals": {format!("{issuer}:aud"): "sts.amazonaws.com"}
    }))).await;
    let findings = s.diagnose().await;
    assert!(
        !findings
            .iter()
            .any(|f| f.check == "trust-policy" && f.severity == Severity::Error),
        "{findings:#?}"
    );
    let f = find(&findings, Severity::Warning, "trust-policy", &at);
    assert!(
        f.evidence.contains("admits more than") && f.fix.contains(&sub),
        "{f:?}"
    );

    // No audience condition.
    set_trust(statement(
        provider(ACCOUNT),
        json!({"StringEquals": {format!("{issuer}:sub"): sub}}),
    ))
    .await;
    let findings = s.diagnose().await;
    let f = find(&findings, Severity::Warning, "trust-policy", &at);
    assert!(f.evidence.contains("no `:aud` condition"), "{f:?}");

    // The issuer key written with a trailing slash: never matches.
    set_trust(statement(provider(ACCOUNT), json!({
        "StringEquals": {format!("{issuer}/:sub"): sub, format!("{issuer}/:aud"): "sts.amazonaws.com"}
    }))).await;
    let findings = s.diagnose().await;
    let f = find(&findings, Severity::Error, "trust-policy", &at);
    assert!(
        f.evidence.contains("trailing slash") && f.evidence.contains("AccessDenied"),
        "{f:?}"
    );
    assert!(f.fix.contains("update-assume-role-policy"), "{f:?}");

    // Another account's provider.
    set_trust(statement(provider("999999999999"), json!({
        "StringEquals": {format!("{issuer}:sub"): sub, format!("{issuer}:aud"): "sts.amazonaws.com"}
    }))).await;
    let findings = s.diagnose().await;
    let f = find(&findings, Severity::Error, "trust-policy", &at);
    assert!(f.evidence.contains("another account or partition"), "{f:?}");
}

#[tokio::test]
async fn exposure_and_helm_values_the_chart_ignores_are_named() {
    let s = Setup::new("dex").await;
    let admin = admin_client().await;
    // The namespace's `default` ServiceAccount with a role.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &s.namespace);
    let default = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            annotations: Some(
                [(
                    "eks.amazonaws.com/role-arn".to_owned(),
                    format!("arn:aws:iam::{ACCOUNT}:role/broad"),
                )]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &default)
        .await
        .unwrap();
    // A Helm release (chart 0.14.2) whose values carry the pre-0.11 key.
    let release = json!({
        "name": "api",
        "chart": {"metadata": {"name": "gha-runner-scale-set", "version": "0.14.2"}},
        "config": {"containerMode": {"type": "kubernetes",
            "kubernetesModeServiceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x"}}}}
    });
    helm_release(&s.namespace, "api", 3, &release).await;
    let findings = s.diagnose().await;
    let f = find(
        &findings,
        Severity::Warning,
        "exposure",
        &format!("ServiceAccount/{}/default", s.namespace),
    );
    assert!(f.fix.contains("eks.amazonaws.com/role-arn-"), "{f:?}");
    let f = find(
        &findings,
        Severity::Error,
        "helm-values",
        &format!("Secret/{}/sh.helm.release.v1.api.v3", s.namespace),
    );
    assert!(
        f.evidence
            .contains("resourceMeta.kubernetesModeServiceAccount"),
        "{f:?}"
    );

    // kubernetes-novolume on chart 0.12.1, in a newer release revision.
    let release = json!({
        "name": "api",
        "chart": {"metadata": {"name": "gha-runner-scale-set", "version": "0.12.1"}},
        "config": {"containerMode": {"type": "kubernetes-novolume"}}
    });
    helm_release(&s.namespace, "api", 4, &release).await;
    let findings = s.diagnose().await;
    let f = find(
        &findings,
        Severity::Error,
        "helm-values",
        &format!("Secret/{}/sh.helm.release.v1.api.v4", s.namespace),
    );
    assert!(f.evidence.contains("without container hooks"), "{f:?}");
}

/// A Helm 3 release Secret: `release` is base64 of gzip of the JSON.
async fn helm_release(namespace: &str, name: &str, version: u32, release: &Value) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(release.to_string().as_bytes()).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let labels = [
        ("owner", "helm"),
        ("name", name),
        ("status", "deployed"),
        ("version", &version.to_string()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("sh.helm.release.v1.{name}.v{version}")),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some("helm.sh/release.v1".into()),
        string_data: Some([("release".to_owned(), encoded)].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin_client().await, namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_oidc_provider_and_another_clusters_issuer_are_named() {
    use runner_identity::doctor::identity::{cluster_issuer, oidc_provider};
    let clients = Clients::from_sdk_config(&moto_config().await);
    // An EKS cluster in moto: DescribeCluster gives its issuer, for which no
    // IAM OIDC provider exists.
    let cluster = unique("prod");
    clients
        .eks
        .create_cluster()
        .name(&cluster)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = clients
        .eks
        .describe_cluster()
        .name(&cluster)
        .send()
        .await
        .unwrap();
    let issuer = described
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .unwrap()
        .trim_start_matches("https://")
        .to_owned();
    // moto may hand out the same issuer again (a re-run on the same stack):
    // start without its provider.
    let arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}");
    let _ = clients
        .iam
        .delete_open_id_connect_provider()
        .open_id_connect_provider_arn(&arn)
        .send()
        .await;
    let options = Options {
        settings: None,
        namespace: None,
        scale_set: None,
        cluster: Some(cluster.clone()),
        aws: Some(clients.clone()),
        controller: None,
    };
    let findings = oidc_provider(&clients, &issuer, &options).await;
    let f = find(
        &findings,
        Severity::Error,
        "oidc-provider",
        &format!("OpenIDConnectProvider/{issuer}"),
    );
    assert!(
        f.fix.contains(&format!(
            "eksctl utils associate-iam-oidc-provider --cluster {cluster}"
        )),
        "{f:?}"
    );
    assert!(f.evidence.contains("InvalidIdentityToken"), "{f:?}");
    // With the provider, nothing is found.
    crate::aws::provider(&clients, &format!("https://{issuer}")).await;
    assert!(oidc_provider(&clients, &issuer, &options).await.is_empty());

    // The kubeconfig's cluster issues tokens with another issuer than EKS reports.
    let stack = stack_issuer().trim_start_matches("https://").to_owned();
    let findings = cluster_issuer(&clients, &cluster, [stack].iter(), &options).await;
    let f = find(
        &findings,
        Severity::Error,
        "cluster-identity",
        &format!("Cluster/{cluster}"),
    );
    assert!(f.evidence.contains(&issuer), "{f:?}");
    assert!(
        cluster_issuer(&clients, &cluster, [issuer.clone()].iter(), &options)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_command_prints_json_findings_and_exits_1_on_an_error() {
    let s = Setup::new("dcl").await;
    let n = s.names().clone();
    s.remove_role_annotation().await;
    let o = crate::common::cli::command()
        .args([
            "doctor",
            "--skip-aws",
            "-o",
            "json",
            "--namespace",
            &s.namespace,
        ])
        .env("KUBECONFIG", kubeconfig_path())
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["scale_sets"], 1);
    let findings = v["findings"].as_array().unwrap();
    let job = findings
        .iter()
        .find(|f| f["check"] == "job-identity" && f["severity"] == "error")
        .unwrap_or_else(|| panic!("{v:#}"));
    for field in ["severity", "check", "object", "evidence", "fix"] {
        assert!(
            job[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {job}"
        );
    }
    assert_eq!(
        job["object"],
        format!("ServiceAccount/{}/{}", s.namespace, n.job_service_account)
    );
    // No token in any output.
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("eyJ"),
        "a JWT was printed"
    );
}

#[tokio::test]
async fn pod_identity_associations_and_their_trust_are_checked() {
    use aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationOutput;
    use aws_sdk_eks::operation::list_pod_identity_associations::ListPodIdentityAssociationsOutput;
    use aws_sdk_eks::types::{PodIdentityAssociation, PodIdentityAssociationSummary};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    let s = Setup::new("dpi").await;
    let n = s.names().clone();
    // A job ServiceAccount of the Pod Identity kind: no IRSA annotation.
    s.remove_role_annotation().await;
    // Its role in moto: one trusting the Pod Identity agent fully, one not.
    let sdk = moto_config().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let role = |name: &str, actions: Value| {
        let iam = iam.clone();
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": actions}]})
        .to_string();
        let name = name.to_owned();
        async move {
            iam.create_role()
                .role_name(&name)
                .assume_role_policy_document(doc)
                .send()
                .await
                .unwrap();
            format!("arn:aws:iam::{ACCOUNT}:role/{name}")
        }
    };
    let good = role(
        &unique("pi-good"),
        json!(["sts:AssumeRole", "sts:TagSession"]),
    )
    .await;
    let bad = role(&unique("pi-bad"), json!("sts:AssumeRole")).await;
    let job = format!("ServiceAccount/{}/{}", s.namespace, n.job_service_account);
    let run = |associations: Vec<&'static str>, role_arn: String| {
        let namespace = s.namespace.clone();
        let scope = s.namespace.clone();
        let sa = n.job_service_account.clone();
        let iam = iam.clone();
        async move {
            let list = mock!(aws_sdk_eks::Client::list_pod_identity_associations)
                .match_requests(move |r| {
                    r.cluster_name() == Some("prod")
                        && r.namespace() == Some(namespace.as_str())
                        && r.service_account() == Some(sa.as_str())
                })
                .then_output(move || {
                    let mut out = ListPodIdentityAssociationsOutput::builder();
                    for id in &associations {
                        out = out.associations(
                            PodIdentityAssociationSummary::builder()
                                .association_id(*id)
                                .build(),
                        );
                    }
                    out.build()
                });
            let describe = mock!(aws_sdk_eks::Client::describe_pod_identity_association)
                .then_output(move || {
                    DescribePodIdentityAssociationOutput::builder()
                        .association(
                            PodIdentityAssociation::builder()
                                .association_id("a-1")
                                .role_arn(role_arn.clone())
                                .build(),
                        )
                        .build()
                });
            // The cluster's issuer is the one its tokens carry: no finding.
            let cluster = cluster_prod();
            let eks = mock_client!(
                aws_sdk_eks,
                RuleMode::MatchAny,
                [&list, &describe, &cluster]
            );
            let options = Options {
                settings: None,
                namespace: Some(scope),
                scale_set: None,
                cluster: Some("prod".into()),
                aws: Some(Clients { iam, eks }),
                controller: None,
            };
            let report = doctor::diagnose(&admin_client().await, &options).await;
            (report.findings, list.num_calls())
        }
    };
    // No association: named, with both ways to give the job a role.
    let (findings, calls) = run(vec![], good.clone()).await;
    assert_eq!(calls, 1);
    let f = find(&findings, Severity::Error, "job-identity", &job);
    assert!(
        f.evidence
            .contains("no EKS Pod Identity association in prod"),
        "{f:?}"
    );
    // An association whose role trusts the agent: no error.
    let (findings, _) = run(vec!["a-1"], good).await;
    assert!(errors(&findings).is_empty(), "{findings:#?}");
    // Without sts:TagSession the agent cannot assume it.
    let (findings, _) = run(vec!["a-1"], bad.clone()).await;
    let name = bad.rsplit('/').next().unwrap();
    let f = find(
        &findings,
        Severity::Error,
        "trust-policy",
        &format!("Role/{name}"),
    );
    assert!(f.evidence.contains("sts:TagSession"), "{f:?}");
}

#[tokio::test]
async fn with_a_configuration_its_planned_scale_sets_are_diagnosed() {
    let s = Setup::new("dcf").await;
    // The configuration plans a second repository whose scale set is not installed.
    let settings = s
        .config
        .clone()
        .with(|c| {
            c.repositories
                .push(runner_identity::config::RepositoryEntry::Name("web".into()))
        })
        .settings();
    let options = Options {
        settings: Some(&settings),
        namespace: None,
        scale_set: None,
        cluster: None,
        aws: Some(s.clients.clone()),
        controller: None,
    };
    let report = doctor::diagnose(&admin_client().await, &options).await;
    assert_eq!(report.scale_sets, 1, "{:#?}", report.findings);
    let web = runner_identity::names::RepoNames::new(&settings, &settings.repositories[1]);
    let f = find(
        &report.findings,
        Severity::Warning,
        "scale-sets",
        &format!("AutoscalingRunnerSet/{}/{}", web.namespace, web.scale_set),
    );
    assert!(f.fix.contains("helm upgrade --install"), "{f:?}");
    // Nothing about the other scale sets on the cluster.
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.object.contains(&s.namespace)
                || f.object.contains(&web.namespace)
                || f.check == "controller-version"
                || !f.object.contains('/')
                || f.object.starts_with("OpenIDConnectProvider/")
                || f.object.starts_with("Role/")),
        "{:#?}",
        report.findings
    );
    assert!(
        errors(&report.findings).is_empty(),
        "{:#?}",
        report.findings
    );
}

#[tokio::test]
async fn a_runner_that_can_start_pods_in_another_repositorys_namespace_is_named() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let a = Setup::new("reach-a").await;
    let b = Setup::new("reach-b").await;
    assert!(
        errors(&a.diagnose().await)
            .iter()
            .all(|f| f.check != "runner-reach")
    );
    // By hand, in B's namespace: A's runner may create pods there.
    let admin = admin_client().await;
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "helper", "namespace": b.namespace},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}],
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &b.namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "helper", "namespace": b.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "helper"},
        "subjects": [{"kind": "ServiceAccount", "name": a.names().runner_service_account, "namespace": a.namespace}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &b.namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let findings = a.diagnose().await;
    let reach = find(
        &findings,
        Severity::Error,
        "runner-reach",
        &format!(
            "ServiceAccount/{}/{}",
            a.namespace,
            a.names().runner_service_account
        ),
    );
    assert!(reach.evidence.contains("create pods"), "{reach:?}");
    assert!(
        reach
            .evidence
            .contains(&format!("RoleBinding/{}/helper", b.namespace)),
        "{reach:?}"
    );
    // B's own runner is not affected.
    assert!(b.diagnose().await.iter().all(|f| f.check != "runner-reach"));
}

#[tokio::test]
async fn an_apply_identity_that_may_escalate_in_every_namespace_is_named() {
    use runner_identity::doctor::grants::Rbac;
    let home = unique("ri-old");
    create_namespace(&home).await;
    let name = unique("ri-apply");
    let plan = TestConfig::irsa(&unique("old"), &["app"], &stack_issuer()).plan();
    // Today's bootstrap: nothing to report.
    crate::bootstrap::grant(
        &name,
        &home,
        &runner_identity::bootstrap::apply_grants_of(&plan, false),
    )
    .await;
    let ours = |findings: Vec<Finding>| -> Vec<Finding> {
        findings
            .into_iter()
            .filter(|f| f.object == format!("ServiceAccount/{home}/{name}"))
            .collect()
    };
    let rbac = Rbac::load(&admin_client().await).await.unwrap();
    assert!(ours(rbac.apply_identity_findings()).is_empty());
    // The bootstrap of earlier releases: escalate and bind on the planned
    // Roles, bound cluster-wide.
    let mut old = runner_identity::bootstrap::apply_grants_of(&plan, false);
    old.cluster.append(&mut old.namespaced);
    old.cluster.push(
        serde_json::from_value(json!({
            "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
            "verbs": ["escalate", "bind"],
            "resourceNames": [plan.repositories[0].scale_set.as_ref().unwrap().role.metadata.name],
        }))
        .unwrap(),
    );
    old.bound_in.clear();
    old.held.clear();
    crate::bootstrap::grant(&name, &home, &old).await;
    let rbac = Rbac::load(&admin_client().await).await.unwrap();
    let found = ours(rbac.apply_identity_findings());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert!(
        found[0]
            .evidence
            .contains("escalate Roles in every namespace"),
        "{found:?}"
    );
    assert!(
        found[0]
            .evidence
            .contains(&format!("ClusterRoleBinding/{name}")),
        "{found:?}"
    );
}

#[tokio::test]
async fn each_link_of_a_chain_to_a_target_role_is_checked() {
    use aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationOutput;
    use aws_sdk_eks::operation::list_pod_identity_associations::ListPodIdentityAssociationsOutput;
    use aws_sdk_eks::types::{PodIdentityAssociation, PodIdentityAssociationSummary};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    let s = Setup::new("dtr").await;
    s.remove_role_annotation().await;
    let iam = aws_sdk_iam::Client::new(&moto_config().await);
    let create = |name: String, trust: Value| {
        let iam = iam.clone();
        async move {
            iam.create_role()
                .role_name(&name)
                .assume_role_policy_document(trust.to_string())
                .send()
                .await
                .unwrap();
            format!("arn:aws:iam::{ACCOUNT}:role/{name}")
        }
    };
    let agent = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    let first_name = unique("chain-first");
    let first = create(first_name.clone(), agent).await;
    // The target trusts the first role, but without the externalId.
    let target_name = unique("chain-target");
    let loose = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": first}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    let target = create(target_name.clone(), loose).await;
    let diagnose_with = |target: String, settings: Option<runner_identity::config::Settings>| {
        let (first, namespace, iam) = (first.clone(), s.namespace.clone(), iam.clone());
        async move {
            let list =
                mock!(aws_sdk_eks::Client::list_pod_identity_associations).then_output(|| {
                    ListPodIdentityAssociationsOutput::builder()
                        .associations(
                            PodIdentityAssociationSummary::builder()
                                .association_id("a-1")
                                .build(),
                        )
                        .build()
                });
            let describe = mock!(aws_sdk_eks::Client::describe_pod_identity_association)
                .then_output(move || {
                    DescribePodIdentityAssociationOutput::builder()
                        .association(
                            PodIdentityAssociation::builder()
                                .association_id("a-1")
                                .cluster_name("prod")
                                .role_arn(first.clone())
                                .target_role_arn(target.clone())
                                .external_id("ext-7")
                                .build(),
                        )
                        .build()
                });
            // The cluster's issuer is the one its tokens carry: no finding.
            let cluster = cluster_prod();
            let eks = mock_client!(
                aws_sdk_eks,
                RuleMode::MatchAny,
                [&list, &describe, &cluster]
            );
            let options = Options {
                settings: settings.as_ref(),
                namespace: Some(namespace),
                scale_set: None,
                cluster: Some("prod".into()),
                aws: Some(Clients { iam, eks }),
                controller: None,
            };
            doctor::diagnose(&admin_client().await, &options)
                .await
                .findings
        }
    };
    let diagnose = |target: String| diagnose_with(target, None);

    // Both links broken: the first role may not assume the target, and the
    // target's trust lacks the externalId (the confused deputy).
    let findings = diagnose(target.clone()).await;
    let f = find(
        &findings,
        Severity::Error,
        "target-role-permission",
        &format!("Role/{first_name}"),
    );
    assert!(
        f.evidence.contains("sts:AssumeRole and sts:TagSession"),
        "{f:?}"
    );
    let f = find(
        &findings,
        Severity::Warning,
        "target-role-external-id",
        &format!("Role/{target_name}"),
    );
    assert!(f.evidence.contains("without sts:ExternalId ext-7"), "{f:?}");
    assert!(f.fix.contains("\"sts:ExternalId\":\"ext-7\""), "{f:?}");
    // A trust for another association's externalId admits nothing.
    iam.update_assume_role_policy()
        .role_name(&target_name)
        .policy_document(
            runner_identity::plan::target_trust_policy(&first, "ext-other").to_string(),
        )
        .send()
        .await
        .unwrap();
    let findings = diagnose(target.clone()).await;
    let f = find(
        &findings,
        Severity::Error,
        "target-role-trust",
        &format!("Role/{target_name}"),
    );
    assert!(f.evidence.contains("with sts:ExternalId ext-7"), "{f:?}");

    // Fixed as the findings say: no error left.
    iam.put_role_policy()
        .role_name(&first_name)
        .policy_name("chain")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": target}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    iam.update_assume_role_policy()
        .role_name(&target_name)
        .policy_document(runner_identity::plan::target_trust_policy(&first, "ext-7").to_string())
        .send()
        .await
        .unwrap();
    let findings = diagnose(target.clone()).await;
    let chain: Vec<_> = findings
        .iter()
        .filter(|f| f.check.starts_with("target-role"))
        .collect();
    assert!(chain.is_empty(), "{chain:#?}");

    // The externalId is no secret: a trust that admits the whole account
    // with it admits every role there.
    iam.update_assume_role_policy()
        .role_name(&target_name)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"sts:ExternalId": "ext-7"}}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let findings = diagnose(target.clone()).await;
    let f = find(
        &findings,
        Severity::Warning,
        "target-role-trust-wide",
        &format!("Role/{target_name}"),
    );
    assert!(f.evidence.contains("runner-identity-doctor-probe"), "{f:?}");

    // With a configuration that plans another target (or none), the live
    // target is only named, never its trust advised.
    let settings = s.config.clone().settings();
    let findings = diagnose_with(target.clone(), Some(settings)).await;
    assert!(
        !findings.iter().any(|f| f.check.starts_with("target-role")),
        "{findings:#?}"
    );
    let f = find(
        &findings,
        Severity::Warning,
        "association-target-role",
        &format!("Role/{first_name}"),
    );
    assert!(f.evidence.contains("plans none"), "{f:?}");

    // A target in another account cannot be read: its required trust is said.
    let elsewhere = "arn:aws:iam::444455556666:role/data/reader".to_owned();
    let findings = diagnose(elsewhere).await;
    let f = find(
        &findings,
        Severity::Info,
        "target-role-trust",
        "Role/reader",
    );
    assert!(
        f.evidence.contains("444455556666") && f.evidence.contains(&first),
        "{f:?}"
    );
    let f = find(
        &findings,
        Severity::Error,
        "target-role-permission",
        &format!("Role/{first_name}"),
    );
    assert!(f.evidence.contains("data/reader"), "{f:?}");
}

/// A grouped scale set applied by the product, its AutoscalingRunnerSet as
/// the real chart 0.14.2 renders the group's values
/// (`rendered/0.14.2-group.yaml`), and doctor run as the identity
/// `bootstrap` prints for it. Healthy: every member's identity checked, no
/// error. Then the attacks doctor is the control for: a workflow pod as
/// another member's identity than its runner's job (ARC's
/// `jobRepositoryName`), a pod as a member's identity that no runner
/// started, one for a runner ARC does not know; and a scale set outside
/// the group's runner group.
#[tokio::test]
async fn doctor_compares_each_group_job_with_arcs_record_of_it() {
    use k8s_openapi::api::core::v1::Pod;
    let owner = unique("dg");
    let text = irsa_config(&owner, &["api", "web", "docs"], &stack_issuer())
        .replace(
            &format!("  owner: {owner}\n"),
            &format!("  owner: {owner}\n  ownerId: 900\n"),
        )
        .replace("  - api\n", "  - {name: api, id: 901}\n")
        .replace("  - web\n", "  - {name: web, id: 902}\n")
        .replace("111122223333", ACCOUNT);
    // Its own controller namespace: the doctor identity reads the controller there.
    let controller = unique("arc-ctl");
    create_namespace(&controller).await;
    let text = format!(
        "{text}  chart:\n    controller: {{namespace: {controller}}}\n\
         groups:\n  - name: platform\n    repositories: [api, web]\n"
    );
    let settings = settings(&text);
    let mut plan = runner_identity::plan::plan(
        &settings,
        &runner_identity::templates::Templates::load(None).unwrap(),
    )
    .unwrap();
    // The local v1.20 server serves no ValidatingAdmissionPolicy.
    plan.repositories[0].admission_policy.clear();
    let admin = admin_client().await;
    crate::arc::install_arc_crds(&admin).await;
    apply_plan(&admin, &plan, false).await;
    let clients = Clients::from_sdk_config(&moto_config().await);
    crate::aws::provider(&clients, &stack_issuer()).await;
    let iam = aws::apply(&clients, &settings, &plan, &AwsOptions::default()).await;
    assert!(!iam.failed(), "{}", iam.table());
    let (api, web) = (&plan.repositories[0].names, &plan.repositories[1].names);
    let ns = api.namespace.clone();

    let mut set = crate::arc::yaml_documents("rendered/0.14.2-group.yaml")
        .into_iter()
        .find(|d| d["kind"] == "AutoscalingRunnerSet")
        .unwrap();
    set["metadata"]["namespace"] = json!(ns);
    assert_eq!(set["metadata"]["name"], json!(api.scale_set));
    assert_eq!(
        set["spec"]["template"]["spec"]["serviceAccountName"],
        json!(api.runner_service_account)
    );
    let sets: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &autoscaling_runner_set());
    let install = |set: Value| {
        let sets = sets.clone();
        async move {
            sets.patch(
                "platform",
                &PatchParams::apply("doctor-test").force(),
                &Patch::Apply(&set),
            )
            .await
            .unwrap();
        }
    };
    install(set.clone()).await;

    // Doctor as the identity bootstrap prints for this configuration.
    let home = unique("ri-doc");
    create_namespace(&home).await;
    let account = unique("ri-doctor");
    let mut grants = runner_identity::bootstrap::apply_grants(&settings, &plan, true);
    grants.extend(runner_identity::bootstrap::doctor_grants(&plan));
    crate::bootstrap::grant(&account, &home, &grants).await;
    let doctor_client = crate::bootstrap::as_account(&account, &home).await;
    let diagnose = || {
        let (client, clients, settings) = (doctor_client.clone(), clients.clone(), &settings);
        let ns = ns.clone();
        async move {
            let options = Options {
                settings: Some(settings),
                namespace: Some(ns),
                scale_set: None,
                cluster: None,
                aws: Some(clients),
                controller: None,
            };
            doctor::diagnose(&client, &options).await.findings
        }
    };
    let findings = diagnose().await;
    assert!(errors(&findings).is_empty(), "{findings:#?}");
    assert!(
        !findings
            .iter()
            .any(|f| f.check.starts_with("group") || f.check == "hook-template"),
        "{findings:#?}"
    );
    // Both members' identity chains were followed: a member whose job
    // ServiceAccount loses its role is named.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    let none = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": null}}});
    accounts
        .patch(
            &web.job_service_account,
            &PatchParams::default(),
            &Patch::Merge(&none),
        )
        .await
        .unwrap();
    let findings = diagnose().await;
    assert!(
        errors(&findings)
            .iter()
            .any(|f| f.object.contains(&web.job_service_account)),
        "{findings:#?}"
    );
    let back =
        json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": web.iam_role_arn}}});
    accounts
        .patch(
            &web.job_service_account,
            &PatchParams::default(),
            &Patch::Merge(&back),
        )
        .await
        .unwrap();

    // ARC's record: runner `platform-r1` runs a job of api.
    let runners: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &ns,
        &runner_identity::doctor::group::ephemeral_runner(),
    );
    let runner = json!({
        "apiVersion": "actions.github.com/v1alpha1", "kind": "EphemeralRunner",
        "metadata": {"name": "platform-r1", "namespace": ns},
        "spec": {"githubConfigUrl": format!("https://github.com/{owner}"),
                 "githubConfigSecret": "github-config", "runnerScaleSetId": 1}
    });
    runners
        .create(
            &PostParams::default(),
            &serde_json::from_value(runner).unwrap(),
        )
        .await
        .unwrap();
    let status = json!({"status": {"jobRepositoryName": api.repository, "workflowRunId": 7}});
    runners
        .patch_status(
            "platform-r1",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pod = |name: &str, account: &str, runner: Option<&str>| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": runner.map(|r| json!({"runner-pod": r})).unwrap_or(json!({}))},
            "spec": {"serviceAccountName": account, "automountServiceAccountToken": false,
                     "containers": [{"name": "job", "image": "busybox"}]}
        }))
        .unwrap()
    };
    // api's job as api's identity: as it should be.
    pods.create(
        &PostParams::default(),
        &pod(
            "platform-r1-workflow",
            &api.job_service_account,
            Some("platform-r1"),
        ),
    )
    .await
    .unwrap();
    assert!(errors(&diagnose().await).is_empty());

    // The attacks, each named: web's identity in api's job; a member's
    // identity without a runner; a runner ARC does not know.
    for (name, account, runner, says) in [
        (
            "platform-r1-step-1",
            &web.job_service_account,
            Some("platform-r1"),
            "runs a job of",
        ),
        (
            "stray",
            &web.job_service_account,
            None,
            "no runner's workflow or step pod",
        ),
        (
            "evil",
            &api.job_service_account,
            Some("platform-r1"),
            "not named as the hooks name",
        ),
        (
            "platform-r9-workflow",
            &api.job_service_account,
            Some("platform-r9"),
            "no EphemeralRunner",
        ),
    ] {
        pods.create(&PostParams::default(), &pod(name, account, runner))
            .await
            .unwrap();
        let findings = diagnose().await;
        let hit: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .filter(|f| f.check == "group-jobs" && f.object.ends_with(&format!("/{name}")))
            .collect();
        assert_eq!(hit.len(), 1, "{name}: {findings:#?}");
        assert!(
            hit[0].evidence.contains(says),
            "{name}: {}",
            hit[0].evidence
        );
        assert!(hit[0].fix.contains("kubectl delete pod"));
        pods.delete(name, &Default::default()).await.unwrap();
    }

    // A v0.7.0 container step: the hooks label its Job, not the Job's pod.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(admin.clone(), &ns);
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "platform-r1-step-abcdefgh", "labels": {"runner-pod": "platform-r1"}},
        "spec": {"template": {"spec": {"serviceAccountName": api.job_service_account,
                 "restartPolicy": "Never", "containers": [{"name": "job", "image": "busybox"}]}}}
    }))
    .unwrap();
    let job = jobs.create(&PostParams::default(), &job).await.unwrap();
    let mut step = pod(
        "platform-r1-step-abcdefgh-x7k2p",
        &api.job_service_account,
        None,
    );
    step.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "platform-r1-step-abcdefgh".into(),
            uid: job.metadata.uid.clone().unwrap(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    pods.create(&PostParams::default(), &step).await.unwrap();
    let findings = diagnose().await;
    assert!(errors(&findings).is_empty(), "{findings:#?}");
    // A pod as neither the runner nor a member (a removed member's identity
    // left behind): said.
    let left: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "gha-job-removed"}})).unwrap();
    accounts
        .create(&PostParams::default(), &left)
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("leftover", "gha-job-removed", None),
    )
    .await
    .unwrap();
    let findings = diagnose().await;
    assert!(
        findings.iter().any(|f| f.severity == Severity::Warning
            && f.object.ends_with("/leftover")
            && f.evidence
                .contains("neither the group's runner nor a member's")),
        "{findings:#?}"
    );

    // Outside the group's runner group: every repository of the organisation
    // may send jobs here.
    let mut elsewhere = set.clone();
    elsewhere["spec"]["runnerGroup"] = json!("Default");
    install(elsewhere).await;
    let findings = diagnose().await;
    assert!(
        errors(&findings)
            .iter()
            .any(|f| f.check == "group" && f.evidence.contains("spec.runnerGroup is `Default`")),
        "{findings:#?}"
    );
}
