//! The guard of a shared namespace: a ValidatingAdmissionPolicy (CEL,
//! admissionregistration.k8s.io/v1, Kubernetes ≥ 1.30) and its binding that
//! let each repository's runner ServiceAccount create pods, and Jobs, only
//! as its own repository's job ServiceAccount, and none with `hostPath`,
//! `privileged`, `hostNetwork` or `hostPID`. Requests of anyone else (ARC's
//! controller starting runner pods, the Job controller) are not matched.

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

/// The variables every validation uses: the pod spec of a Pod or a Job, the
/// requesting user, and the job ServiceAccount that user may use (`''` for
/// users that are no runner of this namespace).
pub fn variables(runners: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let map: Vec<String> = runners
        .iter()
        .map(|(user, job)| format!("{}: {}", cel_string(user), cel_string(job)))
        .collect();
    vec![
        (
            "podSpec".into(),
            "request.kind.kind == 'Pod' ? object.spec : object.spec.template.spec".into(),
        ),
        (
            "jobAccount".into(),
            format!(
                "request.userInfo.username in {{{m}}} ? {{{m}}}[request.userInfo.username] : ''",
                m = map.join(", ")
            ),
        ),
    ]
}

/// The validations; each holds for users that are no runner of the namespace.
pub fn rules() -> Vec<Rule> {
    let runner_only = |condition: &str| format!("variables.jobAccount == '' || ({condition})");
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
                "has(variables.podSpec.serviceAccountName) && \
                 variables.podSpec.serviceAccountName == variables.jobAccount",
            ),
            message: "a repository's runner may start pods only as its own repository's job \
                      ServiceAccount (runner-identity: shared namespace)"
                .into(),
        },
        Rule {
            expression: runner_only(
                "!has(variables.podSpec.volumes) || \
                 variables.podSpec.volumes.all(v, !has(v.hostPath))",
            ),
            message: "a runner may not start pods with hostPath volumes".into(),
        },
        Rule {
            expression: runner_only(
                "!(has(variables.podSpec.hostNetwork) && variables.podSpec.hostNetwork) && \
                 !(has(variables.podSpec.hostPID) && variables.podSpec.hostPID)",
            ),
            message: "a runner may not start pods in the node's network or PID namespace".into(),
        },
        Rule {
            expression: runner_only(&containers(
                "!has(c.securityContext) || !has(c.securityContext.privileged) || \
                 !c.securityContext.privileged",
            )),
            message: "a runner may not start privileged containers".into(),
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
                resource_rules: Some(vec![rule("", "pods"), rule("batch", "jobs")]),
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
    let binding = ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: None,
            ..metadata
        },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(name),
            validation_actions: Some(vec!["Deny".into()]),
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
            ..Default::default()
        }),
    };
    (policy, binding)
}

fn rule(group: &str, resource: &str) -> NamedRuleWithOperations {
    NamedRuleWithOperations {
        api_groups: Some(vec![group.to_owned()]),
        api_versions: Some(vec!["*".into()]),
        operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
        resources: Some(vec![resource.to_owned()]),
        ..Default::default()
    }
}

/// A CEL string literal.
fn cel_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    //! The planned CEL, evaluated with the `cel` crate the way the API
    //! server's admission does: variables first, then every validation, with
    //! `object` and `request` as Kubernetes binds them. (The local v1.20 API
    //! server serves no ValidatingAdmissionPolicy.)
    use super::*;
    use serde_json::{Value, json};

    const NS: &str = "shared-runners";

    fn runners() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                format!("system:serviceaccount:{NS}:gha-a-runner"),
                "gha-a-job".to_owned(),
            ),
            (
                format!("system:serviceaccount:{NS}:gha-b-runner"),
                "gha-b-job".to_owned(),
            ),
        ])
    }

    /// The messages of the validations `object`, requested by `user`, fails.
    fn denied(user: &str, kind: &str, object: Value) -> Vec<String> {
        let mut ctx = cel::Context::default();
        ctx.add_variable("object", object).unwrap();
        ctx.add_variable(
            "request",
            json!({"kind": {"kind": kind}, "userInfo": {"username": user}}),
        )
        .unwrap();
        let mut vars: std::collections::HashMap<String, cel::Value> = Default::default();
        for (name, expression) in variables(&runners()) {
            let program = cel::Program::compile(&expression)
                .unwrap_or_else(|e| panic!("{name}: {expression}: {e}"));
            let mut with = cel::Context::default();
            with.add_variable_from_value("object", ctx_value(&ctx, "object"));
            with.add_variable_from_value("request", ctx_value(&ctx, "request"));
            with.add_variable_from_value("variables", vars.clone());
            let value = program.execute(&with).unwrap();
            vars.insert(name, value);
        }
        ctx.add_variable_from_value("variables", vars);
        rules()
            .into_iter()
            .filter(|r| {
                let program = cel::Program::compile(&r.expression)
                    .unwrap_or_else(|e| panic!("{}: {e}", r.expression));
                program.execute(&ctx).unwrap() != cel::Value::Bool(true)
            })
            .map(|r| r.message)
            .collect()
    }

    fn ctx_value(ctx: &cel::Context, name: &str) -> cel::Value {
        cel::Program::compile(name).unwrap().execute(ctx).unwrap()
    }

    fn pod(account: &str, extra: Value) -> Value {
        let mut spec = json!({
            "serviceAccountName": account,
            "containers": [{"name": "job", "image": "node:20"}],
            "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "w"}}],
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        json!({ "spec": spec })
    }

    fn job(account: &str) -> Value {
        json!({"spec": {"template": pod(account, json!({}))}})
    }

    const A: &str = "system:serviceaccount:shared-runners:gha-a-runner";

    #[test]
    fn a_runner_starts_pods_and_jobs_only_as_its_own_job_account() {
        assert!(denied(A, "Pod", pod("gha-a-job", json!({}))).is_empty());
        assert!(denied(A, "Job", job("gha-a-job")).is_empty());
        for (kind, object) in [
            ("Pod", pod("gha-b-job", json!({}))),
            ("Job", job("gha-b-job")),
            ("Pod", pod("default", json!({}))),
        ] {
            let d = denied(A, kind, object);
            assert_eq!(d.len(), 1, "{d:?}");
            assert!(d[0].contains("own repository's job"), "{d:?}");
        }
        // No serviceAccountName: the namespace's `default`.
        let mut no_account = pod("x", json!({}));
        no_account["spec"]
            .as_object_mut()
            .unwrap()
            .remove("serviceAccountName");
        assert_eq!(denied(A, "Pod", no_account).len(), 1);
    }

    #[test]
    fn host_access_and_privilege_are_denied() {
        let cases = [
            json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
            json!({"hostNetwork": true}),
            json!({"hostPID": true}),
            json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
            json!({"initContainers": [{"name": "i", "securityContext": {"privileged": true}}]}),
        ];
        for extra in cases {
            let d = denied(A, "Pod", pod("gha-a-job", extra.clone()));
            assert_eq!(d.len(), 1, "{extra}: {d:?}");
        }
        let fine = json!({"hostNetwork": false, "containers": [{"name": "c", "securityContext": {"privileged": false}}]});
        assert!(denied(A, "Pod", pod("gha-a-job", fine)).is_empty());
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
            assert!(denied(user, "Pod", privileged).is_empty(), "{user}");
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
    }
}
