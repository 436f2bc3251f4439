//! The guard of a shared namespace: a ValidatingAdmissionPolicy (CEL,
//! admissionregistration.k8s.io/v1, Kubernetes ≥ 1.30) and its binding.
//! For the requests of each repository's runner ServiceAccount only (ARC's
//! controller starting runner pods and the Job controller are not matched):
//! - pods and Jobs are created only as its own repository's job
//!   ServiceAccount, and none with `hostPath`, `privileged`, `hostNetwork` or
//!   `hostPID`;
//! - it may create, change, delete, exec into, attach to and port-forward to
//!   only its own pods, Jobs and Secrets: those whose names start with its
//!   own runner pod's name as runner-container-hooks name them
//!   (`<runner pod, cut to 54>-workflow`, `<cut to 49>-step-…`, `<cut to
//!   47>-secret-…`). Its pod's name comes from its bound token
//!   (`userInfo.extra["authentication.kubernetes.io/pod-name"]`, set for
//!   pod-bound tokens since Kubernetes 1.11); a request without it (a
//!   legacy token) is refused;
//! - no Secret of type `kubernetes.io/service-account-token` (the token
//!   controller would fill it with a token of any ServiceAccount it names).
//!
//! Reads are never admission-controlled: runners of one namespace can still
//! read each other's pods, logs and Secrets (the hooks keep step `env:` in
//! Secrets). A shared namespace cannot isolate what runners read.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::names::RepoNames;

/// The name of the policy (and binding) guarding `namespace`.
pub fn policy_name(namespace: &str) -> String {
    format!("runner-identity-{namespace}")
}

/// One CEL validation of the policy: expression and message.
pub struct Rule {
    pub expression: String,
    pub message: String,
}

/// The longest runner pod name prefixes the hooks keep in the names of
/// the workflow pod, step pods and Secrets (63 characters minus
/// `-workflow`, `-step-` + 8, `-secret-` + 8).
const WORKFLOW_PREFIX: usize = 63 - "-workflow".len();
const STEP_PREFIX: usize = 63 - "-step-".len() - 8;
const SECRET_PREFIX: usize = 63 - "-secret-".len() - 8;

/// The variables the validations use: the requesting runner's job
/// ServiceAccount (`''` for users that are no runner of this namespace), its
/// pod's name from its token, the name prefixes of its own objects, and the
/// pod spec of a Pod or Job write. Variables are evaluated when first used.
pub fn variables(runners: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let map: Vec<String> = runners
        .iter()
        .map(|(user, job)| format!("{}: {}", cel_string(user), cel_string(job)))
        .collect();
    let prefix = |n: usize| {
        format!(
            "size(variables.runnerPod) > {n} ? variables.runnerPod.substring(0, {n}) : variables.runnerPod"
        )
    };
    vec![
        (
            "jobAccount".into(),
            format!(
                "request.userInfo.username in {{{m}}} ? {{{m}}}[request.userInfo.username] : ''",
                m = map.join(", ")
            ),
        ),
        (
            "runnerPod".into(),
            format!(
                "has(request.userInfo.extra) && {POD_NAME} in request.userInfo.extra && \
                 size(request.userInfo.extra[{POD_NAME}]) > 0 ? request.userInfo.extra[{POD_NAME}][0] : ''"
            ),
        ),
        ("workflowPrefix".into(), prefix(WORKFLOW_PREFIX)),
        ("stepPrefix".into(), prefix(STEP_PREFIX)),
        ("secretPrefix".into(), prefix(SECRET_PREFIX)),
        (
            "podWrite".into(),
            "request.operation in ['CREATE', 'UPDATE'] && request.resource.resource in ['pods', 'jobs'] && \
             request.subResource == ''"
                .into(),
        ),
        (
            "podSpec".into(),
            "request.kind.kind == 'Pod' ? object.spec : object.spec.template.spec".into(),
        ),
    ]
}

/// The key of the runner pod's name in a bound token's user extra.
const POD_NAME: &str = "'authentication.kubernetes.io/pod-name'";

