//! IAM: the OIDC provider check, reading a role, and writing each change.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::Tag;
use serde_json::Value;
use tracing::info;

use super::diff::role_changes;
use super::pod_identity::{association_changes, eks_tag_key};
use super::{
    AwsError, AwsOptions, Change, Clients, INLINE_POLICY, RoleResult, TargetTrust, call_error,
};
use crate::config::{Mode, Settings};
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, REPOSITORY_ANNOTATION};
use crate::outcome::Action;
use crate::plan::IamRolePlan;

/// What IAM holds for one role.
#[derive(Debug, Default)]
pub(super) struct LiveRole {
    pub(super) trust: Option<Value>,
    pub(super) max_session: Option<i32>,
    pub(super) boundary: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) attached: BTreeSet<String>,
    pub(super) inline: Option<Value>,
}

/// The IRSA OIDC provider of the cluster's issuer must exist in the account.
pub(super) async fn check_oidc_provider(clients: &Clients, settings: &Settings) -> Option<String> {
    let cfg = &settings.config;
    if cfg.aws.mode != Mode::Irsa {
        return None;
    }
    let issuer = settings.issuer_host_path.as_deref()?;
    let arn = format!(
        "arn:{}:iam::{}:oidc-provider/{issuer}",
        cfg.aws.partition.as_str(),
        cfg.aws.account_id
    );
    match clients.iam.list_open_id_connect_providers().send().await {
        Ok(out)
            if out
                .open_id_connect_provider_list()
                .iter()
                .any(|p| p.arn() == Some(arn.as_str())) =>
        {
            None
        }
        Ok(_) => Some(format!(
            "the IAM OIDC provider {arn} does not exist, so no job can assume its role; create it with \
             `eksctl utils associate-iam-oidc-provider --cluster {} --approve`, or \
             `aws iam create-open-id-connect-provider --url https://{issuer} --client-id-list {}`",
            cfg.cluster.name, cfg.kubernetes.irsa.audience
        )),
        Err(e) => Some(format!(
            "cannot list IAM OIDC providers: {}",
            error_text(&e)
        )),
    }
}

/// Every role of the account, by name, with its path (`ListRoles`, paged).
pub(super) async fn role_paths(
    iam: &aws_sdk_iam::Client,
) -> Result<BTreeMap<String, String>, AwsError> {
    let mut out = BTreeMap::new();
    let mut pages = iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("ListRoles", "*", &e))?;
        for role in page.roles() {
            out.insert(role.role_name().to_owned(), role.path().to_owned());
        }
    }
    Ok(out)
}

