//! The read half of apply: one labelled, paginated list per kind, once per run.
//!
//! Every object carrying `app.kubernetes.io/managed-by: runner-identity` and
//! this configuration's instance label is read, plus the names of all
//! namespaces; the cost of a re-run grows with this configuration, not with
//! everything else on the cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use serde_json::Value;

use super::dynamic_api;
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::plan::{Kind, Object};
use crate::retry;
use crate::{Error, Result};

/// Items per page where `--page-size` does not apply (prune's scan of a
/// namespace) or is too small to pay (metadata-only lists): kubectl's chunk size.
pub(crate) const METADATA_PAGE: u32 = 500;

/// `(kind, namespace, name)`; the namespace is empty for namespaces.
pub type Key = (&'static str, String, String);

/// The kinds runner-identity manages ([`Kind::DELETE_ORDER`]) with their
/// API resources.
pub(crate) fn kinds() -> [(&'static str, ApiResource); Kind::DELETE_ORDER.len()] {
    Kind::DELETE_ORDER.map(|k| (k.as_str(), k.api_resource()))
}

/// What the cluster holds of interest to one apply.
#[derive(Debug, Default)]
pub struct Inventory {
    instance: String,
    namespaces: BTreeSet<String>,
    managed: BTreeMap<Key, Box<str>>,
    /// Objects runner-identity manages for another configuration instance.
    other_instances: BTreeSet<Key>,
    /// List requests sent to build this inventory.
    pub requests: usize,
    /// Kinds the API server does not serve ([`Kind::may_be_unserved`]).
    pub unserved: BTreeSet<&'static str>,
    /// Kinds the plan holds none of that the caller may not list (a
    /// least-privilege identity: `bootstrap` grants no right on Secrets
    /// when no credentials are planned): nothing of them is managed or pruned.
    pub unseen: BTreeSet<&'static str>,
}

impl Inventory {
    /// Lists namespaces and every managed object; `page_size` pages the
    /// lists (`limit` + `continue`) instead of one response per kind.
    pub async fn load(
        client: &Client,
        instance: &str,
        page_size: Option<u32>,
        planned: &BTreeSet<&'static str>,
    ) -> Result<Inventory> {
        let mut inv = Inventory {
            instance: instance.to_owned(),
            ..Default::default()
        };
        // Only this instance's objects: another configuration's object of a
        // planned name is found by the existence check and refused.
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}={instance}");
        for (kind, ar) in kinds() {
            let api_version = ar.api_version.clone();
            let managed = &mut inv.managed;
            let listed = list_all(
                client,
                &ar,
                kind,
                Some(&selector),
                page_size,
                &mut inv.requests,
                |item| {
                    let namespace = item.metadata.namespace.clone().unwrap_or_default();
                    let name = item.metadata.name.clone().unwrap_or_default();
                    let mut value = serde_json::to_value(&item).map_err(|e| Error::Serialize {
                        what: format!("{kind} {name}"),
                        message: e.to_string(),
                    })?;
                    // List items carry no apiVersion/kind; the planned objects do.
                    value["apiVersion"] = Value::String(api_version.clone());
                    value["kind"] = Value::String(kind.to_owned());
                    // Kept as compact text (a parsed value is several times
                    // larger) and parsed again when its repository is compared.
                    managed.insert((kind, namespace, name), value.to_string().into_boxed_str());
                    Ok(())
                },
            )
            .await;
            match listed {
                Err(e) if not_served(kind, &e) => {
                    inv.unserved.insert(kind);
                }
                Err(e) if !planned.contains(kind) && forbidden(&e) => {
                    inv.unseen.insert(kind);
                }
                other => other?,
            }
        }
        // Objects of other instances, metadata only: a planned name among them
        // is a conflict, found without a request per object.
        let others = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}!={instance}");
        for (kind, ar) in kinds() {
            if inv.unserved.contains(kind) || inv.unseen.contains(kind) {
                continue;
            }
            inv.other_instances.extend(
                // Metadata only, so pages are never smaller than 500 items.
                list_metadata(
                    client,
                    &ar,
                    kind,
                    &others,
                    page_size.map(|n| n.max(METADATA_PAGE)),
                    &mut inv.requests,
                )
                .await?
                .into_iter()
                .map(|(namespace, name)| (kind, namespace, name)),
            );
        }
        inv.namespaces = namespace_names(client, page_size, &mut inv.requests).await?;
        Ok(inv)
    }

    /// The instance this apply works for.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether the namespace exists (managed or not).
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// Whether this instance manages an object of that key.
    pub fn is_managed(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.managed
            .contains_key(&(kind_static(kind), namespace.to_owned(), name.to_owned()))
    }

    /// The live managed object of that key, if any (parsed on each call).
    pub fn managed(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.managed
            .get(&(kind_static(kind), namespace.to_owned(), name.to_owned()))
            .and_then(|text| serde_json::from_str(text).ok())
    }

    /// Whether runner-identity manages an object of that key for another
    /// configuration instance.
    pub fn of_other_instance(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.other_instances
            .contains(&(kind_static(kind), namespace.to_owned(), name.to_owned()))
    }

    /// The managed objects of this instance whose key `keep` accepts, parsed.
    pub fn of_instance(&self, keep: impl Fn(&Key) -> bool) -> Vec<(&Key, Value)> {
        self.managed
            .iter()
            .filter(|(k, _)| keep(k))
            .filter_map(|(k, text)| Some((k, serde_json::from_str::<Value>(text).ok()?)))
            .filter(|(_, v)| instance_of(v) == Some(self.instance.as_str()))
            .collect()
    }
}

