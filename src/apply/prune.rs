//! Pruning: objects labelled as managed by this configuration's instance that
//! the plan no longer has are deleted, in dependency order. Nothing else is
//! ever deleted, and a namespace that holds anything the tool does not manage
//! is kept and reported (deleting it would delete that too).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;
use tracing::info;

use super::inventory::{Inventory, ObjectKey, PAGE, kinds};
use super::report::{ObjectResult, RepoResult};
use super::{Options, dynamic_api, qualified};
use crate::kvp::{INSTANCE_LABEL, REPOSITORY_ANNOTATION};
use crate::outcome::Action;
use crate::plan::Kind;
use crate::retry;
use crate::{Error, Result};

pub(super) async fn prune(
    client: &Client,
    inventory: &Inventory,
    planned: &BTreeSet<ObjectKey>,
    options: &Options,
    writes: &AtomicUsize,
) -> Result<Vec<RepoResult>> {
    let candidates: Vec<(&ObjectKey, Value)> = inventory.of_instance(|k| !planned.contains(k));
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let namespaces: Vec<&str> = candidates
        .iter()
        .filter(|(k, _)| k.kind == Kind::Namespace)
        .map(|(k, _)| k.name.as_str())
        .collect();
    let keep = if namespaces.is_empty() {
        BTreeMap::new()
    } else {
        namespaces_with_foreign_objects(
            client,
            &namespaces,
            inventory.instance(),
            options.page_size,
        )
        .await?
    };

    let mut by_repo: BTreeMap<String, RepoResult> = BTreeMap::new();
    for (kind, ar) in kinds() {
        for (key, live) in candidates.iter().filter(|(k, _)| k.kind == kind) {
            let repository = live
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(REPOSITORY_ANNOTATION))
                .and_then(Value::as_str)
                .unwrap_or("(unknown repository)")
                .to_owned();
            let (namespace, name) = (&key.namespace, &key.name);
            let mut object = ObjectResult {
                kind,
                namespace: namespace.clone(),
                name: name.clone(),
                action: Action::Prune,
                diff: None,
                error: None,
                reason: None,
                server_validated: !options.diff_only,
            };
            if let Some(held) = keep.get(name.as_str()).filter(|_| kind == Kind::Namespace) {
                object.action = Action::Keep;
                object.reason = Some(held.reason(name));
            } else if !options.diff_only {
                let api = dynamic_api(client, &ar, namespace);
                let params = if options.dry_run {
                    DeleteParams::default().dry_run()
                } else {
                    DeleteParams::default()
                };
                let what = format!("delete {kind} {}", qualified(namespace, name));
                writes.fetch_add(1, Ordering::Relaxed);
                match retry::kube(&what, || api.delete(name, &params)).await {
                    Ok(_) => info!("{what} (no longer planned)"),
                    // Already gone: the goal of a delete is reached.
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    // The administrator's (bootstrap): left to them, said.
                    Err(kube::Error::Api(status))
                        if status.code == 403 && kind.administrator_owned() =>
                    {
                        object.action = Action::Keep;
                        object.reason = Some(format!(
                            "this identity may not delete it: it confines what runs in the \
                             namespace, so it is the administrator's; `kubectl delete {} {}` \
                             once nothing needs it",
                            kind.as_str().to_lowercase(),
                            if namespace.is_empty() {
                                name.clone()
                            } else {
                                format!("{name} -n {namespace}")
                            }
                        ));
                    }
                    Err(e) => {
                        object.error = Some(format!("{what}: {e}"));
                        object.action = Action::Failed;
                    }
                }
            }
            by_repo
                .entry(repository.clone())
                .or_insert_with(|| RepoResult::new(&repository))
                .objects
                .push(object);
        }
    }
    Ok(by_repo.into_values().collect())
}

/// Why a namespace cannot be pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// It holds an object runner-identity does not manage (`Kind name`).
    Foreign(String),
    /// The caller may not list these resources in it, so cannot prove it empty.
    Unreadable(BTreeSet<String>),
}

