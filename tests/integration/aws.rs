//! The AWS side of apply against moto (IAM, STS) and, for EKS Pod Identity
//! associations, which moto does not implement, the SDK's own mocks. moto
//! does not enforce trust policies: the trust policy is proven by
//! `runner_identity::policy` in `tests/apiserver.rs`, not here.

use crate::common::*;
use aws_sdk_eks::operation::create_pod_identity_association::CreatePodIdentityAssociationOutput;
use aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationOutput;
use aws_sdk_eks::operation::list_pod_identity_associations::ListPodIdentityAssociationsOutput;
use aws_sdk_eks::operation::update_pod_identity_association::UpdatePodIdentityAssociationOutput;
use aws_sdk_eks::types::{PodIdentityAssociation, PodIdentityAssociationSummary};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use runner_identity::apply::{self as k8s, Action};
use runner_identity::aws::{self, AwsOptions, Change, Clients};
use serde_json::Value;

/// moto's default account.
const ACCOUNT: &str = "123456789012";

fn config(owner: &str, repos: &[&str], issuer: &str) -> String {
    TestConfig::irsa(owner, repos, issuer)
        .account(ACCOUNT)
        .with(|c| {
            c.aws.managed_policy_arns = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
            c.aws.tags.insert("team".into(), "ci".into());
        })
        .yaml()
}

/// Creates the IAM OIDC provider of `issuer` (idempotent: the stack's issuer is shared).
pub(crate) async fn provider(clients: &Clients, issuer: &str) {
    let created = clients
        .iam
        .create_open_id_connect_provider()
        .url(issuer)
        .client_id_list("sts.amazonaws.com")
        .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
        .send()
        .await;
    if let Err(e) = created {
        let exists = e
            .as_service_error()
            .is_some_and(|s| s.is_entity_already_exists_exception());
        assert!(exists, "{e:?}");
    }
}

fn decode(doc: &str) -> Value {
    aws::decode_policy(doc).expect("IAM returned a policy document that is not JSON")
}