/// The validations; each holds for users that are no runner of the namespace.
pub fn rules() -> Vec<Rule> {
    let runner_only = |condition: &str| format!("variables.jobAccount == '' || ({condition})");
    let pod_write = |condition: &str| runner_only(&format!("!variables.podWrite || ({condition})"));
    let containers = |test: &str| {
        ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .map(|list| {
                format!(
                    "(!has(variables.podSpec.{list}) || variables.podSpec.{list}.all(c, {test}))"
                )
            })
            .collect::<Vec<_>>()
            .join(" && ")
    };
    vec![
        Rule {
            expression: runner_only(
                "variables.runnerPod != '' && (request.name == variables.workflowPrefix + '-workflow' || \
                 request.name.startsWith(variables.stepPrefix + '-step-') || \
                 request.name.startsWith(variables.secretPrefix + '-secret-'))",
            ),
            message: "a repository's runner may create, change, delete, exec into, attach to and \
                      port-forward to only its own workflow and step pods, Jobs and Secrets (named \
                      after its own runner pod), with a pod-bound token (runner-identity: shared \
                      namespace)"
                .into(),
        },
        Rule {
            expression: pod_write(
                "has(variables.podSpec.serviceAccountName) && \
                 variables.podSpec.serviceAccountName == variables.jobAccount",
            ),
            message: "a repository's runner may start pods only as its own repository's job \
                      ServiceAccount (runner-identity: shared namespace)"
                .into(),
        },
        Rule {
            expression: pod_write(
                "!has(variables.podSpec.volumes) || \
                 variables.podSpec.volumes.all(v, !has(v.hostPath))",
            ),
            message: "a runner may not start pods with hostPath volumes".into(),
        },
        Rule {
            // Another runner's work volume would let it plant code the other
            // repository's job runs (ReadWriteOnce allows pods on one node).
            // Projected volumes stay: the ServiceAccount admission and the
            // IRSA and Pod Identity webhooks add them before validation.
            expression: pod_write(
                "!has(variables.podSpec.volumes) || variables.podSpec.volumes.all(v, \
                 has(v.projected) || has(v.emptyDir) || has(v.configMap) || has(v.secret) || \
                 has(v.downwardAPI) || (has(v.persistentVolumeClaim) && \
                 v.persistentVolumeClaim.claimName == variables.runnerPod + '-work'))",
            ),
            message: "a runner may mount in its pods only its own work volume (<its pod>-work) \
                      and projected, emptyDir, configMap, secret and downwardAPI volumes"
                .into(),
        },
        Rule {
            expression: pod_write(
                "!(has(variables.podSpec.hostNetwork) && variables.podSpec.hostNetwork) && \
                 !(has(variables.podSpec.hostPID) && variables.podSpec.hostPID) && \
                 !(has(variables.podSpec.hostIPC) && variables.podSpec.hostIPC)",
            ),
            message: "a runner may not start pods in the node's network, PID or IPC namespace"
                .into(),
        },
        Rule {
            expression: pod_write(&containers(
                "!has(c.securityContext) || !has(c.securityContext.privileged) || \
                 !c.securityContext.privileged",
            )),
            message: "a runner may not start privileged containers".into(),
        },
        Rule {
            expression: runner_only(
                "request.resource.resource != 'secrets' || request.operation == 'DELETE' || \
                 !has(object.type) || object.type != 'kubernetes.io/service-account-token'",
            ),
            message: "a runner may not create ServiceAccount token Secrets (the token controller \
                      would fill one with a token of any ServiceAccount it names)"
                .into(),
        },
    ]
}

/// The runner users of a namespace and the job ServiceAccount each may use.
pub fn runners_of(namespace: &str, repos: &[&RepoNames]) -> BTreeMap<String, String> {
    repos
        .iter()
        .filter(|n| n.namespace == namespace)
        .map(|n| {
            (
                format!(
                    "system:serviceaccount:{namespace}:{}",
                    n.runner_service_account
                ),
                n.job_service_account.clone(),
            )
        })
        .collect()
}

