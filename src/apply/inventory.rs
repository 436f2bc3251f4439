//! The read half of apply: one paginated list per kind, once per run.
//!
//! Every object carrying `app.kubernetes.io/managed-by: runner-identity` and
//! this configuration's instance label is read, plus every namespace; the
//! names of other instances' objects only of the kinds where a planned name
//! is not among this instance's. The cost of a re-run grows with this
//! configuration, not with everything else on the cluster.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use serde_json::Value;

use super::dynamic_api;
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::plan::{Kind, Object};
use crate::retry;
use crate::{Error, Result};

/// Items per page of every list unless `--page-size` says otherwise:
/// kubectl's chunk size. A whole kind in one response would hold every
/// object's text, twice (bytes and parsed), at the same time.
pub const PAGE: u32 = 500;

/// One object's identity; the namespace is empty for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// The kinds runner-identity manages ([`Kind::DELETE_ORDER`]) with their
/// API resources.
pub(crate) fn kinds() -> [(Kind, ApiResource); Kind::DELETE_ORDER.len()] {
    Kind::DELETE_ORDER.map(|k| (k, k.api_resource()))
}

/// What the cluster holds of interest to one apply.
#[derive(Debug, Default)]
pub struct Inventory {
    instance: String,
    namespaces: BTreeSet<String>,
    /// The Pod Security `enforce` level of the namespaces that set one.
    enforce: BTreeMap<String, String>,
    managed: BTreeMap<ObjectKey, Box<str>>,
    /// Objects runner-identity manages for another configuration instance.
    other_instances: BTreeSet<ObjectKey>,
    /// List requests sent to build this inventory.
    pub requests: usize,
    /// Kinds the API server does not serve ([`Kind::may_be_unserved`]).
    pub unserved: BTreeSet<Kind>,
    /// Kinds the caller may not list (a least-privilege identity:
    /// `bootstrap` grants no right on Secrets when no credentials are
    /// planned): nothing of them is managed or pruned. A planned kind among
    /// them is an error ([`Inventory::require`]).
    pub unseen: BTreeSet<Kind>,
    /// Why each unseen kind could not be listed.
    refusals: BTreeMap<Kind, Error>,
}

impl Inventory {
    /// Lists this instance's objects, kind by kind, and every namespace, in
    /// pages of `page_size`, [`LIST_CONCURRENCY`] lists at a time. Owns what
    /// it needs, so that it can run while the plan is computed.
    pub async fn load(client: Client, instance: String, page_size: u32) -> Result<Inventory> {
        let mut inv = Inventory {
            instance,
            ..Default::default()
        };
        // One list per kind of this instance's objects; the namespace list
        // holds every namespace, whoever manages it. The other instances'
        // objects are read only where a planned name may be one of them
        // ([`Inventory::load_others`]).
        // Secrets are listed namespace by namespace (below): a list returns
        // their data, so the least-privilege identity may list them only
        // where it writes them.
        let cluster_wide = Kind::DELETE_ORDER
            .into_iter()
            .filter(|k| *k != Kind::Secret)
            .enumerate();
        let mut listed: Vec<(usize, Kind, Result<Found>, usize)> =
            futures::stream::iter(cluster_wide)
                .map(|(i, kind): (usize, Kind)| {
                    let (client, instance) = (client.clone(), inv.instance.clone());
                    async move {
                        let mut requests = 0;
                        let found =
                            list_kind(&client, kind, None, &instance, page_size, &mut requests)
                                .await;
                        (i, kind, found, requests)
                    }
                })
                .buffer_unordered(LIST_CONCURRENCY)
                .collect()
                .await;
        // Decided in the order of the kinds, whichever answered first.
        listed.sort_by_key(|(i, ..)| *i);
        for (_, kind, found, requests) in listed {
            inv.requests += requests;
            match found {
                Err(e) if not_served(kind, &e) => {
                    inv.unserved.insert(kind);
                }
                // Every namespace's name is needed: its list must succeed.
                Err(e) if kind != Kind::Namespace && forbidden(&e) => {
                    inv.unseen.insert(kind);
                    inv.refusals.insert(kind, e);
                }
                Err(e) => return Err(e),
                Ok(found) => inv.add(found),
            }
        }
        Ok(inv)
    }

    fn add(&mut self, found: Found) {
        self.enforce.extend(found.enforce);
        self.managed.extend(found.managed);
        self.other_instances.extend(found.others);
        self.namespaces.extend(found.namespaces);
    }

