//! Apply: a [`Plan`] in, its objects server-side applied to the cluster out.
//!
//! One field manager for everything ([`FIELD_MANAGER`]), one helper that builds
//! the [`PatchParams`], explicit scope (`Api::namespaced` with the namespace
//! from the plan). This is the foundation's apply: every planned object, in
//! dependency order. Read-before-write, pruning and adoption build on it.

use std::fmt::Debug;
use std::path::Path;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, instrument};

use crate::plan::{Object, Plan};
use crate::{Error, Result};

/// The one field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "runner-identity";

/// The patch parameters of every server-side apply.
pub fn patch_params(dry_run: bool) -> PatchParams {
    let params = PatchParams::apply(FIELD_MANAGER);
    if dry_run { params.dry_run() } else { params }
}

/// Builds a client following kubectl's conventions: an explicit kubeconfig
/// and/or context when given, else `KUBECONFIG`, `~/.kube/config`, then the
/// in-cluster configuration.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client> {
    let kube_err = |message: String| Error::KubeConfig { message };
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| kube_err(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| kube_err(format!("{}: {e}", path.display())))?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| kube_err(e.to_string()))?,
        None => Config::infer().await.map_err(|e| kube_err(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| kube_err(e.to_string()))
}

/// What applying one object did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// False when a dry run could not send the object to the API server
    /// because its namespace does not exist yet (a server-side dry run
    /// creates no namespace for the objects after it).
    pub server_validated: bool,
}

/// Server-side applies every object of `plan`, repository by repository.
#[instrument(skip(client, plan), fields(repositories = plan.repositories.len()))]
pub async fn apply_plan(client: &Client, plan: &Plan, dry_run: bool) -> Result<Vec<Applied>> {
    let mut applied = Vec::new();
    for repo in &plan.repositories {
        let namespace_missing = dry_run && repo.namespace.is_some() && {
            let api: Api<Namespace> = Api::all(client.clone());
            let ns = &repo.names.namespace;
            api.get_metadata_opt(ns)
                .await
                .map_err(|source| Error::Kube {
                    action: "read",
                    kind: "Namespace",
                    namespace: String::new(),
                    name: ns.clone(),
                    source: Box::new(source),
                })?
                .is_none()
        };
        for object in repo.objects() {
            if namespace_missing && !matches!(object, Object::Namespace(_)) {
                applied.push(object.unvalidated());
                continue;
            }
            applied.push(apply_object(client, &object, dry_run).await?);
        }
    }
    Ok(applied)
}

/// Server-side applies one planned object.
pub async fn apply_object(client: &Client, object: &Object, dry_run: bool) -> Result<Applied> {
    let kind = object.kind();
    match object {
        Object::Namespace(ns) => apply_in(Api::all(client.clone()), ns, kind, dry_run).await,
        Object::ServiceAccount(o) => apply_namespaced(client, o, kind, dry_run).await,
        Object::Role(o) => apply_namespaced(client, o, kind, dry_run).await,
        Object::RoleBinding(o) => apply_namespaced(client, o, kind, dry_run).await,
        Object::ConfigMap(o) => apply_namespaced(client, o, kind, dry_run).await,
    }
}

async fn apply_namespaced<K>(
    client: &Client,
    object: &K,
    kind: &'static str,
    dry_run: bool,
) -> Result<Applied>
where
    K: Resource<Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    let namespace = object.namespace().unwrap_or_default();
    apply_in(
        Api::namespaced(client.clone(), &namespace),
        object,
        kind,
        dry_run,
    )
    .await
}

async fn apply_in<K>(api: Api<K>, object: &K, kind: &'static str, dry_run: bool) -> Result<Applied>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    debug!(kind, %namespace, %name, dry_run, "server-side apply");
    api.patch(&name, &patch_params(dry_run), &Patch::Apply(object))
        .await
        .map_err(|source| Error::Kube {
            action: "server-side apply of",
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            source: Box::new(source),
        })?;
    Ok(Applied {
        kind,
        namespace,
        name,
        server_validated: true,
    })
}