/// The policy and its binding for `namespace`; `metadata` carries the
/// ownership labels (cluster-scoped: no namespace).
pub fn guard(
    namespace: &str,
    runners: &BTreeMap<String, String>,
    metadata: ObjectMeta,
) -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    let name = policy_name(namespace);
    let policy = ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: None,
            ..metadata.clone()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![
                    rule("", &["pods", "secrets"], &["CREATE", "UPDATE", "DELETE"]),
                    rule("batch", &["jobs"], &["CREATE", "UPDATE", "DELETE"]),
                    rule(
                        "",
                        &["pods/exec", "pods/attach", "pods/portforward"],
                        &["CONNECT"],
                    ),
                ]),
                ..Default::default()
            }),
            variables: Some(
                variables(runners)
                    .into_iter()
                    .map(|(name, expression)| Variable { name, expression })
                    .collect(),
            ),
            validations: Some(
                rules()
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
    let binding = binding(&name, namespace, None, metadata);
    (policy, binding)
}

/// The binding of policy `name` to `namespace` alone (denying), with its
/// params where the policy has them.
pub(super) fn binding(
    name: &str,
    namespace: &str,
    param_ref: Option<k8s_openapi::api::admissionregistration::v1::ParamRef>,
    metadata: ObjectMeta,
) -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: None,
            ..metadata
        },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(name.to_owned()),
            validation_actions: Some(vec!["Deny".into()]),
            param_ref,
            match_resources: Some(MatchResources {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_owned(),
                        namespace.to_owned(),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
    }
}

pub(super) fn rule(
    group: &str,
    resources: &[&str],
    operations: &[&str],
) -> NamedRuleWithOperations {
    NamedRuleWithOperations {
        api_groups: Some(vec![group.to_owned()]),
        api_versions: Some(vec!["*".into()]),
        operations: Some(operations.iter().map(|o| (*o).to_owned()).collect()),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        ..Default::default()
    }
}

/// A CEL string literal.
pub(super) fn cel_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
pub(super) mod tests {
    //! The planned CEL, evaluated with the `cel` crate and its strings
    //! extension (Kubernetes' CEL has the same `substring`) the way the API
    //! server's admission does: variables when used, then every validation,
    //! with `object` and `request` as Kubernetes binds them (for CONNECT,
    //! `object` is the exec/attach/port-forward options; for DELETE, null).
    //! A validation that errors fails, as with `failurePolicy: Fail`. (The
    //! local v1.20 API server serves no ValidatingAdmissionPolicy.)
    use std::sync::Arc;

    use super::*;
    use serde_json::{Value, json};

    const NS: &str = "shared-runners";
    const A: &str = "system:serviceaccount:shared-runners:gha-a-runner";
    const B: &str = "system:serviceaccount:shared-runners:gha-b-runner";
    /// Runner pods as ARC names them (`<scale set>-<hash>-runner-<hash>`).
    const A_POD: &str = "gha-a-rs-7xk2p-runner-q8z4w";
    const B_POD: &str = "gha-b-rs-9mm3r-runner-t2l6d";

    fn runners() -> BTreeMap<String, String> {
        BTreeMap::from([
            (A.to_owned(), "gha-a-job".to_owned()),
            (B.to_owned(), "gha-b-job".to_owned()),
        ])
    }

    pub(in crate::plan) fn env() -> Arc<cel::Env> {
        let mut env = cel::Env::stdlib();
        env.add_extension(cel::extensions::strings).unwrap();
        Arc::new(env)
    }

    /// A request as admission binds it.
    struct Req {
        user: &'static str,
        pod: Option<&'static str>,
        operation: &'static str,
        resource: &'static str,
        sub: &'static str,
        kind: &'static str,
        name: String,
        object: Value,
    }

    impl Req {
        fn new(user: &'static str, pod: Option<&'static str>) -> Req {
            Req {
                user,
                pod,
                operation: "CREATE",
                resource: "pods",
                sub: "",
                kind: "Pod",
                name: format!("{}-workflow", pod.unwrap_or("x")),
                object: Value::Null,
            }
        }
        fn op(mut self, operation: &'static str, resource: &'static str, sub: &'static str) -> Req {
            (self.operation, self.resource, self.sub) = (operation, resource, sub);
            self.kind = match resource {
                "jobs" => "Job",
                "secrets" => "Secret",
                _ if sub == "exec" => "PodExecOptions",
                _ => "Pod",
            };
            self
        }
        fn named(mut self, name: &str) -> Req {
            self.name = name.to_owned();
            self
        }
        fn with(mut self, object: Value) -> Req {
            self.object = object;
            self
        }
    }

