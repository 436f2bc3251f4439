//! The attributes of a SelfSubjectAccessReview. A leaf: `apply`, `verify`
//! and `doctor` each ask the API server what an identity may do.

use k8s_openapi::api::authorization::v1::ResourceAttributes;

/// The resource of an access review (`subresource` empty for none).
pub fn resource_attributes(
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    subresource: &str,
    verb: &str,
) -> ResourceAttributes {
    ResourceAttributes {
        namespace: namespace.map(str::to_owned),
        group: Some(group.to_owned()),
        resource: Some(resource.to_owned()),
        subresource: (!subresource.is_empty()).then(|| subresource.to_owned()),
        verb: Some(verb.to_owned()),
        ..Default::default()
    }
}