#[tokio::test]
async fn irsa_roles_are_created_left_alone_and_repaired() {
    let clients = Clients::from_sdk_config(&moto_config().await);
    let owner = unique("iam");
    let issuer = format!("https://oidc.example.com/id/{owner}");
    provider(&clients, &issuer).await;
    let text = config(&owner, &["api", "Web.Frontend"], &issuer);
    let (s, plan) = (settings(&text), plan_text(&text));

    let first = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert!(!first.failed(), "{}", first.table());
    assert!(first.roles.iter().all(|r| r.action == Action::Create));
    let role = &plan.repositories[1].iam_role;
    let got = clients
        .iam
        .get_role()
        .role_name(&role.name)
        .send()
        .await
        .unwrap();
    let live = got.role().unwrap();
    assert_eq!(live.arn(), role.arn);
    assert_eq!(
        decode(live.assume_role_policy_document().unwrap()),
        role.trust_policy
    );
    let tags: Vec<(&str, &str)> = live.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert!(
        tags.contains(&("app.kubernetes.io/managed-by", "runner-identity")),
        "{tags:?}"
    );
    assert!(
        tags.contains(&(
            "runner-identity.dev/repository",
            &*format!("{owner}/Web.Frontend")
        )),
        "{tags:?}"
    );
    assert!(tags.contains(&("team", "ci")));
    let attached = clients
        .iam
        .list_attached_role_policies()
        .role_name(&role.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attached.attached_policies()[0].policy_arn(),
        Some("arn:aws:iam::aws:policy/ReadOnlyAccess")
    );
    let inline = clients
        .iam
        .get_role_policy()
        .role_name(&role.name)
        .policy_name("runner-identity")
        .send()
        .await
        .unwrap();
    assert_eq!(
        decode(inline.policy_document()),
        role.permissions_policy.clone().unwrap()
    );

    let second = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert_eq!(second.writes, 0, "{}", second.table());
    assert!(second.roles.iter().all(|r| r.action == Action::Unchanged));
    assert!(
        second
            .table()
            .contains("AWS: no changes: 0 write requests sent")
    );

    // Drift: a hand-edited trust policy and an extra policy are put back.
    clients
        .iam
        .update_assume_role_policy()
        .role_name(&role.name)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    clients
        .iam
        .attach_role_policy()
        .role_name(&role.name)
        .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
        .send()
        .await
        .unwrap();
    let diff = aws::apply(
        &clients,
        &s,
        &plan,
        &AwsOptions {
            no_writes: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(diff.writes, 0);
    let third = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    let changes = &third.roles[1].changes;
    assert!(changes.contains(&Change::UpdateTrustPolicy), "{changes:?}");
    assert!(changes.contains(&Change::DetachPolicy {
        arn: "arn:aws:iam::aws:policy/AdministratorAccess".into()
    }));
    assert_eq!(third.writes, 2);
    let live = clients
        .iam
        .get_role()
        .role_name(&role.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        decode(live.role().unwrap().assume_role_policy_document().unwrap()),
        role.trust_policy
    );
}

#[tokio::test]
async fn missing_oidc_provider_is_reported_with_the_fix() {
    let clients = Clients::from_sdk_config(&moto_config().await);
    let owner = unique("oidc");
    let text = config(
        &owner,
        &["api"],
        &format!("https://oidc.example.com/id/{owner}-missing"),
    );
    let report = aws::apply(
        &clients,
        &settings(&text),
        &plan_text(&text),
        &AwsOptions::default(),
    )
    .await;
    assert!(report.failed());
    let problem = &report.problems[0];
    assert!(
        problem.contains("oidc-provider/oidc.example.com/id/")
            && problem.contains("eksctl utils associate-iam-oidc-provider --cluster test"),
        "{problem}"
    );
}

#[tokio::test]
async fn unmanaged_role_is_not_modified_unless_adopted() {
    let clients = Clients::from_sdk_config(&moto_config().await);
    let owner = unique("own");
    let issuer = format!("https://oidc.example.com/id/{owner}");
    provider(&clients, &issuer).await;
    let text = config(&owner, &["api"], &issuer);
    let (s, plan) = (settings(&text), plan_text(&text));
    let name = &plan.repositories[0].iam_role.name;
    let hand_made = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    clients
        .iam
        .create_role()
        .role_name(name)
        .path(&plan.repositories[0].iam_role.path)
        .assume_role_policy_document(hand_made)
        .send()
        .await
        .unwrap();

    let report = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert_eq!(report.roles[0].action, Action::Conflict);
    assert!(report.roles[0].error.as_ref().unwrap().contains("--adopt"));
    assert_eq!(report.writes, 0);
    let live = clients.iam.get_role().role_name(name).send().await.unwrap();
    assert_eq!(
        decode(live.role().unwrap().assume_role_policy_document().unwrap()),
        serde_json::from_str::<Value>(hand_made).unwrap()
    );

    let adopted = aws::apply(
        &clients,
        &s,
        &plan,
        &AwsOptions {
            adopt: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        adopted.roles[0].action,
        Action::Adopt,
        "{}",
        adopted.table()
    );
    assert!(!adopted.failed());
    let again = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert_eq!(
        (again.roles[0].action, again.writes),
        (Action::Unchanged, 0)
    );
}

#[tokio::test]
async fn prune_deletes_only_this_instances_roles() {
    let clients = Clients::from_sdk_config(&moto_config().await);
    let owner = unique("prn");
    let issuer = format!("https://oidc.example.com/id/{owner}");
    provider(&clients, &issuer).await;
    let both = config(&owner, &["keep", "gone"], &issuer);
    aws::apply(
        &clients,
        &settings(&both),
        &plan_text(&both),
        &AwsOptions::default(),
    )
    .await;
    let mut other: runner_identity::config::Config =
        serde_yaml::from_str(&config(&format!("{owner}o"), &["gone"], &issuer)).unwrap();
    other.instance = Some(format!("{owner}-other"));
    let other = serde_yaml::to_string(&other).unwrap();
    aws::apply(
        &clients,
        &settings(&other),
        &plan_text(&other),
        &AwsOptions::default(),
    )
    .await;

    let one = config(&owner, &["keep"], &issuer);
    let report = aws::apply(
        &clients,
        &settings(&one),
        &plan_text(&one),
        &AwsOptions {
            prune: true,
            ..Default::default()
        },
    )
    .await;
    assert!(!report.failed(), "{}", report.table());
    let pruned: Vec<&str> = report
        .roles
        .iter()
        .filter(|r| r.action == Action::Prune)
        .map(|r| r.role.as_str())
        .collect();
    assert_eq!(
        pruned,
        [format!("gha-test-{owner}-gone")],
        "{}",
        report.table()
    );
    let exists = |name: String| {
        let iam = clients.iam.clone();
        async move { iam.get_role().role_name(name).send().await.is_ok() }
    };
    assert!(!exists(format!("gha-test-{owner}-gone")).await);
    assert!(exists(format!("gha-test-{owner}-keep")).await);
    assert!(
        exists(format!("gha-test-{owner}o-gone")).await,
        "another instance's role survives"
    );
}

/// What this proves: the role IAM holds after `apply` (read back from moto,
/// not taken from the plan) has a trust policy that the product's evaluator
/// finds admits the real job token's claims and no other ServiceAccount's,
/// and the live job ServiceAccount (read back from the API server) names that
/// role. moto's STS enforces no trust policy: its answer only shows that the
/// web-identity call reaches STS with the live role ARN and comes back as a
/// session of that role.
#[tokio::test]
async fn the_live_role_trusts_the_live_job_token_and_nothing_else() {
    use runner_identity::policy::{self, Decision, WebIdentityRequest};
    let sdk = moto_config().await;
    let clients = Clients::from_sdk_config(&sdk);
    let owner = unique("e2e");
    let issuer = stack_issuer();
    provider(&clients, &issuer).await;
    let text = config(&owner, &["app"], &issuer);
    let (s, plan) = (settings(&text), plan_text(&text));
    let admin = admin_client().await;
    let k8s_report = k8s::apply(&admin, &plan, &k8s::Options::default())
        .await
        .unwrap();
    assert!(!k8s_report.failed());
    let aws_report = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert!(!aws_report.failed(), "{}", aws_report.table());

    // The live objects: the job ServiceAccount on the API server, the role in IAM.
    let n = &plan.repositories[0].names;
    let live_sa = kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        admin.clone(),
        &n.namespace,
    )
    .get(&n.job_service_account)
    .await
    .unwrap();
    let annotated = live_sa.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"].clone();
    let role = clients
        .iam
        .get_role()
        .role_name(&n.iam_role)
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(
        annotated,
        role.arn(),
        "the ServiceAccount names the role IAM holds"
    );
    let trust = decode(role.assume_role_policy_document().unwrap());

    // The token the EKS webhook would project: audience sts.amazonaws.com.
    let token = service_account_token(
        &admin,
        &n.namespace,
        &n.job_service_account,
        Some("sts.amazonaws.com"),
    )
    .await;
    let claims = jwt_claims(&token);
    let issuer_host = claims["iss"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://")
        .to_owned();
    let provider_arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer_host}");
    let decide = |sub: &str, aud: &str| {
        policy::evaluate_web_identity(
            &trust,
            &WebIdentityRequest {
                provider_arn: &provider_arn,
                issuer: &issuer_host,
                sub,
                aud,
            },
        )
    };
    let sub = claims["sub"].as_str().unwrap();
    let aud = claims["aud"][0].as_str().unwrap();
    assert!(matches!(decide(sub, aud), Decision::Allowed(_)), "{trust}");
    // The runner's token (same namespace), and the job's with another audience.
    let runner = jwt_claims(
        &service_account_token(&admin, &n.namespace, &n.runner_service_account, Some(aud)).await,
    );
    assert!(
        matches!(
            decide(runner["sub"].as_str().unwrap(), aud),
            Decision::NotAllowed(_)
        ),
        "the runner ServiceAccount must not assume the job's role"
    );
    assert!(matches!(
        decide(sub, "https://kubernetes.default.svc"),
        Decision::NotAllowed(_)
    ));

    // moto's STS with the live ARN and the real token.
    let assumed = aws_sdk_sts::Client::new(&sdk)
        .assume_role_with_web_identity()
        .role_arn(&annotated)
        .role_session_name("runner-identity-test")
        .web_identity_token(&token)
        .send()
        .await
        .unwrap();
    let session = assumed.assumed_role_user().unwrap().arn();
    assert!(
        session.starts_with(&format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/{}/",
            n.iam_role
        )),
        "{session}"
    );
}

#[tokio::test]
async fn pod_identity_association_is_created_then_updated_through_the_sdk() {
    let sdk = moto_config().await;
    let clients_with = |eks| Clients {
        iam: aws_sdk_iam::Client::new(&sdk),
        eks,
    };
    let owner = unique("pid");
    let text = format!(
        "github:\n  owner: {owner}\nrepositories: [app]\ncluster:\n  name: ci\n  region: us-east-1\naws:\n  accountId: \"{ACCOUNT}\"\n  mode: pod-identity\n"
    );
    let (s, plan) = (settings(&text), plan_text(&text));
    let repo = &plan.repositories[0];
    let (ns, sa) = (
        repo.names.namespace.clone(),
        repo.names.job_service_account.clone(),
    );

    // First run: no association exists, one is created for (cluster, ns, job SA) → role.
    let list_empty = mock!(aws_sdk_eks::Client::list_pod_identity_associations)
        .match_requests({
            let (ns, sa) = (ns.clone(), sa.clone());
            move |r| {
                r.cluster_name() == Some("ci")
                    && r.namespace() == Some(&ns)
                    && r.service_account() == Some(&sa)
            }
        })
        .then_output(|| ListPodIdentityAssociationsOutput::builder().build());
    let create = mock!(aws_sdk_eks::Client::create_pod_identity_association)
        .match_requests({
            let (ns, sa, arn) = (ns.clone(), sa.clone(), repo.iam_role.arn.clone());
            move |r| {
                r.namespace() == Some(&ns)
                    && r.service_account() == Some(&sa)
                    && r.role_arn() == Some(&arn)
                    && r.tags().is_some_and(|t| {
                        t.get("app.kubernetes.io/managed-by").map(String::as_str)
                            == Some("runner-identity")
                    })
            }
        })
        .then_output(|| CreatePodIdentityAssociationOutput::builder().build());
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&list_empty, &create]);
    let clients = clients_with(eks);
    let report = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert!(!report.failed(), "{}", report.table());
    assert!(
        report.roles[0]
            .changes
            .contains(&Change::CreateAssociation {
                namespace: ns.clone(),
                service_account: sa.clone()
            })
    );
    assert_eq!(create.num_calls(), 1);

    // Second run: the association points at another role and is updated.
    let list_one = mock!(aws_sdk_eks::Client::list_pod_identity_associations).then_output(|| {
        ListPodIdentityAssociationsOutput::builder()
            .associations(
                PodIdentityAssociationSummary::builder()
                    .association_id("a-1")
                    .build(),
            )
            .build()
    });
    let describe =
        mock!(aws_sdk_eks::Client::describe_pod_identity_association).then_output(|| {
            DescribePodIdentityAssociationOutput::builder()
                .association(
                    PodIdentityAssociation::builder()
                        .association_id("a-1")
                        .role_arn("arn:aws:iam::123456789012:role/other")
                        .build(),
                )
                .build()
        });
    let update = mock!(aws_sdk_eks::Client::update_pod_identity_association)
        .match_requests({
            let arn = repo.iam_role.arn.clone();
            move |r| r.association_id() == Some("a-1") && r.role_arn() == Some(&arn)
        })
        .then_output(|| UpdatePodIdentityAssociationOutput::builder().build());
    let eks = mock_client!(
        aws_sdk_eks,
        RuleMode::MatchAny,
        [&list_one, &describe, &update]
    );
    let clients = clients_with(eks);
    let report = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert!(!report.failed(), "{}", report.table());
    assert_eq!(
        report.roles[0].changes,
        vec![Change::UpdateAssociation {
            id: "a-1".into(),
            fields: vec!["roleArn".into()]
        }]
    );
    assert_eq!(
        (update.num_calls(), report.writes),
        (1, 1),
        "the role itself was unchanged"
    );

    // Session tags turned off by hand: every assume would fail the trust's
    // tag conditions; found and turned back on.
    let untagged = |arn: String| {
        mock!(aws_sdk_eks::Client::describe_pod_identity_association).then_output(move || {
            DescribePodIdentityAssociationOutput::builder()
                .association(
                    PodIdentityAssociation::builder()
                        .association_id("a-1")
                        .role_arn(arn.clone())
                        .disable_session_tags(true)
                        .build(),
                )
                .build()
        })
    };
    let describe = untagged(repo.iam_role.arn.clone());
    let update = mock!(aws_sdk_eks::Client::update_pod_identity_association)
        .match_requests(|r| {
            r.association_id() == Some("a-1") && r.disable_session_tags() == Some(false)
        })
        .then_output(|| UpdatePodIdentityAssociationOutput::builder().build());
    let eks = mock_client!(
        aws_sdk_eks,
        RuleMode::MatchAny,
        [&list_one, &describe, &update]
    );
    let clients = clients_with(eks);
    let report = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert!(!report.failed(), "{}", report.table());
    assert_eq!(
        report.roles[0].changes,
        vec![Change::UpdateAssociation {
            id: "a-1".into(),
            fields: vec!["disableSessionTags".into()]
        }]
    );
    assert_eq!(update.num_calls(), 1);

    // A target role and a session policy added by hand: the job would run
    // as another role, or with other rights; the association is replaced.
    let chained = mock!(aws_sdk_eks::Client::describe_pod_identity_association).then_output({
        let arn = repo.iam_role.arn.clone();
        move || {
            DescribePodIdentityAssociationOutput::builder()
                .association(
                    PodIdentityAssociation::builder()
                        .association_id("a-1")
                        .role_arn(arn.clone())
                        .target_role_arn("arn:aws:iam::999999999999:role/elsewhere")
                        .policy("{}")
                        .disable_session_tags(true)
                        .build(),
                )
                .build()
        }
    });
    use aws_sdk_eks::operation::delete_pod_identity_association::DeletePodIdentityAssociationOutput;
    let delete = mock!(aws_sdk_eks::Client::delete_pod_identity_association)
        .match_requests(|r| r.association_id() == Some("a-1"))
        .then_output(|| DeletePodIdentityAssociationOutput::builder().build());
    let recreate = mock!(aws_sdk_eks::Client::create_pod_identity_association)
        .match_requests(|r| {
            r.target_role_arn().is_none()
                && r.policy().is_none()
                && r.disable_session_tags() == Some(false)
        })
        .then_output(|| CreatePodIdentityAssociationOutput::builder().build());
    let eks = mock_client!(
        aws_sdk_eks,
        RuleMode::MatchAny,
        [&list_one, &chained, &delete, &recreate]
    );
    let clients = clients_with(eks);
    // `diff` shows it and changes nothing.
    let shown = aws::apply(
        &clients,
        &s,
        &plan,
        &AwsOptions {
            no_writes: true,
            ..AwsOptions::default()
        },
    )
    .await;
    assert_eq!(
        shown.roles[0].changes,
        vec![Change::ReplaceAssociation {
            id: "a-1".into(),
            fields: vec![
                "targetRoleArn".into(),
                "policy".into(),
                "disableSessionTags".into()
            ]
        }]
    );
    assert_eq!((delete.num_calls(), recreate.num_calls()), (0, 0));
    let report = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert!(!report.failed(), "{}", report.table());
    assert_eq!((delete.num_calls(), recreate.num_calls()), (1, 1));
}