    /// The messages of the validations the request fails.
    fn denied(r: &Req) -> Vec<String> {
        let env = env();
        let mut extra = serde_json::Map::new();
        if let Some(pod) = r.pod {
            extra.insert("authentication.kubernetes.io/pod-name".into(), json!([pod]));
        }
        let mut user = json!({"username": r.user});
        if !extra.is_empty() {
            user["extra"] = Value::Object(extra);
        }
        let request = json!({
            "operation": r.operation, "name": r.name, "namespace": NS,
            "kind": {"kind": r.kind}, "resource": {"resource": r.resource}, "subResource": r.sub,
            "userInfo": user,
        });
        evaluate(
            &env,
            &variables(&runners()),
            rules(),
            &request,
            &r.object,
            None,
        )
    }

    /// The messages of the validations a request fails: `variables` bound
    /// in order (one that errors stays unbound, so a validation that uses it
    /// errors too), then each validation, with `params` when the policy has
    /// them (a validation that errors fails: `failurePolicy: Fail`).
    pub(in crate::plan) fn evaluate(
        env: &Arc<cel::Env>,
        variables: &[(String, String)],
        rules: Vec<Rule>,
        request: &Value,
        object: &Value,
        params: Option<&Value>,
    ) -> Vec<String> {
        let context = |vars: &std::collections::HashMap<String, cel::Value>| {
            let mut ctx = cel::Context::with_env(Arc::clone(env));
            ctx.add_variable("object", object.clone()).unwrap();
            ctx.add_variable("request", request.clone()).unwrap();
            if let Some(p) = params {
                ctx.add_variable("params", p.clone()).unwrap();
            }
            ctx.add_variable_from_value("variables", vars.clone());
            ctx
        };
        let mut vars: std::collections::HashMap<String, cel::Value> = Default::default();
        for (name, expression) in variables {
            let program = env
                .compile(expression)
                .unwrap_or_else(|e| panic!("{name}: {expression}: {e}"));
            if let Ok(value) = program.execute(&context(&vars)) {
                vars.insert(name.clone(), value);
            }
        }
        let ctx = context(&vars);
        rules
            .into_iter()
            .filter(|rule| {
                let program = env
                    .compile(&rule.expression)
                    .unwrap_or_else(|e| panic!("{}: {e}", rule.expression));
                program.execute(&ctx) != Ok(cel::Value::Bool(true))
            })
            .map(|rule| rule.message)
            .collect()
    }