/// Converges one role; `known_path` is where the account's role list found
/// a role of its name (`None`: there is none).
#[allow(clippy::too_many_arguments)]
pub(super) async fn reconcile_role(
    clients: &Clients,
    settings: &Settings,
    repository: &str,
    role: &IamRolePlan,
    known_path: Option<&str>,
    identity: (&str, &str),
    options: &AwsOptions,
    instance: &str,
    writes: &mut usize,
) -> RoleResult {
    let mut result = RoleResult {
        repository: repository.to_owned(),
        role: role.name.clone(),
        action: Action::Unchanged,
        changes: Vec::new(),
        error: None,
        target_trust: None,
    };
    let outcome = async {
        let live = match known_path {
            None => None,
            Some(path) if path != role.path => {
                result.action = Action::Conflict;
                return Err(AwsError::OtherPath {
                    role: role.name.clone(),
                    live: path.to_owned(),
                    planned: role.path.clone(),
                });
            }
            Some(_) => read_role(&clients.iam, &role.name).await?,
        };
        if let Some(live) = &live {
            let ours = live.tags.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
                && live.tags.get(INSTANCE_LABEL).map(String::as_str) == Some(instance);
            if !ours && !options.adopt {
                result.action = Action::Conflict;
                return Err(AwsError::Unmanaged {
                    role: role.name.clone(),
                    instance: instance.to_owned(),
                });
            }
            if !ours {
                result.action = Action::Adopt;
            }
        }
        result.changes = role_changes(role, live.as_ref());
        if settings.config.aws.mode == Mode::PodIdentity {
            result
                .changes
                .extend(association_changes(clients, settings, role, identity).await?);
        }
        if result.action == Action::Unchanged && !result.changes.is_empty() {
            result.action = if live.is_none() {
                Action::Create
            } else {
                Action::Update
            };
        }
        if !options.no_writes {
            for change in &result.changes {
                *writes += 1;
                write_change(clients, settings, role, identity, change).await?;
            }
        }
        if let Some(target) = &role.target_role_arn {
            let external_id = super::pod_identity::external_id(clients, settings, identity).await?;
            let new_external_id = !options.no_writes
                && result.changes.iter().any(|c| {
                    matches!(
                        c,
                        Change::CreateAssociation { .. } | Change::ReplaceAssociation { .. }
                    )
                });
            result.target_trust = external_id.map(|external_id| TargetTrust {
                target_role_arn: target.clone(),
                role_arn: role.arn.clone(),
                new_external_id,
                trust_policy: crate::plan::target_trust_policy(&role.arn, &external_id),
                external_id,
            });
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        if result.action != Action::Conflict {
            result.action = Action::Failed;
        }
        result.error = Some(e.to_string());
    } else if !result.changes.is_empty() {
        info!(role = %role.name, changes = result.changes.len(), "IAM role reconciled");
    }
    result
}

pub(super) async fn read_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<Option<LiveRole>, AwsError> {
    let got = match iam.get_role().role_name(name).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(call_error("GetRole", name.to_string(), &e)),
    };
    let Some(role) = got.role() else {
        return Ok(None);
    };
    let mut live = LiveRole {
        trust: role.assume_role_policy_document().and_then(decode_policy),
        max_session: role.max_session_duration(),
        boundary: role
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_owned),
        tags: role
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
        ..Default::default()
    };
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| call_error("ListAttachedRolePolicies", name.to_string(), &e))?;
    live.attached = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .map(str::to_owned)
        .collect();
    live.inline = match iam
        .get_role_policy()
        .role_name(name)
        .policy_name(INLINE_POLICY)
        .send()
        .await
    {
        Ok(out) => decode_policy(out.policy_document()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(e) => return Err(call_error("GetRolePolicy", name.to_string(), &e)),
    };
    Ok(Some(live))
}

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
            super::pod_identity::delete_association(clients, settings, id).await?;
            create_association(clients, settings, role, (namespace, sa)).await
        }
        Change::DeleteRole | Change::DeleteAssociation { .. } => Err(AwsError::Document {
            role: name.to_owned(),
            message: format!("{change:?} is only used by prune"),
        }),
    }
}

/// The planned association: (cluster, namespace, job ServiceAccount) →
/// role, session tags on, the planned target role (or none), no session
/// policy.
async fn create_association(
    clients: &Clients,
    settings: &Settings,
    role: &IamRolePlan,
    (namespace, sa): (&str, &str),
) -> Result<(), AwsError> {
    clients
        .eks
        .create_pod_identity_association()
        .cluster_name(&settings.config.cluster.name)
        .namespace(namespace)
        .service_account(sa)
        .role_arn(&role.arn)
        .disable_session_tags(false)
        .set_target_role_arn(role.target_role_arn.clone())
        .set_tags(Some(
            role.tags
                .iter()
                .map(|(k, v)| (eks_tag_key(k), v.clone()))
                .collect(),
        ))
        .send()
        .await
        .map(drop)
        .map_err(|e| call_error("CreatePodIdentityAssociation", &role.name, &e))
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

/// IAM returns policy documents URL-encoded; this decodes one into JSON.
pub fn decode_policy(encoded: &str) -> Option<Value> {
    let text = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    serde_json::from_str(&text).ok()
}

/// An SDK error as `Code: message` (the SDK never puts credentials in
/// errors); a transport error as its cause chain.
pub(crate) fn error_text<E: ProvideErrorMetadata + std::error::Error>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => crate::cause_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_documents_are_url_decoded() {
        let v = decode_policy("%7B%22Version%22%3A%222012-10-17%22%7D").unwrap();
        assert_eq!(v, json!({"Version": "2012-10-17"}));
        assert_eq!(decode_policy("{\"a\":1}").unwrap(), json!({"a": 1}));
    }
}
