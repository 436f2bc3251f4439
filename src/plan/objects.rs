//! The planned Kubernetes objects of a repository, in apply order, and the
//! scale set's GitHub credentials Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Repository, Settings};
use crate::names::RepoNames;

use super::{RepoPlan, metadata};

/// The kinds runner-identity manages: the one list every stage uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Secret,
    NetworkPolicy,
    ConfigMap,
    RoleBinding,
    Role,
    ServiceAccount,
    ValidatingAdmissionPolicyBinding,
    ValidatingAdmissionPolicy,
    Namespace,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind is written as Kubernetes names it (`ServiceAccount`).
impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Kind {
    /// Every managed kind, in the order they are deleted (dependents first).
    pub const DELETE_ORDER: [Kind; 9] = [
        Kind::Secret,
        Kind::NetworkPolicy,
        Kind::ConfigMap,
        Kind::RoleBinding,
        Kind::Role,
        Kind::ServiceAccount,
        Kind::ValidatingAdmissionPolicyBinding,
        Kind::ValidatingAdmissionPolicy,
        Kind::Namespace,
    ];

    /// Kinds an API server may not serve (admissionregistration.k8s.io/v1
    /// ValidatingAdmissionPolicy needs Kubernetes ≥ 1.30): a list of one
    /// finds none there, and planning one is refused before any write.
    /// Kinds that constrain what runs in a namespace (Pod Security labels,
    /// the instance metadata policy, a shared namespace's admission policy):
    /// `bootstrap` prints them for the administrator, and the identity that
    /// runs `apply` only reads them. It may start pods where it manages
    /// Roles, so it must not be able to lift what confines those pods.
    pub fn administrator_owned(self) -> bool {
        matches!(
            self,
            Kind::Namespace
                | Kind::NetworkPolicy
                | Kind::ValidatingAdmissionPolicy
                | Kind::ValidatingAdmissionPolicyBinding
        )
    }

    pub fn may_be_unserved(self) -> bool {
        matches!(
            self,
            Kind::ValidatingAdmissionPolicy | Kind::ValidatingAdmissionPolicyBinding
        )
    }

    /// Whether objects of the kind live outside namespaces.
    pub fn cluster_scoped(self) -> bool {
        matches!(
            self,
            Kind::Namespace
                | Kind::ValidatingAdmissionPolicy
                | Kind::ValidatingAdmissionPolicyBinding
        )
    }

    /// The kind's name, as in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::ConfigMap => "ConfigMap",
            Kind::RoleBinding => "RoleBinding",
            Kind::Role => "Role",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::ValidatingAdmissionPolicy => "ValidatingAdmissionPolicy",
            Kind::ValidatingAdmissionPolicyBinding => "ValidatingAdmissionPolicyBinding",
            Kind::Namespace => "Namespace",
        }
    }

    /// The kind named `name`, if runner-identity manages it.
    pub fn named(name: &str) -> Option<Kind> {
        Kind::DELETE_ORDER.into_iter().find(|k| k.as_str() == name)
    }

    /// Its API group, version and plural, for dynamic requests.
    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::Secret => ApiResource::erase::<Secret>(&()),
            Kind::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
            Kind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            Kind::RoleBinding => ApiResource::erase::<RoleBinding>(&()),
            Kind::Role => ApiResource::erase::<Role>(&()),
            Kind::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
            Kind::ValidatingAdmissionPolicy => ApiResource::erase::<ValidatingAdmissionPolicy>(&()),
            Kind::ValidatingAdmissionPolicyBinding => {
                ApiResource::erase::<ValidatingAdmissionPolicyBinding>(&())
            }
            Kind::Namespace => ApiResource::erase::<Namespace>(&()),
        }
    }
}

/// A planned Kubernetes object, in apply order, borrowed from the plan (a
/// list of them copies nothing).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum Object<'a> {
    Namespace(&'a Namespace),
    ValidatingAdmissionPolicy(&'a ValidatingAdmissionPolicy),
    ValidatingAdmissionPolicyBinding(&'a ValidatingAdmissionPolicyBinding),
    NetworkPolicy(&'a NetworkPolicy),
    ServiceAccount(&'a ServiceAccount),
    Role(&'a Role),
    RoleBinding(&'a RoleBinding),
    ConfigMap(&'a ConfigMap),
    Secret(&'a Secret),
}

impl Object<'_> {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::ValidatingAdmissionPolicy(_) => Kind::ValidatingAdmissionPolicy,
            Object::ValidatingAdmissionPolicyBinding(_) => Kind::ValidatingAdmissionPolicyBinding,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
            Object::ServiceAccount(_) => Kind::ServiceAccount,
            Object::Role(_) => Kind::Role,
            Object::RoleBinding(_) => Kind::RoleBinding,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::ValidatingAdmissionPolicy(o) => &o.metadata,
            Object::ValidatingAdmissionPolicyBinding(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    /// The object as shown to people (plan, diff): a Secret's values are
    /// replaced by a placeholder; its content digest annotation stays.
    pub fn shown(&self) -> Value {
        redacted(serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// A JSON object with Secret values replaced (any other kind is unchanged).
pub fn redacted(mut v: Value) -> Value {
    if v.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in ["data", "stringData"] {
            if let Some(map) = v.get_mut(field).and_then(Value::as_object_mut) {
                for value in map.values_mut() {
                    *value = Value::String("(redacted)".into());
                }
            }
        }
    }
    v
}

/// Annotation with the SHA-256 of a managed Secret's content.
pub const CONTENT_DIGEST_ANNOTATION: &str = "runner-identity.dev/content-sha256";

/// The Secret `githubConfigSecret` names for one repository, holding `data`.
pub(super) fn github_secret(
    settings: &Settings,
    repo: &Repository,
    names: &RepoNames,
    data: &BTreeMap<String, String>,
) -> Secret {
    let mut meta = metadata(
        settings,
        repo,
        names,
        &settings.config.kubernetes.github_config_secret,
    );
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTENT_DIGEST_ANNOTATION.into(), content_digest(data));
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// SHA-256 of a Secret's keys and values (the annotation that tells a
/// rotation without reading the live values back).
fn content_digest(data: &BTreeMap<String, String>) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for (k, v) in data {
        hasher.update(k.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RepoPlan {
    /// The Kubernetes objects in dependency order (namespace first).
    pub fn objects(&self) -> Vec<Object<'_>> {
        let mut out = Vec::with_capacity(10);
        if let Some(ns) = &self.namespace {
            out.push(Object::Namespace(ns));
        }
        // A shared namespace's guard, before any runner exists there.
        for (policy, binding) in &self.admission_policy {
            out.push(Object::ValidatingAdmissionPolicy(policy));
            out.push(Object::ValidatingAdmissionPolicyBinding(binding));
        }
        // Before any identity exists, the node's role is out of reach.
        if let Some(policy) = &self.network_policy {
            out.push(Object::NetworkPolicy(policy));
        }
        if let Some(s) = &self.scale_set {
            out.push(Object::ServiceAccount(&s.runner_service_account));
        }
        out.push(Object::ServiceAccount(&self.job_service_account));
        if let Some(s) = &self.scale_set {
            out.push(Object::Role(&s.role));
            out.push(Object::RoleBinding(&s.role_binding));
            out.push(Object::ConfigMap(&s.config_map));
        }
        if let Some(secret) = &self.github_secret {
            out.push(Object::Secret(secret));
        }
        out
    }
}