    /// Lists this instance's Secrets: in one list when the caller may list
    /// them in every namespace (an administrator), else namespace by
    /// namespace (the identity `bootstrap` prints may list them only where
    /// it writes them) — in each of `planned` that exists and, with `all`
    /// (a prune), each of this instance's namespaces. A namespace where the
    /// caller may not list them makes Secrets unseen (an error only when a
    /// Secret is planned, [`Inventory::require`]).
    pub async fn load_secrets(
        &mut self,
        client: &Client,
        planned: &BTreeSet<String>,
        all: bool,
        page_size: u32,
    ) -> Result<()> {
        let mut requests = 0;
        let everywhere = list_kind(
            client,
            Kind::Secret,
            None,
            &self.instance,
            page_size,
            &mut requests,
        )
        .await;
        self.requests += requests;
        match everywhere {
            Ok(found) => {
                self.add(found);
                return Ok(());
            }
            Err(e) if forbidden(&e) => {}
            Err(e) => return Err(e),
        }
        let ours: BTreeSet<String> = self
            .managed
            .keys()
            .filter(|key| all && key.kind == Kind::Namespace)
            .map(|key| key.name.clone())
            .chain(
                planned
                    .iter()
                    .filter(|n| self.namespaces.contains(*n))
                    .cloned(),
            )
            .collect();
        let listed: Vec<(Result<Found>, usize)> = futures::stream::iter(ours)
            .map(|namespace| {
                let (client, instance) = (client.clone(), self.instance.clone());
                async move {
                    let mut requests = 0;
                    let found = list_kind(
                        &client,
                        Kind::Secret,
                        Some(&namespace),
                        &instance,
                        page_size,
                        &mut requests,
                    )
                    .await;
                    (found, requests)
                }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let kind = Kind::Secret;
        for (found, requests) in listed {
            self.requests += requests;
            match found {
                Err(e) if forbidden(&e) => {
                    self.unseen.insert(kind);
                    self.refusals.entry(kind).or_insert(e);
                }
                // Deleted since the namespace list: nothing of it to manage.
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
                Ok(found) => self.add(found),
            }
        }
        Ok(())
    }

    /// Lists, metadata only, the objects other configuration instances
    /// manage of each of `kinds` (the kinds of planned objects the first
    /// lists did not find): a planned name among them is a conflict, found
    /// with one request per kind and page rather than one per object.
    pub async fn load_others(
        &mut self,
        client: &Client,
        kinds: &BTreeSet<Kind>,
        page_size: u32,
    ) -> Result<()> {
        let others = format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}!={}",
            self.instance
        );
        let wanted: Vec<Kind> = kinds
            .iter()
            .filter(|k| !self.unserved.contains(*k) && !self.unseen.contains(*k))
            .copied()
            // Namespaces are all listed; Secrets are never listed across
            // namespaces (their data): an existence check reads each name.
            .filter(|k| !matches!(k, Kind::Namespace | Kind::Secret))
            .collect();
        let listed: Vec<(Result<Vec<ObjectKey>>, usize)> = futures::stream::iter(wanted)
            .map(|kind: Kind| {
                let (client, others) = (client.clone(), others.clone());
                async move {
                    let mut requests = 0;
                    // Metadata only, so pages are never smaller than 500 items.
                    let keys =
                        list_metadata(&client, kind, &others, page_size.max(PAGE), &mut requests)
                            .await;
                    (keys, requests)
                }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        for (keys, requests) in listed {
            self.requests += requests;
            self.other_instances.extend(keys?);
        }
        Ok(())
    }

    /// Fails with the refusal of the first `planned` kind the caller may
    /// not list: an apply cannot tell what of it exists.
    pub fn require(&mut self, planned: &BTreeSet<Kind>) -> Result<()> {
        match planned.iter().find_map(|kind| self.refusals.remove(kind)) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// An inventory of namespaces alone (unit tests).
    #[cfg(test)]
    pub(crate) fn with_namespaces<const N: usize>(
        instance: &str,
        namespaces: [&str; N],
    ) -> Inventory {
        Inventory {
            instance: instance.to_owned(),
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        }
    }

    /// The instance this apply works for.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The Pod Security level the namespace enforces, if any.
    pub fn pod_security_enforced(&self, namespace: &str) -> Option<&str> {
        self.enforce.get(namespace).map(String::as_str)
    }

    /// Whether the namespace exists (managed or not).
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// The namespaces this instance manages an object in.
    pub fn namespaces_with_objects(&self) -> BTreeSet<&str> {
        self.managed
            .keys()
            .map(|key| key.namespace.as_str())
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// Whether this instance manages an object of that key.
    pub fn is_managed(&self, key: &ObjectKey) -> bool {
        self.managed.contains_key(key)
    }

    /// The live managed object of that key, if any (parsed on each call).
    pub fn managed(&self, key: &ObjectKey) -> Option<Value> {
        self.managed
            .get(key)
            .and_then(|text| serde_json::from_str(text).ok())
    }

    /// Whether runner-identity manages an object of that key for another
    /// configuration instance.
    pub fn of_other_instance(&self, key: &ObjectKey) -> bool {
        self.other_instances.contains(key)
    }

    /// The managed objects of this instance whose key `keep` accepts, parsed.
    pub fn of_instance(&self, keep: impl Fn(&ObjectKey) -> bool) -> Vec<(&ObjectKey, Value)> {
        self.managed
            .iter()
            .filter(|(k, _)| keep(k))
            .filter_map(|(k, text)| Some((k, serde_json::from_str::<Value>(text).ok()?)))
            .filter(|(_, v)| instance_of(v) == Some(self.instance.as_str()))
            .collect()
    }
}

/// The label of a namespace's enforced Pod Security level.
pub const POD_SECURITY_ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// Lists an inventory sends at the same time.
const LIST_CONCURRENCY: usize = 4;

/// What the list of one kind found.
#[derive(Default)]
struct Found {
    /// This instance's objects.
    managed: Vec<(ObjectKey, Box<str>)>,
    /// Objects runner-identity manages for other instances.
    others: Vec<ObjectKey>,
    /// Every namespace's name (the namespace list only).
    namespaces: Vec<String>,
    /// Pod Security `enforce` levels (the namespace list only).
    enforce: Vec<(String, String)>,
}

/// Lists the objects of a kind that this instance manages (namespaces: all
/// of them, sorted into this instance's, the others', and the rest), in
/// every namespace or in `namespace`.
async fn list_kind(
    client: &Client,
    kind: Kind,
    namespace: Option<&str>,
    instance: &str,
    page_size: u32,
    requests: &mut usize,
) -> Result<Found> {
    let ar = &kind.api_resource();
    let ours = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}={instance}");
    let selector = (kind != Kind::Namespace).then_some(ours.as_str());
    let mut found = Found::default();
    let scope = Scope {
        namespace,
        selector,
    };
    list_all(client, kind, scope, page_size, requests, |item| {
        if kind == Kind::Namespace {
            let name = item.metadata.name.clone().unwrap_or_default();
            if let Some(level) = item
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_SECURITY_ENFORCE))
            {
                found.enforce.push((name.clone(), level.clone()));
            }
            found.namespaces.push(name);
        }
        let labels = item.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        if label(MANAGED_BY_LABEL) != Some(MANAGED_BY) {
            return Ok(());
        }
        if label(INSTANCE_LABEL) == Some(instance) {
            found.managed.push(managed_text(kind, ar, item)?);
        } else {
            found.others.push(ObjectKey {
                kind,
                namespace: item.metadata.namespace.unwrap_or_default(),
                name: item.metadata.name.unwrap_or_default(),
            });
        }
        Ok(())
    })
    .await?;
    Ok(found)
}

/// A listed object of this instance, keyed, as compact JSON text (a parsed
/// value is several times larger; it is parsed again when its repository
/// is compared).
fn managed_text(
    kind: Kind,
    ar: &ApiResource,
    item: DynamicObject,
) -> Result<(ObjectKey, Box<str>)> {
    let namespace = item.metadata.namespace.clone().unwrap_or_default();
    let name = item.metadata.name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(&item).map_err(|e| Error::Serialize {
        what: format!("{kind} {name}"),
        message: e.to_string(),
    })?;
    // List items carry no apiVersion/kind; the planned objects do.
    value["apiVersion"] = Value::String(ar.api_version.clone());
    value["kind"] = Value::String(kind.as_str().to_owned());
    Ok((
        ObjectKey {
            kind,
            namespace,
            name,
        },
        value.to_string().into_boxed_str(),
    ))
}

/// Whether `error` is a 404 on listing a kind the server may not serve.
fn not_served(kind: Kind, error: &Error) -> bool {
    kind.may_be_unserved()
        && matches!(error, Error::Kube { source, .. }
            if matches!(source.as_ref(), kube::Error::Api(status) if status.code == 404))
}

/// Whether `error` is a 404 (a namespace deleted since it was listed).
fn not_found(error: &Error) -> bool {
    matches!(error, Error::Kube { source, .. }
        if matches!(source.as_ref(), kube::Error::Api(status) if status.code == 404))
}

/// Whether `error` is a 403 on a list.
fn forbidden(error: &Error) -> bool {
    matches!(error, Error::Kube { source, .. }
        if matches!(source.as_ref(), kube::Error::Api(status) if status.code == 403))
}

/// The parameters of one list request: always a consistent read (no
/// `resourceVersion`), never `resourceVersion=0`. A `0` read is served from
/// the API server's watch cache, which may lag behind what was just written:
/// an object the previous apply created could be missing from the list, be
/// found by the existence GET, and be refused as someone else's, and a
/// namespace missing from a stale list would skip the existence checks that
/// keep unmanaged objects from being written over. (API servers with
/// consistent reads from the cache, Kubernetes 1.31 and later, still answer
/// these from memory.) `limit` + `continue` walk every page of the same
/// snapshot.
fn list_params(selector: Option<&str>, page_size: u32, token: Option<&str>) -> ListParams {
    let mut params = ListParams::default().limit(page_size);
    if let Some(s) = selector {
        params = params.labels(s);
    }
    if let Some(t) = token {
        params = params.continue_token(t);
    }
    params
}

/// Where a list looks: one namespace or all, and which labels it selects.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scope<'a> {
    pub(crate) namespace: Option<&'a str>,
    pub(crate) selector: Option<&'a str>,
}

