//! The runner ServiceAccount's rights, by SubjectAccessReview: every right
//! the hooks of the flavour check (either hooks release of it), and what it
//! should not have (wildcards, pods or Secrets in every namespace).

use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Client;
use kube::api::{Api, PostParams};

use super::{Finding, Severity, object};
use crate::access::resource_attributes;
use crate::config::Hooks;
use crate::plan::{HookRight, hook_asks, hook_versions};

/// Checks the rights of `namespace/account`.
pub async fn check(
    client: &Client,
    namespace: &str,
    account: &str,
    flavour: Hooks,
) -> Vec<Finding> {
    let here = object("ServiceAccount", namespace, account);
    let versions = hook_versions(flavour);
    let asks = hook_asks(&versions);
    let answers = futures::future::join_all(asks.iter().map(|(r, verb)| {
        review(
            client,
            namespace,
            account,
            Some(namespace),
            r.group,
            r.resource,
            r.subresource,
            verb,
        )
    }))
    .await;
    let mut findings = Vec::new();
    let mut missing: Vec<(HookRight, &str)> = Vec::new();
    for ((right, verb), answer) in asks.iter().zip(answers) {
        match answer {
            Ok(true) => {}
            Ok(false) => missing.push((*right, verb)),
            Err(e) => {
                findings.push(Finding::new(
                    Severity::Warning,
                    "runner-rights",
                    here.clone(),
                    format!("cannot check the runner's rights: {e}"),
                    "grant doctor create on subjectaccessreviews.authorization.k8s.io (docs/reference.md: doctor)",
                ));
                return findings;
            }
        }
    }
    let lacks = |v: &crate::plan::HookVersion| missing.iter().any(|(r, _)| v.rights.contains(r));
    if versions.iter().all(lacks) {
        let listed: Vec<String> = missing
            .iter()
            .map(|(r, v)| format!("{v} {}", r.resource_path()))
            .collect();
        let mut rule = String::from("add to the runner's Role:");
        let mut paths: Vec<String> = missing.iter().map(|(r, _)| r.resource_path()).collect();
        paths.dedup();
        for path in paths {
            let verbs: Vec<&str> = missing
                .iter()
                .filter(|(r, _)| r.resource_path() == path)
                .map(|(_, v)| *v)
                .collect();
            let group = missing
                .iter()
                .find(|(r, _)| r.resource_path() == path)
                .map_or("", |(r, _)| r.group);
            rule.push_str(&format!(
                " {{apiGroups: [\"{group}\"], resources: [\"{path}\"], verbs: [{}]}}",
                verbs.join(", ")
            ));
        }
        findings.push(Finding::new(
            Severity::Error,
            "runner-rights",
            here.clone(),
            format!(
                "the runner lacks rights the hooks check in {namespace}: {} (\"The Service account \
                 needs the following permissions\")",
                listed.join(", ")
            ),
            rule,
        ));
    } else if !missing.is_empty() {
        let listed: Vec<String> = missing
            .iter()
            .map(|(r, v)| format!("{v} {}", r.resource_path()))
            .collect();
        findings.push(Finding::new(
            Severity::Warning,
            "runner-rights",
            here.clone(),
            format!(
                "enough for hooks v0.8, but hooks v0.7.0 (the runner image's /home/runner/k8s) also \
                 check {}",
                listed.join(", ")
            ),
            "grant batch jobs get/list/create/delete in the runner's Role, or run hooks v0.8 or later",
        ));
    }
    // What no runner needs.
    let excess = [
        (
            Some(namespace),
            "*",
            "*",
            "*",
            "every right on everything in its namespace (a wildcard)",
        ),
        (None, "", "pods", "create", "create pods in every namespace"),
        (
            None,
            "",
            "secrets",
            "get",
            "read Secrets in every namespace",
        ),
    ];
    for (ns, group, resource, verb, what) in excess {
        if let Ok(true) = review(client, namespace, account, ns, group, resource, "", verb).await {
            findings.push(Finding::new(
                if ns.is_none() { Severity::Error } else { Severity::Warning },
                "runner-rights",
                here.clone(),
                format!("the runner may {what}"),
                format!(
                    "remove the bindings that grant it: kubectl get rolebindings,clusterrolebindings -A -o wide | grep {account}; \
                     the runner needs only the hooks' rights in {namespace} (never cluster-admin)"
                ),
            ));
        }
    }
    findings
}

/// One SubjectAccessReview for the ServiceAccount.
#[allow(clippy::too_many_arguments)]
async fn review(
    client: &Client,
    namespace: &str,
    account: &str,
    scope: Option<&str>,
    group: &str,
    resource: &str,
    subresource: &str,
    verb: &str,
) -> Result<bool, kube::Error> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{namespace}:{account}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(resource_attributes(
                scope,
                group,
                resource,
                subresource,
                verb,
            )),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let out = api.create(&PostParams::default(), &review).await?;
    Ok(out.status.is_some_and(|s| s.allowed))
}