/// Whether `error` is a 404 on listing a kind the server may not serve.
fn not_served(kind: &str, error: &Error) -> bool {
    Kind::named(kind).is_some_and(Kind::may_be_unserved)
        && matches!(error, Error::Kube { source, .. }
            if matches!(source.as_ref(), kube::Error::Api(status) if status.code == 404))
}

/// Whether `error` is a 403 on a list.
fn forbidden(error: &Error) -> bool {
    matches!(error, Error::Kube { source, .. }
        if matches!(source.as_ref(), kube::Error::Api(status) if status.code == 403))
}

fn kind_static(kind: &str) -> &'static str {
    Kind::named(kind).map_or("", Kind::as_str)
}

/// The parameters of one list request: always a consistent read (no
/// `resourceVersion`), never `resourceVersion=0`. A `0` read is served from
/// the API server's watch cache, which may lag behind what was just written:
/// an object the previous apply created could be missing from the list, be
/// found by the existence GET, and be refused as someone else's, and a
/// namespace missing from a stale list would skip the existence checks that
/// keep unmanaged objects from being written over. (API servers with
/// consistent reads from the cache, Kubernetes 1.31 and later, still answer
/// these from memory.) With a page size, or when a server pages anyway,
/// `limit` + `continue` walk every page of the same snapshot.
fn list_params(selector: Option<&str>, page_size: Option<u32>, token: Option<&str>) -> ListParams {
    let mut params = match page_size {
        Some(n) => ListParams::default().limit(n),
        None => ListParams::default(),
    };
    if let Some(s) = selector {
        params = params.labels(s);
    }
    if let Some(t) = token {
        params = params.continue_token(t);
    }
    params
}

/// Every object of a kind (optionally label-selected), page by page, each
/// handed to `each` as it arrives (a page is dropped before the next).
pub(crate) async fn list_all(
    client: &Client,
    ar: &ApiResource,
    kind: &'static str,
    selector: Option<&str>,
    page_size: Option<u32>,
    requests: &mut usize,
    mut each: impl FnMut(DynamicObject) -> Result<()>,
) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let mut token: Option<String> = None;
    loop {
        let params = list_params(selector, page_size, token.as_deref());
        *requests += 1;
        let page = retry::kube(&format!("list {kind}"), || api.list(&params))
            .await
            .map_err(|source| Error::Kube {
                action: "list",
                kind,
                namespace: String::new(),
                name: selector.unwrap_or("*").to_owned(),
                source: Box::new(source),
            })?;
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        for mut item in page.items {
            // managedFields are most of a listed object's size and never compared.
            item.metadata.managed_fields = None;
            each(item)?;
        }
        if token.is_none() {
            return Ok(());
        }
    }
}

/// `(namespace, name)` of every object of a kind a label selector picks
/// (metadata-only lists, page by page).
async fn list_metadata(
    client: &Client,
    ar: &ApiResource,
    kind: &'static str,
    selector: &str,
    page_size: Option<u32>,
    requests: &mut usize,
) -> Result<Vec<(String, String)>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let params = list_params(Some(selector), page_size, token.as_deref());
        *requests += 1;
        let page = retry::kube(&format!("list {kind}"), || api.list_metadata(&params))
            .await
            .map_err(|source| Error::Kube {
                action: "list",
                kind,
                namespace: String::new(),
                name: selector.to_owned(),
                source: Box::new(source),
            })?;
        out.extend(page.items.into_iter().map(|item| {
            (
                item.metadata.namespace.unwrap_or_default(),
                item.metadata.name.unwrap_or_default(),
            )
        }));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The names of all namespaces (metadata-only lists, page by page).
async fn namespace_names(
    client: &Client,
    page_size: Option<u32>,
    requests: &mut usize,
) -> Result<BTreeSet<String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut names = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let params = list_params(None, page_size, token.as_deref());
        *requests += 1;
        let page = retry::kube("list Namespace", || api.list_metadata(&params))
            .await
            .map_err(|source| Error::Kube {
                action: "list",
                kind: "Namespace",
                namespace: String::new(),
                name: "*".into(),
                source: Box::new(source),
            })?;
        names.extend(page.items.into_iter().filter_map(|n| n.metadata.name));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(names);
        }
    }
}

/// Whether an object of that name exists (one GET of its metadata).
pub(crate) async fn exists(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    name: &str,
) -> Result<bool> {
    let api = dynamic_api(client, ar, namespace);
    let found = retry::kube(&format!("read {} {name}", ar.kind), || {
        api.get_metadata_opt(name)
    })
    .await
    .map_err(|source| Error::Kube {
        action: "read",
        kind: kind_static(&ar.kind),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source: Box::new(source),
    })?;
    Ok(found.is_some())
}

/// The key of a planned object.
pub fn key_of(object: &Object) -> Key {
    let meta = object.metadata();
    (
        object.kind().as_str(),
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The instance label of a live object.
pub fn instance_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(INSTANCE_LABEL))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_is_a_consistent_read_and_pages_carry_the_token() {
        // A resourceVersion=0 read may be stale (the watch cache): a CI run
        // saw the ConfigMap of the apply just before missing from the list.
        for page_size in [None, Some(2)] {
            let first = list_params(Some("a=b"), page_size, None);
            assert_eq!(first.resource_version, None, "{page_size:?}");
            assert_eq!(first.continue_token, None);
        }
        for page_size in [None, Some(2)] {
            let next = list_params(Some("a=b"), page_size, Some("tok"));
            assert_eq!(next.resource_version, None, "{page_size:?}");
            assert_eq!(next.continue_token.as_deref(), Some("tok"));
            assert_eq!(next.label_selector.as_deref(), Some("a=b"));
        }
        assert_eq!(list_params(None, Some(2), None).limit, Some(2));
    }
}