/// Whether `policy` lets the role `role_arn` (account `account`) assume and
/// tag a session of its role with `external_id`, by the product's evaluator.
fn chain_allowed(policy: &Value, role_arn: &str, account: &str, external_id: Option<&str>) -> bool {
    use runner_identity::policy::{Decision, RoleRequest, evaluate_role_assume};
    let context: Vec<(&str, &str)> = external_id
        .map(|e| ("sts:ExternalId", e))
        .into_iter()
        .collect();
    matches!(
        evaluate_role_assume(
            policy,
            &RoleRequest {
                role_arn,
                account,
                context: &context
            }
        ),
        Decision::Allowed(_)
    )
}

#[tokio::test]
async fn a_planned_target_role_is_set_kept_repaired_and_its_trust_reported() {
    use runner_identity::policy::{ApiRequest, Decision, evaluate_identity};
    let sdk = moto_config().await;
    let clients_with = |eks| Clients {
        iam: aws_sdk_iam::Client::new(&sdk),
        eks,
    };
    let owner = unique("pit");
    let target = "arn:aws:iam::444455556666:role/data/reader";
    let text = format!(
        "github:\n  owner: {owner}\nrepositories:\n  - name: app\n    aws:\n      targetRoleArn: {target}\n\
         cluster:\n  name: ci\n  region: us-east-1\naws:\n  accountId: \"{ACCOUNT}\"\n  mode: pod-identity\n"
    );
    let (s, plan) = (settings(&text), plan_text(&text));
    let repo = &plan.repositories[0];
    let role_arn = repo.iam_role.arn.clone();

    // The repository's role may assume and tag the target, and no other role.
    let permissions = repo.iam_role.permissions_policy.clone().expect("a policy");
    let may = |action: &str, resource: &str| {
        matches!(
            evaluate_identity(
                &permissions,
                &ApiRequest {
                    action,
                    resource,
                    context: &[]
                }
            ),
            Decision::Allowed(_)
        )
    };
    assert!(may("sts:AssumeRole", target) && may("sts:TagSession", target));
    assert!(!may(
        "sts:AssumeRole",
        "arn:aws:iam::444455556666:role/data/admin"
    ));
    assert!(!may("sts:AssumeRole", "arn:aws:iam::444455556666:role/*"));

    let list_one = mock!(aws_sdk_eks::Client::list_pod_identity_associations).then_output(|| {
        ListPodIdentityAssociationsOutput::builder()
            .associations(
                PodIdentityAssociationSummary::builder()
                    .association_id("a-1")
                    .build(),
            )
            .build()
    });
    let described = |target: Option<&'static str>| {
        let arn = role_arn.clone();
        mock!(aws_sdk_eks::Client::describe_pod_identity_association).then_output(move || {
            DescribePodIdentityAssociationOutput::builder()
                .association(
                    PodIdentityAssociation::builder()
                        .association_id("a-1")
                        .role_arn(arn.clone())
                        .set_target_role_arn(target.map(str::to_owned))
                        .external_id("ext-9")
                        .build(),
                )
                .build()
        })
    };
    let update = mock!(aws_sdk_eks::Client::update_pod_identity_association)
        .match_requests(move |r| {
            r.association_id() == Some("a-1")
                && r.target_role_arn() == Some(target)
                && r.disable_session_tags() == Some(false)
        })
        .then_output(|| UpdatePodIdentityAssociationOutput::builder().build());

    // First apply: no association; it is created with the target.
    let list_empty = mock!(aws_sdk_eks::Client::list_pod_identity_associations)
        .then_output(|| ListPodIdentityAssociationsOutput::builder().build());
    let create = mock!(aws_sdk_eks::Client::create_pod_identity_association)
        .match_requests(move |r| r.target_role_arn() == Some(target) && r.policy().is_none())
        .then_output(|| CreatePodIdentityAssociationOutput::builder().build());
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&list_empty, &create]);
    let report = aws::apply(&clients_with(eks), &s, &plan, &AwsOptions::default()).await;
    assert!(!report.failed(), "{}", report.table());
    assert_eq!(create.num_calls(), 1);
    // Replaced (a session policy added by hand): a new association, a new
    // externalId, and the report says the target's trust must follow.
    let with_policy = {
        let arn = role_arn.clone();
        mock!(aws_sdk_eks::Client::describe_pod_identity_association).then_output(move || {
            DescribePodIdentityAssociationOutput::builder()
                .association(
                    PodIdentityAssociation::builder()
                        .association_id("a-1")
                        .role_arn(arn.clone())
                        .target_role_arn(target)
                        .policy("{}")
                        .external_id("ext-new")
                        .build(),
                )
                .build()
        })
    };
    use aws_sdk_eks::operation::delete_pod_identity_association::DeletePodIdentityAssociationOutput;
    let delete = mock!(aws_sdk_eks::Client::delete_pod_identity_association)
        .then_output(|| DeletePodIdentityAssociationOutput::builder().build());
    let eks = mock_client!(
        aws_sdk_eks,
        RuleMode::MatchAny,
        [&list_one, &with_policy, &delete, &create]
    );
    let report = aws::apply(&clients_with(eks), &s, &plan, &AwsOptions::default()).await;
    let table = report.table();
    assert!(table.contains("so is its externalId"), "{table}");
    assert!(
        table.contains(&format!("must allow {role_arn} ")),
        "{table}"
    );

    // The association chains nowhere, or to another role: set in place.
    for found in [None, Some("arn:aws:iam::999999999999:role/elsewhere")] {
        let describe = described(found);
        let eks = mock_client!(
            aws_sdk_eks,
            RuleMode::MatchAny,
            [&list_one, &describe, &update]
        );
        let before = update.num_calls();
        let report = aws::apply(&clients_with(eks), &s, &plan, &AwsOptions::default()).await;
        assert!(!report.failed(), "{}", report.table());
        assert_eq!(
            report.roles[0].changes,
            vec![Change::UpdateAssociation {
                id: "a-1".into(),
                fields: vec!["targetRoleArn".into()]
            }],
            "{found:?}"
        );
        assert_eq!(update.num_calls(), before + 1);
    }

    // As planned: nothing to change, and the trust the target's owner
    // writes, with the association's externalId.
    let describe = described(Some(target));
    let eks = mock_client!(
        aws_sdk_eks,
        RuleMode::MatchAny,
        [&list_one, &describe, &update]
    );
    let report = aws::apply(&clients_with(eks), &s, &plan, &AwsOptions::default()).await;
    assert!(report.roles[0].changes.is_empty(), "{}", report.table());
    let trust = report.roles[0]
        .target_trust
        .clone()
        .expect("the target's trust");
    assert_eq!(
        (trust.target_role_arn.as_str(), trust.external_id.as_str()),
        (target, "ext-9")
    );
    assert!(
        report.table().contains("sts:ExternalId ext-9"),
        "{}",
        report.table()
    );
    let policy = &trust.trust_policy;
    assert!(chain_allowed(policy, &role_arn, ACCOUNT, Some("ext-9")));
    // The confused deputy: without, or with another association's externalId.
    assert!(!chain_allowed(policy, &role_arn, ACCOUNT, None));
    assert!(!chain_allowed(
        policy,
        &role_arn,
        ACCOUNT,
        Some("ext-other")
    ));
    // Another role of the same account, or the same name elsewhere.
    let other = role_arn.replace(&repo.iam_role.name, "someone-else");
    assert!(!chain_allowed(policy, &other, ACCOUNT, Some("ext-9")));
    let elsewhere = role_arn.replace(ACCOUNT, "210987654321");
    assert!(!chain_allowed(
        policy,
        &elsewhere,
        "210987654321",
        Some("ext-9")
    ));
}