impl Held {
    fn reason(&self, namespace: &str) -> String {
        match self {
            Held::Foreign(object) => format!(
                "it holds {object}, which runner-identity does not manage (deleting the namespace \
                 would delete it too); move or delete it, then re-run with --prune"
            ),
            Held::Unreadable(resources) => format!(
                "this identity may not list {} in it, so it cannot prove that the namespace holds \
                 nothing else (its managed objects were deleted); to let apply delete it, grant \
                 `list` on those resources in {namespace}, or have an administrator check it and \
                 run `kubectl delete namespace {namespace}`",
                resources.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Namespaces among `namespaces` that hold an object not managed by `instance`,
/// or that the caller cannot read entirely, found by listing every
/// namespaced, listable resource the server serves. Objects every namespace
/// gets on its own (the `default` ServiceAccount, its token Secrets,
/// `kube-root-ca.crt`, events) do not count.
async fn namespaces_with_foreign_objects(
    client: &Client,
    namespaces: &[&str],
    instance: &str,
    page_size: u32,
) -> Result<BTreeMap<String, Held>> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|source| Error::Kube {
            action: "discover API resources for",
            kind: Kind::Namespace.as_str(),
            namespace: String::new(),
            name: namespaces.join(","),
            source: Box::new(source),
        })?;
    let mut pairs = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && ar.plural != "events"
            {
                for ns in namespaces {
                    pairs.push((ar.clone(), *ns));
                }
            }
        }
    }
    // One paged list per (resource, namespace), a few at a time, each with the
    // retry policy of every other request.
    let found: Vec<Result<(&str, String, Option<Found>)>> = futures::stream::iter(pairs)
        .map(|(ar, ns)| async move {
            foreign_in(client, &ar, ns, instance, page_size.max(PAGE))
                .await
                .map(|found| (ns, ar.plural.clone(), found))
        })
        .buffer_unordered(LIST_CONCURRENCY)
        .collect()
        .await;
    let mut keep: BTreeMap<String, Held> = BTreeMap::new();
    for f in found {
        let (ns, plural, found) = f?;
        match (found, keep.get_mut(ns)) {
            (None, _) => {}
            // An object that is not the tool's is the stronger reason.
            (Some(Found::Object(object)), _) => {
                keep.insert(ns.to_owned(), Held::Foreign(object));
            }
            (Some(Found::Forbidden), Some(Held::Unreadable(resources))) => {
                resources.insert(plural);
            }
            (Some(Found::Forbidden), Some(Held::Foreign(_))) => {}
            (Some(Found::Forbidden), None) => {
                keep.insert(ns.to_owned(), Held::Unreadable(BTreeSet::from([plural])));
            }
        }
    }
    Ok(keep)
}

/// Lists sent at the same time while looking for foreign objects.
const LIST_CONCURRENCY: usize = 8;

/// What keeps a namespace from being proven empty.
enum Found {
    /// An object not managed by the instance (`Kind name`).
    Object(String),
    /// A list the caller may not send.
    Forbidden,
}

/// Whether `namespace` holds an object of `ar` this instance does not manage
/// (or cannot tell). Every page is read: a foreign object may be on any.
async fn foreign_in(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    instance: &str,
    page_size: u32,
) -> Result<Option<Found>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(page_size);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let what = format!("list {} in {namespace}", ar.plural);
        let page = match retry::kube(&what, || api.list(&params)).await {
            Ok(page) => page,
            // A resource the caller may not list cannot prove the namespace empty.
            Err(kube::Error::Api(s)) if s.code == 403 => return Ok(Some(Found::Forbidden)),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => return Ok(None),
            Err(source) => {
                return Err(Error::Kube {
                    action: "list",
                    kind: Kind::Namespace.as_str(),
                    namespace: namespace.to_owned(),
                    name: ar.plural.clone(),
                    source: Box::new(source),
                });
            }
        };
        if let Some(o) = page.items.iter().find(|o| is_foreign(o, ar, instance)) {
            let name = o.metadata.name.as_deref().unwrap_or_default();
            return Ok(Some(Found::Object(format!("{} {name}", ar.kind))));
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(None);
        }
    }
}

fn is_foreign(object: &DynamicObject, ar: &ApiResource, instance: &str) -> bool {
    let labels = object.metadata.labels.as_ref();
    if labels
        .and_then(|l| l.get(INSTANCE_LABEL))
        .map(String::as_str)
        == Some(instance)
    {
        return false;
    }
    let name = object.metadata.name.as_deref().unwrap_or_default();
    // Only the core group's kinds are made by Kubernetes itself.
    let core = |kind: Kind| ar.group.is_empty() && ar.kind == kind.as_str();
    let automatic = match () {
        () if core(Kind::ServiceAccount) => name == "default",
        () if core(Kind::ConfigMap) => name == "kube-root-ca.crt",
        () if core(Kind::Secret) => {
            object.data.get("type").and_then(Value::as_str)
                == Some("kubernetes.io/service-account-token")
        }
        _ => false,
    };
    !automatic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_core_kinds_kubernetes_makes_itself_are_not_foreign() {
        let object = |name: &str| {
            let mut o = DynamicObject::new(
                name,
                &ApiResource::erase::<k8s_openapi::api::core::v1::ServiceAccount>(&()),
            );
            o.metadata.namespace = Some("ns".to_owned());
            o
        };
        let core = ApiResource::erase::<k8s_openapi::api::core::v1::ServiceAccount>(&());
        assert!(!is_foreign(&object("default"), &core, "i"));
        assert!(is_foreign(&object("app"), &core, "i"));
        // A custom resource that happens to be called ServiceAccount is
        // something else someone keeps in the namespace.
        let custom = ApiResource {
            group: "example.com".to_owned(),
            version: "v1".to_owned(),
            api_version: "example.com/v1".to_owned(),
            kind: "ServiceAccount".to_owned(),
            plural: "serviceaccounts".to_owned(),
        };
        assert!(is_foreign(&object("default"), &custom, "i"));
    }
}