/// Every object of a kind in `scope`, page by page, each handed to `each`
/// as it arrives (a page is dropped before the next).
pub(crate) async fn list_all(
    client: &Client,
    kind: Kind,
    scope: Scope<'_>,
    page_size: u32,
    requests: &mut usize,
    mut each: impl FnMut(DynamicObject) -> Result<()>,
) -> Result<()> {
    let Scope {
        namespace,
        selector,
    } = scope;
    let ar = kind.api_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let mut token: Option<String> = None;
    loop {
        let params = list_params(selector, page_size, token.as_deref());
        *requests += 1;
        let page = retry::kube(&format!("list {kind}"), || api.list(&params))
            .await
            .map_err(|source| Error::Kube {
                action: "list",
                kind: kind.as_str(),
                namespace: namespace.unwrap_or_default().to_owned(),
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

/// The key of every object of a kind a label selector picks (metadata-only
/// lists, page by page).
async fn list_metadata(
    client: &Client,
    kind: Kind,
    selector: &str,
    page_size: u32,
    requests: &mut usize,
) -> Result<Vec<ObjectKey>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let params = list_params(Some(selector), page_size, token.as_deref());
        *requests += 1;
        let page = retry::kube(&format!("list {kind}"), || api.list_metadata(&params))
            .await
            .map_err(|source| Error::Kube {
                action: "list",
                kind: kind.as_str(),
                namespace: String::new(),
                name: selector.to_owned(),
                source: Box::new(source),
            })?;
        out.extend(page.items.into_iter().map(|item| ObjectKey {
            kind,
            namespace: item.metadata.namespace.unwrap_or_default(),
            name: item.metadata.name.unwrap_or_default(),
        }));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Whether the object exists (one GET of its metadata).
pub(crate) async fn exists(client: &Client, key: &ObjectKey) -> Result<bool> {
    let ObjectKey {
        kind,
        namespace,
        name,
    } = key;
    let api = dynamic_api(client, &kind.api_resource(), namespace);
    let found = retry::kube(&format!("read {kind} {name}"), || {
        api.get_metadata_opt(name)
    })
    .await
    .map_err(|source| Error::Kube {
        action: "read",
        kind: kind.as_str(),
        namespace: namespace.clone(),
        name: name.clone(),
        source: Box::new(source),
    })?;
    Ok(found.is_some())
}

/// The key of a planned object.
pub fn key_of(object: &Object) -> ObjectKey {
    let meta = object.metadata();
    ObjectKey {
        kind: object.kind(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
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
        for page_size in [PAGE, 2] {
            let first = list_params(Some("a=b"), page_size, None);
            assert_eq!(first.resource_version, None, "{page_size:?}");
            assert_eq!(first.continue_token, None);
        }
        for page_size in [PAGE, 2] {
            let next = list_params(Some("a=b"), page_size, Some("tok"));
            assert_eq!(next.resource_version, None, "{page_size:?}");
            assert_eq!(next.continue_token.as_deref(), Some("tok"));
            assert_eq!(next.label_selector.as_deref(), Some("a=b"));
        }
        assert_eq!(list_params(None, 2, None).limit, Some(2));
    }
}
