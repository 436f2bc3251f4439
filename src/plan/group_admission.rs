//! The guard of a group's namespace (docs/security.md: grouped scale sets):
//! a member's job that obtains the runner's token must not start pods as
//! another member. Two ValidatingAdmissionPolicies (Kubernetes ≥ 1.30) judge
//! the requests of the group's runner ServiceAccount:
//!
//! - the guard (no params): a pod-bound token; pods, Jobs, Secrets, exec,
//!   attach and port-forward only on the runner pod's own objects (named as
//!   runner-container-hooks name them, as in a shared namespace); pods and
//!   Jobs only as one of the group's job ServiceAccounts, labelled
//!   `runner-pod=<its own pod>`, without host access or privilege; and
//!   ConfigMaps only as its own claim: `<runner pod>-claim`, immutable,
//!   labelled for the group, naming a member's job ServiceAccount;
//! - the claims (params: the group's claims, every one evaluated; none:
//!   denied): a labelled pod or Job only as the ServiceAccount its own
//!   runner pod's claim names.
//!
//! `job-started`, which runs before any step of the job, creates the claim.
//! The runner may create ConfigMaps but not change or delete them (RBAC, and
//! the guard), so once a job's code runs, its runner's claim is fixed
//! (`immutable` freezes the claim's data; its labels and owner are kept by
//! the missing rights).

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ParamKind, ParamRef,
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicySpec,
    Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use super::admission::{self, Rule, cel_string, rule};

/// The label of a group's claims: the group's name.
pub const CLAIM_LABEL: &str = "runner-identity.dev/claim";
/// The label runner-container-hooks put on the pods and Jobs they start.
pub const RUNNER_POD_LABEL: &str = "runner-pod";

/// The runner's right to create its claim (and, by RBAC, any ConfigMap:
/// the guard admits its own claim alone).
pub fn claim_rule() -> k8s_openapi::api::rbac::v1::PolicyRule {
    k8s_openapi::api::rbac::v1::PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        verbs: vec!["create".into()],
        ..Default::default()
    }
}

/// The name of a runner pod's claim.
pub fn claim_name(runner_pod: &str) -> String {
    format!("{runner_pod}-claim")
}

/// What the policies of one group's namespace are made of.
pub struct GroupGuard<'a> {
    pub namespace: &'a str,
    pub group: &'a str,
    /// `system:serviceaccount:<namespace>:<runner>`.
    pub runner_user: String,
    /// The members' job ServiceAccounts.
    pub job_accounts: Vec<String>,
}

fn cel_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| cel_string(i)).collect();
    format!("[{}]", quoted.join(", "))
}