    fn pod(account: &str, extra: Value) -> Value {
        let mut spec = json!({
            "serviceAccountName": account,
            "containers": [{"name": "job", "image": "node:20"}],
            "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": format!("{A_POD}-work")}}],
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        json!({ "spec": spec })
    }

    fn job(account: &str) -> Value {
        json!({"spec": {"template": pod(account, json!({}))}})
    }

    fn a() -> Req {
        Req::new(A, Some(A_POD))
    }

    #[test]
    fn a_runner_starts_pods_and_jobs_only_as_its_own_job_account() {
        assert!(denied(&a().with(pod("gha-a-job", json!({})))).is_empty());
        let step = format!("{A_POD}-step-1a2b3c4d");
        assert!(
            denied(
                &a().op("CREATE", "jobs", "")
                    .named(&step)
                    .with(job("gha-a-job"))
            )
            .is_empty()
        );
        for r in [
            a().with(pod("gha-b-job", json!({}))),
            a().op("CREATE", "jobs", "")
                .named(&step)
                .with(job("gha-b-job")),
            a().with(pod("default", json!({}))),
        ] {
            let d = denied(&r);
            assert_eq!(d.len(), 1, "{d:?}");
            assert!(d[0].contains("own repository's job"), "{d:?}");
        }
        // No serviceAccountName: the namespace's `default`.
        let mut no_account = pod("x", json!({}));
        no_account["spec"]
            .as_object_mut()
            .unwrap()
            .remove("serviceAccountName");
        assert_eq!(denied(&a().with(no_account)).len(), 1);
    }

    #[test]
    fn host_access_and_privilege_are_denied() {
        let cases = [
            json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
            json!({"hostNetwork": true}),
            json!({"hostPID": true}),
            json!({"hostIPC": true}),
            json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
            json!({"initContainers": [{"name": "i", "securityContext": {"privileged": true}}]}),
        ];
        for extra in cases {
            let d = denied(&a().with(pod("gha-a-job", extra.clone())));
            assert!(!d.is_empty(), "{extra}");
            assert!(
                d.iter().any(|m| m.contains("hostPath")
                    || m.contains("node's")
                    || m.contains("privileged")),
                "{extra}: {d:?}"
            );
        }
        let fine = json!({"hostNetwork": false, "containers": [{"name": "c", "securityContext": {"privileged": false}}]});
        assert!(denied(&a().with(pod("gha-a-job", fine))).is_empty());
    }

    #[test]
    fn a_runner_mounts_only_its_own_work_volume() {
        // A neighbour's work volume (ReadWriteOnce allows pods on its node),
        // a clone of it, any other claim: denied. The volumes the hooks, the
        // ServiceAccount admission and the IRSA webhook add: admitted.
        let own = json!({"volumes": [
            {"name": "work", "persistentVolumeClaim": {"claimName": format!("{A_POD}-work")}},
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "cm", "configMap": {"name": "x"}},
            {"name": "s", "secret": {"secretName": "y"}},
            {"name": "d", "downwardAPI": {"items": []}},
        ]});
        assert!(denied(&a().with(pod("gha-a-job", own))).is_empty());
        for volume in [
            json!({"name": "work", "persistentVolumeClaim": {"claimName": format!("{B_POD}-work")}}),
            json!({"name": "clone", "ephemeral": {"volumeClaimTemplate": {"spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": format!("{B_POD}-work")}}}}}),
            json!({"name": "nfs", "nfs": {"server": "10.0.0.1", "path": "/"}}),
        ] {
            let d = denied(&a().with(pod("gha-a-job", json!({"volumes": [volume.clone()]}))));
            assert_eq!(d.len(), 1, "{volume}: {d:?}");
            assert!(d[0].contains("only its own work volume"), "{d:?}");
        }
    }

    #[test]
    fn a_runner_reaches_only_its_own_pods_jobs_and_secrets() {
        let exec = json!({"kind": "PodExecOptions", "command": ["sh"], "stdin": true});
        let b_workflow = format!("{B_POD}-workflow");
        let b_step = format!("{B_POD}-step-0f0f0f0f");
        let b_secret = format!("{B_POD}-secret-0f0f0f0f");
        // B's objects: exec, attach, port-forward, delete, change — refused to A.
        for r in [
            a().op("CONNECT", "pods", "exec")
                .named(&b_workflow)
                .with(exec.clone()),
            a().op("CONNECT", "pods", "attach").named(&b_workflow),
            a().op("CONNECT", "pods", "portforward").named(&b_step),
            a().op("DELETE", "pods", "").named(&b_workflow),
            a().op("DELETE", "jobs", "").named(&b_step),
            a().op("DELETE", "secrets", "").named(&b_secret),
            a().op("UPDATE", "pods", "")
                .named(&b_workflow)
                .with(pod("gha-a-job", json!({}))),
            a().op("CREATE", "secrets", "")
                .named(&b_secret)
                .with(json!({"type": "Opaque"})),
            // A pod named like B's workflow pod, before B starts it.
            a().named(&b_workflow).with(pod("gha-a-job", json!({}))),
        ] {
            let d = denied(&r);
            assert_eq!(d.len(), 1, "{} {} {}: {d:?}", r.operation, r.sub, r.name);
            assert!(d[0].contains("only its own"), "{d:?}");
        }
        // Its own: allowed.
        for r in [
            a().op("CONNECT", "pods", "exec")
                .named(&format!("{A_POD}-workflow"))
                .with(exec.clone()),
            a().op("CONNECT", "pods", "exec")
                .named(&format!("{A_POD}-step-1a2b3c4d")),
            // A v0.7.0 step pod, named by the Job controller after A's Job.
            a().op("DELETE", "pods", "")
                .named(&format!("{A_POD}-step-1a2b3c4d-x7k2p")),
            a().op("DELETE", "secrets", "")
                .named(&format!("{A_POD}-secret-1a2b3c4d")),
            a().op("CREATE", "secrets", "")
                .named(&format!("{A_POD}-secret-1a2b3c4d"))
                .with(json!({"type": "Opaque"})),
        ] {
            assert!(
                denied(&r).is_empty(),
                "{} {} {}: {:?}",
                r.operation,
                r.sub,
                r.name,
                denied(&r)
            );
        }
        // Without a pod-bound token (a legacy Secret token): nothing.
        let legacy = Req::new(A, None)
            .op("CONNECT", "pods", "exec")
            .named(&format!("{A_POD}-workflow"));
        assert_eq!(denied(&legacy).len(), 1);
    }

    #[test]
    fn long_runner_pod_names_are_cut_as_the_hooks_cut_them() {
        // 60 characters: the hooks keep 54 for the workflow pod, 49 for a
        // step pod, 47 for a Secret.
        let long: &'static str = "gha-a-very-long-scale-set-name-abcdefghij-runner-0123456789";
        let r = |name: String| {
            Req::new(A, Some(long))
                .op("CONNECT", "pods", "exec")
                .named(&name)
        };
        assert!(denied(&r(format!("{}-workflow", &long[..54]))).is_empty());
        assert!(denied(&r(format!("{}-step-12345678", &long[..49]))).is_empty());
        assert!(denied(&r(format!("{}-secret-12345678", &long[..47]))).is_empty());
        assert_eq!(denied(&r(format!("{}-workflow", &long[..53]))).len(), 1);
    }

    #[test]
    fn service_account_token_secrets_are_refused() {
        let token = json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"annotations": {"kubernetes.io/service-account.name": "gha-b-job"}}});
        let d = denied(
            &a().op("CREATE", "secrets", "")
                .named(&format!("{A_POD}-secret-1a2b3c4d"))
                .with(token),
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("token"), "{d:?}");
    }

    #[test]
    fn requests_of_anyone_else_are_not_judged() {
        // ARC's controller starts runner pods as the runner account; the Job
        // controller starts a Job's pods (the Job itself was judged).
        for user in [
            "system:serviceaccount:arc-systems:arc-gha-rs-controller",
            "system:serviceaccount:kube-system:job-controller",
            "system:serviceaccount:other-ns:gha-a-runner",
        ] {
            let privileged = pod(
                "gha-a-runner",
                json!({"hostNetwork": true, "volumes": [{"name": "r", "hostPath": {"path": "/"}}]}),
            );
            let r = Req::new(user, None).named("anything").with(privileged);
            assert!(denied(&r).is_empty(), "{user}");
            let exec = Req::new(user, None)
                .op("CONNECT", "pods", "exec")
                .named(&format!("{B_POD}-workflow"));
            assert!(denied(&exec).is_empty(), "{user}");
        }
    }

    #[test]
    fn the_policy_is_bound_to_its_namespace_only() {
        let (policy, binding) = guard(NS, &runners(), ObjectMeta::default());
        assert_eq!(
            policy.metadata.name.as_deref(),
            Some("runner-identity-shared-runners")
        );
        let spec = binding.spec.unwrap();
        assert_eq!(
            spec.policy_name.as_deref(),
            Some("runner-identity-shared-runners")
        );
        assert_eq!(spec.validation_actions.unwrap(), ["Deny"]);
        let selector = spec.match_resources.unwrap().namespace_selector.unwrap();
        assert_eq!(
            selector.match_labels.unwrap()["kubernetes.io/metadata.name"],
            NS
        );
        let p = policy.spec.unwrap();
        assert_eq!(p.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(p.validations.unwrap().len(), rules().len());
        // CONNECT of exec, attach and port-forward is matched.
        let rules = p.match_constraints.unwrap().resource_rules.unwrap();
        let connect = rules
            .iter()
            .find(|r| r.operations.as_deref() == Some(&["CONNECT".to_owned()][..]))
            .unwrap();
        assert_eq!(
            connect.resources.clone().unwrap(),
            ["pods/exec", "pods/attach", "pods/portforward"]
        );
    }
}