#[tokio::test]
async fn prune_deletes_the_pod_identity_association_before_the_role() {
    use aws_sdk_eks::operation::delete_pod_identity_association::DeletePodIdentityAssociationOutput;
    let sdk = moto_config().await;
    let owner = unique("pidp");
    let text = |repos: &str| {
        format!(
            "github:\n  owner: {owner}\nrepositories: [{repos}]\ncluster:\n  name: ci\n  region: us-east-1\naws:\n  accountId: \"{ACCOUNT}\"\n  mode: pod-identity\n"
        )
    };
    let (both, kept) = (text("app, gone"), text("app"));
    let plan_both = plan_text(&both);
    let gone = plan_both.repositories[1].clone();
    assert!(gone.names.repository.ends_with("/gone"));
    // Both roles exist in IAM (moto); their associations are the EKS mocks'.
    let no_association = mock!(aws_sdk_eks::Client::list_pod_identity_associations)
        .then_output(|| ListPodIdentityAssociationsOutput::builder().build());
    let create = mock!(aws_sdk_eks::Client::create_pod_identity_association)
        .then_output(|| CreatePodIdentityAssociationOutput::builder().build());
    let clients = Clients {
        iam: aws_sdk_iam::Client::new(&sdk),
        eks: mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&no_association, &create]),
    };
    let report = aws::apply(
        &clients,
        &settings(&both),
        &plan_both,
        &AwsOptions::default(),
    )
    .await;
    assert!(!report.failed(), "{}", report.table());

    // `gone` leaves the configuration. The cluster holds its association
    // (tagged by this instance) and `app`'s, which stays: it already points
    // at `app`'s role.
    let gone_tags = gone.iam_role.tags.clone();
    let app_role = plan_text(&kept).repositories[0].iam_role.arn.clone();
    let planned_list = mock!(aws_sdk_eks::Client::list_pod_identity_associations)
        .match_requests(|r| r.namespace().is_some())
        .then_output(|| {
            ListPodIdentityAssociationsOutput::builder()
                .associations(
                    PodIdentityAssociationSummary::builder()
                        .association_id("a-app")
                        .build(),
                )
                .build()
        });
    let cluster_list = mock!(aws_sdk_eks::Client::list_pod_identity_associations)
        .match_requests(|r| r.namespace().is_none() && r.cluster_name() == Some("ci"))
        .then_output(|| {
            ListPodIdentityAssociationsOutput::builder()
                .associations(
                    PodIdentityAssociationSummary::builder()
                        .association_id("a-gone")
                        .build(),
                )
                .associations(
                    PodIdentityAssociationSummary::builder()
                        .association_id("a-app")
                        .build(),
                )
                .build()
        });
    let describe_gone = mock!(aws_sdk_eks::Client::describe_pod_identity_association)
        .match_requests(|r| r.association_id() == Some("a-gone"))
        .then_output({
            let (arn, tags) = (gone.iam_role.arn.clone(), gone_tags.clone());
            move || {
                DescribePodIdentityAssociationOutput::builder()
                    .association(
                        PodIdentityAssociation::builder()
                            .association_id("a-gone")
                            .role_arn(&arn)
                            .set_tags(Some(tags.clone().into_iter().collect()))
                            .build(),
                    )
                    .build()
            }
        });
    let describe_app = mock!(aws_sdk_eks::Client::describe_pod_identity_association)
        .match_requests(|r| r.association_id() == Some("a-app"))
        .sequence()
        .output(move || {
            DescribePodIdentityAssociationOutput::builder()
                .association(
                    PodIdentityAssociation::builder()
                        .association_id("a-app")
                        .role_arn(&app_role)
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let delete = mock!(aws_sdk_eks::Client::delete_pod_identity_association)
        .match_requests(|r| r.association_id() == Some("a-gone") && r.cluster_name() == Some("ci"))
        .then_output(|| DeletePodIdentityAssociationOutput::builder().build());
    let clients = Clients {
        iam: aws_sdk_iam::Client::new(&sdk),
        eks: mock_client!(
            aws_sdk_eks,
            RuleMode::MatchAny,
            [
                &planned_list,
                &cluster_list,
                &describe_gone,
                &describe_app,
                &delete
            ]
        ),
    };
    let options = AwsOptions {
        prune: true,
        ..Default::default()
    };
    let report = aws::apply(&clients, &settings(&kept), &plan_text(&kept), &options).await;
    assert!(!report.failed(), "{}", report.table());
    let pruned = report
        .roles
        .iter()
        .find(|r| r.role == gone.iam_role.name)
        .unwrap();
    assert_eq!(pruned.action, Action::Prune);
    assert_eq!(
        pruned.changes,
        vec![
            Change::DeleteAssociation {
                id: "a-gone".into()
            },
            Change::DeleteRole
        ],
        "the association goes first"
    );
    assert_eq!(delete.num_calls(), 1, "only the pruned role's association");
    assert_eq!(
        report
            .roles
            .iter()
            .find(|r| r.role != gone.iam_role.name)
            .unwrap()
            .changes,
        Vec::<Change>::new(),
        "`app` is unchanged"
    );
    let role = clients
        .iam
        .get_role()
        .role_name(&gone.iam_role.name)
        .send()
        .await;
    assert!(role.is_err(), "the role is deleted");
}

#[tokio::test]
async fn prune_skips_a_role_deleted_between_its_listing_and_its_tags() {
    use aws_sdk_iam::operation::list_role_tags::ListRoleTagsError;
    use aws_sdk_iam::operation::list_roles::ListRolesOutput;
    use aws_sdk_iam::types::{Role, error::NoSuchEntityException};
    // Another instance's prune deleted `gone` after ListRoles: ListRoleTags
    // says NoSuchEntity. Before, the whole prune failed with that error.
    let text = config("acme", &["app"], "https://oidc.example.com/id/race");
    let (s, plan) = (settings(&text), plan_text(&text));
    let list = mock!(aws_sdk_iam::Client::list_roles).then_output(|| {
        ListRolesOutput::builder()
            .roles(
                Role::builder()
                    .role_name("gone")
                    .arn("arn:aws:iam::123456789012:role/gone")
                    .path("/")
                    .role_id("AROAGONE")
                    .create_date(aws_sdk_iam::primitives::DateTime::from_secs(0))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    });
    let tags = mock!(aws_sdk_iam::Client::list_role_tags).then_error(|| {
        ListRoleTagsError::NoSuchEntityException(
            NoSuchEntityException::builder()
                .message("Role gone not found")
                .build(),
        )
    });
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&list, &tags]);
    let clients = Clients {
        iam,
        eks: aws_sdk_eks::Client::new(&moto_config().await),
    };
    let mut report = aws::AwsReport::default();
    let options = AwsOptions {
        prune: true,
        ..Default::default()
    };
    aws::prune(&clients, &s, &plan, &options, &mut report).await;
    assert_eq!(report.problems, Vec::<String>::new());
    assert!(report.roles.is_empty(), "{}", report.table());
    assert_eq!(tags.num_calls(), 1);
}

#[tokio::test]
async fn a_role_of_the_planned_name_under_another_path_is_named_not_written() {
    // An installation from before the instance's own path (roles under `/`).
    let clients = Clients::from_sdk_config(&moto_config().await);
    let owner = unique("path");
    let issuer = format!("https://oidc.example.com/id/{owner}");
    provider(&clients, &issuer).await;
    let text = config(&owner, &["api"], &issuer);
    let (s, plan) = (settings(&text), plan_text(&text));
    let role = &plan.repositories[0].iam_role;
    assert_ne!(role.path, "/");
    let trust = serde_json::to_string(&role.trust_policy).unwrap();
    clients
        .iam
        .create_role()
        .role_name(&role.name)
        .assume_role_policy_document(&trust)
        .send()
        .await
        .unwrap();
    let report = aws::apply(&clients, &s, &plan, &AwsOptions::default()).await;
    assert_eq!(report.roles[0].action, Action::Conflict);
    let error = report.roles[0].error.clone().unwrap();
    assert!(error.contains("under the path /"), "{error}");
    assert!(error.contains(&role.path), "{error}");
    assert!(error.contains("delete-role"), "{error}");
    assert_eq!(report.writes, 0);
}