impl GroupGuard<'_> {
    /// The guard's variables: the shared namespace's, with the runner as
    /// the one user judged (its job account stands for the group's).
    pub fn variables(&self) -> Vec<(String, String)> {
        let runners = BTreeMap::from([(self.runner_user.clone(), format!("({})", self.group))]);
        admission::variables(&runners)
    }

    /// The guard's validations.
    pub fn rules(&self) -> Vec<Rule> {
        let shared = admission::rules();
        let mut out = Vec::with_capacity(shared.len() + 3);
        let runner_only = |condition: &str| format!("variables.jobAccount == '' || ({condition})");
        let pod_write =
            |condition: &str| runner_only(&format!("!variables.podWrite || ({condition})"));
        for (i, rule) in shared.into_iter().enumerate() {
            match i {
                // Its own objects, except its claim (below).
                0 => out.push(Rule {
                    expression: format!(
                        "request.resource.resource == 'configmaps' || ({})",
                        rule.expression
                    ),
                    message: rule.message.replace("shared namespace", "group"),
                }),
                // One job ServiceAccount per runner: a group's are below.
                1 => {}
                _ => out.push(rule),
            }
        }
        // ARC names runner pods `<scale set>-<5>-runner-<5>`; the hooks cut
        // the runner pod's name to 47 for Secrets, 49 for step pods and 54
        // for the workflow pod. Cut, two runners of one scale set would share
        // a prefix (plan keeps group scale set names to 28 characters).
        out.push(Rule {
            expression: runner_only("size(variables.runnerPod) <= 47"),
            message: format!(
                "a group's runner pod name must be at most 47 characters, so the hooks never cut \
                 it (runner-identity: group {})",
                self.group
            ),
        });
        out.push(Rule {
            expression: pod_write(&format!(
                "has(variables.podSpec.serviceAccountName) && \
                 variables.podSpec.serviceAccountName in {}",
                cel_list(&self.job_accounts)
            )),
            message: format!(
                "a group's runner may start pods only as a member's job ServiceAccount \
                 (runner-identity: group {})",
                self.group
            ),
        });
        out.push(Rule {
            expression: pod_write(&format!(
                "has(object.metadata.labels) && '{RUNNER_POD_LABEL}' in object.metadata.labels && \
                 object.metadata.labels['{RUNNER_POD_LABEL}'] == variables.runnerPod"
            )),
            message: format!(
                "a group's runner may start only pods and Jobs labelled {RUNNER_POD_LABEL}=<its own \
                 pod>, which the claim policy judges (runner-identity: group {})",
                self.group
            ),
        });
        out.push(Rule {
            expression: runner_only(&format!(
                "request.resource.resource != 'configmaps' || (request.operation == 'CREATE' && \
                 variables.runnerPod != '' && request.name == variables.runnerPod + '-claim' && \
                 has(object.immutable) && object.immutable && has(object.metadata.labels) && \
                 '{CLAIM_LABEL}' in object.metadata.labels && \
                 object.metadata.labels['{CLAIM_LABEL}'] == {group} && has(object.data) && \
                 'serviceAccountName' in object.data && object.data.serviceAccountName in {accounts})",
                group = cel_string(self.group),
                accounts = cel_list(&self.job_accounts)
            )),
            message: format!(
                "a group's runner may create only its own claim: ConfigMap <its pod>-claim, \
                 immutable, labelled {CLAIM_LABEL}={}, naming a member's job ServiceAccount",
                self.group
            ),
        });
        out
    }

    /// The claim policy's variables.
    pub fn claim_variables(&self) -> Vec<(String, String)> {
        self.variables()
            .into_iter()
            .filter(|(name, _)| matches!(name.as_str(), "runnerPod" | "podSpec"))
            .collect()
    }

    /// The claim policy's validation, evaluated once per claim.
    pub fn claim_rules(&self) -> Vec<Rule> {
        vec![Rule {
            expression: "params.metadata.name != variables.runnerPod + '-claim' || \
                         (has(variables.podSpec.serviceAccountName) && has(params.data) && \
                         'serviceAccountName' in params.data && \
                         variables.podSpec.serviceAccountName == params.data.serviceAccountName)"
                .into(),
            message: format!(
                "a group's runner may start pods only as the job ServiceAccount its own claim \
                 names: the member whose job it runs (runner-identity: group {})",
                self.group
            ),
        }]
    }

    /// The two policies and their bindings; `metadata` carries the
    /// ownership labels (cluster-scoped: no namespace).
    pub fn objects(
        &self,
        metadata: ObjectMeta,
    ) -> Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)> {
        let only_runner = vec![MatchCondition {
            name: "group-runner".into(),
            expression: format!(
                "request.userInfo.username == {}",
                cel_string(&self.runner_user)
            ),
        }];
        let guard_name = admission::policy_name(self.namespace);
        let claims_name = format!("{guard_name}-claims");
        let policy =
            |name: &str,
             rules: Vec<NamedRuleWithOperations>,
             object_selector: Option<LabelSelector>,
             variables: Vec<(String, String)>,
             validations: Vec<Rule>,
             param_kind: Option<ParamKind>| ValidatingAdmissionPolicy {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: None,
                    ..metadata.clone()
                },
                spec: Some(ValidatingAdmissionPolicySpec {
                    failure_policy: Some("Fail".into()),
                    param_kind,
                    match_constraints: Some(MatchResources {
                        resource_rules: Some(rules),
                        object_selector,
                        ..Default::default()
                    }),
                    match_conditions: Some(only_runner.clone()),
                    variables: Some(
                        variables
                            .into_iter()
                            .map(|(name, expression)| Variable { name, expression })
                            .collect(),
                    ),
                    validations: Some(
                        validations
                            .into_iter()
                            .map(|r| Validation {
                                expression: r.expression,
                                message: Some(r.message),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
                status: None,
            };
        let binding = |name: &str, param_ref: Option<ParamRef>| {
            admission::binding(name, self.namespace, param_ref, metadata.clone())
        };
        let guard = policy(
            &guard_name,
            vec![
                rule(
                    "",
                    &["pods", "secrets", "configmaps"],
                    &["CREATE", "UPDATE", "DELETE"],
                ),
                // Not in the runner's Role; judged by name all the same.
                rule("", &["pods/ephemeralcontainers"], &["UPDATE"]),
                rule("batch", &["jobs"], &["CREATE", "UPDATE", "DELETE"]),
                rule(
                    "",
                    &["pods/exec", "pods/attach", "pods/portforward"],
                    &["CONNECT"],
                ),
            ],
            None,
            self.variables(),
            self.rules(),
            None,
        );
        let claims = policy(
            &claims_name,
            vec![
                rule("", &["pods"], &["CREATE", "UPDATE"]),
                rule("batch", &["jobs"], &["CREATE", "UPDATE"]),
            ],
            // The guard requires the label on every pod and Job the runner
            // starts; params are looked up before matchConditions, so
            // without this selector ARC's own runner pods would meet a
            // missing claim.
            Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: RUNNER_POD_LABEL.into(),
                    operator: "Exists".into(),
                    values: None,
                }]),
                ..Default::default()
            }),
            self.claim_variables(),
            self.claim_rules(),
            Some(ParamKind {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
            }),
        );
        vec![
            (guard, binding(&guard_name, None)),
            (
                claims,
                binding(
                    &claims_name,
                    Some(ParamRef {
                        namespace: Some(self.namespace.to_owned()),
                        selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                CLAIM_LABEL.to_owned(),
                                self.group.to_owned(),
                            )])),
                            ..Default::default()
                        }),
                        parameter_not_found_action: Some("Deny".into()),
                        name: None,
                    }),
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    //! The group's policies, evaluated with the `cel` crate as the shared
    //! namespace's are (`admission::tests::evaluate`); a claim policy's
    //! validation runs once per claim, and a request passes only if every
    //! run passes (no claim: denied). The local v1.20 API server serves no
    //! ValidatingAdmissionPolicy.
    use serde_json::{Value, json};

    use super::*;
    use crate::plan::admission::tests::{env, evaluate};

    const NS: &str = "gha-platform";
    const RUNNER: &str = "system:serviceaccount:gha-platform:gha-runner";
    const R1: &str = "platform-7xk2p-runner-q8z4w";
    const R2: &str = "platform-7xk2p-runner-t2l6d";
    const API: &str = "gha-job-api-1a2b3c4d";
    const WEB: &str = "gha-job-web-5e6f7a8b";

    fn guard() -> GroupGuard<'static> {
        GroupGuard {
            namespace: NS,
            group: "platform",
            runner_user: RUNNER.into(),
            job_accounts: vec![API.into(), WEB.into()],
        }
    }

    fn request(
        user: &str,
        pod: Option<&str>,
        operation: &str,
        resource: &str,
        name: &str,
    ) -> Value {
        let mut info = json!({"username": user});
        if let Some(pod) = pod {
            info["extra"] = json!({"authentication.kubernetes.io/pod-name": [pod]});
        }
        let kind = match resource {
            "jobs" => "Job",
            "configmaps" => "ConfigMap",
            "secrets" => "Secret",
            _ => "Pod",
        };
        json!({"operation": operation, "name": name, "namespace": NS, "kind": {"kind": kind},
               "resource": {"resource": resource}, "subResource": "", "userInfo": info})
    }

    fn workflow_pod(account: &str, runner: &str) -> Value {
        json!({"metadata": {"labels": {RUNNER_POD_LABEL: runner}},
               "spec": {"serviceAccountName": account, "containers": [{"name": "job", "image": "node:20"}]}})
    }

    fn claim(runner: &str, account: &str) -> Value {
        json!({"metadata": {"name": claim_name(runner), "labels": {CLAIM_LABEL: "platform"}},
               "immutable": true, "data": {"serviceAccountName": account}})
    }

    /// The guard's failed messages.
    fn guard_denies(request: &Value, object: &Value) -> Vec<String> {
        let g = guard();
        evaluate(&env(), &g.variables(), g.rules(), request, object, None)
    }

    /// Whether the claim policy denies: evaluated per claim; none: denied.
    fn claims_deny(request: &Value, object: &Value, claims: &[Value]) -> bool {
        let g = guard();
        claims.is_empty()
            || claims.iter().any(|c| {
                !evaluate(
                    &env(),
                    &g.claim_variables(),
                    g.claim_rules(),
                    request,
                    object,
                    Some(c),
                )
                .is_empty()
            })
    }

    #[test]
    fn a_runner_starts_its_workflow_pod_only_as_the_member_its_claim_names() {
        let create = request(
            RUNNER,
            Some(R1),
            "CREATE",
            "pods",
            &format!("{R1}-workflow"),
        );
        let claims = [claim(R1, API), claim(R2, WEB)];
        // As the member its own claim names: admitted by both policies.
        assert!(guard_denies(&create, &workflow_pod(API, R1)).is_empty());
        assert!(!claims_deny(&create, &workflow_pod(API, R1), &claims));
        // As the other member (its neighbour runner's claim names it): the
        // guard admits a member's account, the claim policy does not.
        assert!(guard_denies(&create, &workflow_pod(WEB, R1)).is_empty());
        assert!(claims_deny(&create, &workflow_pod(WEB, R1), &claims));
        // No claim at all: denied.
        assert!(claims_deny(&create, &workflow_pod(API, R1), &[]));
        // A v0.7.0 step Job, as the claim's member and not as the other.
        let job = |account: &str| {
            json!({"metadata": {"labels": {RUNNER_POD_LABEL: R1}},
            "spec": {"template": {"spec": {"serviceAccountName": account, "containers": []}}}})
        };
        let create_job = request(
            RUNNER,
            Some(R1),
            "CREATE",
            "jobs",
            &format!("{R1}-step-1a2b3c4d"),
        );
        assert!(guard_denies(&create_job, &job(API)).is_empty());
        assert!(!claims_deny(&create_job, &job(API), &claims));
        assert!(claims_deny(&create_job, &job(WEB), &claims));
    }

    #[test]
    fn the_guard_holds_the_runner_to_the_groups_accounts_its_label_and_its_own_objects() {
        let create = request(
            RUNNER,
            Some(R1),
            "CREATE",
            "pods",
            &format!("{R1}-workflow"),
        );
        for (object, says) in [
            (workflow_pod("gha-runner", R1), "only as a member's job"),
            (workflow_pod("default", R1), "only as a member's job"),
            // Labelled for the other runner: its claim would not judge it.
            (workflow_pod(API, R2), "labelled runner-pod"),
        ] {
            let d = guard_denies(&create, &object);
            assert_eq!(d.len(), 1, "{object}: {d:?}");
            assert!(d[0].contains(says), "{d:?}");
        }
        let mut unlabelled = workflow_pod(API, R1);
        unlabelled["metadata"] = json!({});
        assert!(guard_denies(&create, &unlabelled)[0].contains("labelled runner-pod"));
        // Another runner's pod name, exec into it, a legacy token.
        let theirs = request(
            RUNNER,
            Some(R1),
            "CREATE",
            "pods",
            &format!("{R2}-workflow"),
        );
        assert!(!guard_denies(&theirs, &workflow_pod(API, R1)).is_empty());
        let mut exec = request(
            RUNNER,
            Some(R1),
            "CONNECT",
            "pods",
            &format!("{R2}-workflow"),
        );
        exec["subResource"] = json!("exec");
        assert!(!guard_denies(&exec, &json!({"kind": "PodExecOptions"})).is_empty());
        let legacy = request(RUNNER, None, "CREATE", "pods", &format!("{R1}-workflow"));
        assert!(!guard_denies(&legacy, &workflow_pod(API, R1)).is_empty());
        // A neighbour runner's work volume: code planted there runs as B.
        let mut planted = workflow_pod(API, R1);
        planted["spec"]["volumes"] =
            json!([{"name": "w", "persistentVolumeClaim": {"claimName": format!("{R2}-work")}}]);
        let step = request(
            RUNNER,
            Some(R1),
            "CREATE",
            "pods",
            &format!("{R1}-step-deadbeef"),
        );
        assert!(
            guard_denies(&step, &planted)
                .iter()
                .any(|m| m.contains("only its own work volume"))
        );
        // A runner pod name the hooks would cut (a longer scale set name):
        // two runners would share their step pods' prefix.
        let long = "platform-with-a-much-longer-name-x7k2p-runner-q8z4w";
        let r = request(
            RUNNER,
            Some(long),
            "CREATE",
            "pods",
            &format!("{long}-workflow"),
        );
        assert!(
            guard_denies(&r, &workflow_pod(API, long))
                .iter()
                .any(|m| m.contains("at most 47"))
        );
        // Host access.
        let mut host = workflow_pod(API, R1);
        host["spec"]["hostPID"] = json!(true);
        assert!(!guard_denies(&create, &host).is_empty());
    }

    #[test]
    fn a_runner_creates_only_its_own_immutable_claim_for_a_member() {
        let own = claim_name(R1);
        let create = |name: &str| request(RUNNER, Some(R1), "CREATE", "configmaps", name);
        assert!(guard_denies(&create(&own), &claim(R1, WEB)).is_empty());
        let mut mutable = claim(R1, WEB);
        mutable["immutable"] = json!(false);
        let mut other_group = claim(R1, WEB);
        other_group["metadata"]["labels"][CLAIM_LABEL] = json!("other");
        for (name, object) in [
            // The neighbour runner's claim, before its job-started.
            (claim_name(R2), claim(R2, WEB)),
            // Its own, naming the runner or an outsider.
            (own.clone(), claim(R1, "gha-runner")),
            (own.clone(), claim(R1, "gha-job-other-00000000")),
            (own.clone(), mutable),
            (own.clone(), other_group),
            // Any other ConfigMap.
            ("gha-hook-template".to_owned(), json!({"data": {}})),
        ] {
            let d = guard_denies(&create(&name), &object);
            assert!(
                d.iter().any(|m| m.contains("only its own claim")),
                "{name} {object}: {d:?}"
            );
        }
        // Changing or deleting its claim.
        for op in ["UPDATE", "DELETE"] {
            let r = request(RUNNER, Some(R1), op, "configmaps", &own);
            assert!(!guard_denies(&r, &claim(R1, WEB)).is_empty(), "{op}");
        }
    }

    #[test]
    fn requests_of_anyone_else_are_not_judged() {
        // ARC's controller creating a runner pod: the guard's checks hold
        // for runners only (and matchConditions keep it away).
        let controller = "system:serviceaccount:arc-systems:arc-gha-rs-controller";
        let r = request(controller, None, "CREATE", "pods", R1);
        assert!(
            guard_denies(&r, &json!({"spec": {"serviceAccountName": "gha-runner"}})).is_empty()
        );
        let (policy, binding) = guard().objects(ObjectMeta::default()).remove(1);
        let spec = policy.spec.unwrap();
        assert_eq!(
            spec.match_conditions.unwrap()[0].expression,
            format!("request.userInfo.username == '{RUNNER}'")
        );
        // The claim policy sees only labelled pods and Jobs, and every claim
        // of the group in its namespace; none is a denial.
        let selector = spec.match_constraints.unwrap().object_selector.unwrap();
        assert_eq!(selector.match_expressions.unwrap()[0].key, RUNNER_POD_LABEL);
        let param = binding.spec.unwrap().param_ref.unwrap();
        assert_eq!(param.parameter_not_found_action.as_deref(), Some("Deny"));
        assert_eq!(param.namespace.as_deref(), Some(NS));
        assert_eq!(
            param.selector.unwrap().match_labels.unwrap()[CLAIM_LABEL],
            "platform"
        );
    }
}
