//! Each planned change, written: IAM role calls, and the association's
//! (EKS Pod Identity) through [`super::pod_identity`].

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::pod_identity::{create_association, delete_association};
use super::{AwsError, Change, Clients, INLINE_POLICY, call_error};
use crate::config::Settings;
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY_LABEL, REPOSITORY_ANNOTATION};
use crate::plan::IamRolePlan;

pub(super) async fn write_change(
    clients: &Clients,
    settings: &Settings,
    role: &IamRolePlan,
    (namespace, sa): (&str, &str),
    change: &Change,
) -> Result<(), AwsError> {
    let iam = &clients.iam;
    let name = role.name.as_str();
    let json = |v: &Value| {
        serde_json::to_string(v).map_err(|e| AwsError::Document {
            role: name.to_owned(),
            message: e.to_string(),
        })
    };
    match change {
        Change::CreateRole => iam
            .create_role()
            .role_name(name)
            .path(&role.path)
            .assume_role_policy_document(json(&role.trust_policy)?)
            .max_session_duration(i32::try_from(role.max_session_duration).unwrap_or(3600))
            .set_permissions_boundary(role.permissions_boundary.clone())
            .description(format!(
                "GitHub Actions job identity of {} (runner-identity)",
                role.tags
                    .get(REPOSITORY_ANNOTATION)
                    .map_or("", String::as_str)
            ))
            .set_tags(Some(tags(name, &role.tags, None)?))
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("CreateRole", name, &e)),
        Change::UpdateTrustPolicy => iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(json(&role.trust_policy)?)
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("UpdateAssumeRolePolicy", name, &e)),
        Change::UpdateRole {
            max_session_duration,
        } => iam
            .update_role()
            .role_name(name)
            .max_session_duration(i32::try_from(*max_session_duration).unwrap_or(3600))
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("UpdateRole", name, &e)),
        Change::PutPermissionsBoundary { arn } => iam
            .put_role_permissions_boundary()
            .role_name(name)
            .permissions_boundary(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("PutRolePermissionsBoundary", name, &e)),
        Change::DeletePermissionsBoundary => iam
            .delete_role_permissions_boundary()
            .role_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("DeleteRolePermissionsBoundary", name, &e)),
        Change::TagRole { keys } => iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(tags(name, &role.tags, Some(&with_ownership(keys)))?))
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("TagRole", name, &e)),
        Change::AttachPolicy { arn } => iam
            .attach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("AttachRolePolicy", name, &e)),
        Change::DetachPolicy { arn } => detach(iam, name, arn).await,
        Change::PutInlinePolicy => {
            let doc = role
                .permissions_policy
                .as_ref()
                .map(json)
                .transpose()?
                .unwrap_or_default();
            iam.put_role_policy()
                .role_name(name)
                .policy_name(INLINE_POLICY)
                .policy_document(doc)
                .send()
                .await
                .map(drop)
                .map_err(|e| call_error("PutRolePolicy", name, &e))
        }
        Change::DeleteInlinePolicy => delete_inline(iam, name, INLINE_POLICY).await,
        Change::CreateAssociation { .. } => {
            create_association(clients, settings, role, (namespace, sa)).await
        }
        Change::UpdateAssociation { id, .. } => clients
            .eks
            .update_pod_identity_association()
            .cluster_name(&settings.config.cluster.name)
            .association_id(id)
            .role_arn(&role.arn)
            .disable_session_tags(false)
            .set_target_role_arn(role.target_role_arn.clone())
            .send()
            .await
            .map(drop)
            .map_err(|e| call_error("UpdatePodIdentityAssociation", name, &e)),
        Change::ReplaceAssociation { id, .. } => {
            delete_association(clients, settings, id).await?;
            create_association(clients, settings, role, (namespace, sa)).await
        }
        Change::DeleteRole | Change::DeleteAssociation { .. } => Err(AwsError::Document {
            role: name.to_owned(),
            message: format!("{change:?} is only used by prune"),
        }),
    }
}

pub(super) async fn detach(
    iam: &aws_sdk_iam::Client,
    name: &str,
    arn: &str,
) -> Result<(), AwsError> {
    iam.detach_role_policy()
        .role_name(name)
        .policy_arn(arn)
        .send()
        .await
        .map(drop)
        .map_err(|e| call_error("DetachRolePolicy", format!("{name} {arn}"), &e))
}

pub(super) async fn delete_inline(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: &str,
) -> Result<(), AwsError> {
    iam.delete_role_policy()
        .role_name(name)
        .policy_name(policy)
        .send()
        .await
        .map(drop)
        .map_err(|e| call_error("DeleteRolePolicy", format!("{name} {policy}"), &e))
}

pub(super) fn tags(
    role: &str,
    all: &BTreeMap<String, String>,
    only: Option<&Vec<String>>,
) -> Result<Vec<Tag>, AwsError> {
    all.iter()
        .filter(|(k, _)| only.is_none_or(|keys| keys.contains(k)))
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| AwsError::Document {
                    role: role.to_owned(),
                    message: format!("tag `{k}`: {e}"),
                })
        })
        .collect()
}

/// `keys` and the ownership tags: every TagRole stamps them (`bootstrap`'s
/// policy allows no TagRole without this instance's tag).
fn with_ownership(keys: &[String]) -> Vec<String> {
    let mut all = keys.to_vec();
    for key in [MANAGED_BY_LABEL, INSTANCE_LABEL] {
        if !all.iter().any(|k| k == key) {
            all.push(key.to_owned());
        }
    }
    all
}
