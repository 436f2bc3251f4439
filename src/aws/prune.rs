//! Pruning: this instance's roles that left the plan, found by path and
//! tags, deleted with their policies (and, in Pod Identity mode, their
//! associations first).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;

use super::error_kind::found;
use super::pod_identity::{associations_of, delete_association};
use super::write::{delete_inline, detach};
use super::{AwsError, AwsOptions, CONCURRENCY, Change, Clients, RoleResult, call_error};
use crate::config::{Mode, Settings};
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, REPOSITORY_ANNOTATION};
use crate::outcome::Action;

/// A role to prune.
#[derive(Debug, Clone)]
pub(super) struct PrunedRole {
    pub(super) name: String,
    pub(super) arn: String,
    /// The repository its tag names.
    pub(super) repository: String,
}

/// Deletes this instance's roles (found by path and tags) that are no longer
/// planned; in Pod Identity mode their associations first, so none is left
/// pointing at a deleted role.
pub(super) async fn prune_roles(
    clients: &Clients,
    settings: &Settings,
    instance: &str,
    planned: &BTreeSet<&str>,
    options: &AwsOptions,
    writes: &mut usize,
) -> Result<Vec<RoleResult>, AwsError> {
    let iam = &clients.iam;
    let path = settings.config.aws.role_path();
    let mut pages = iam.list_roles().path_prefix(path).into_paginator().send();
    let mut candidates = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("ListRoles", path.to_string(), &e))?;
        candidates.extend(
            page.roles()
                .iter()
                .filter(|r| !planned.contains(r.role_name()))
                .map(|r| (r.role_name().to_owned(), r.arn().to_owned())),
        );
    }
    // One ListRoleTags per candidate, CONCURRENCY at a time.
    let tagged: Vec<Result<Option<PrunedRole>, AwsError>> = futures::stream::iter(candidates)
        .map(|(name, arn)| async move {
            // None: deleted since it was listed (by another instance's prune).
            let Some(tags) = found(iam.list_role_tags().role_name(&name).send().await, |e| {
                e.is_no_such_entity_exception()
            })
            .map_err(|e| call_error("ListRoleTags", name.as_str(), &e))?
            else {
                return Ok(None);
            };
            let tags: BTreeMap<&str, &str> =
                tags.tags().iter().map(|t| (t.key(), t.value())).collect();
            if tags.get(MANAGED_BY_LABEL) != Some(&MANAGED_BY)
                || tags.get(INSTANCE_LABEL) != Some(&instance)
            {
                return Ok(None);
            }
            let repository = tags
                .get(REPOSITORY_ANNOTATION)
                .map_or("(unknown repository)", |r| *r)
                .to_owned();
            Ok(Some(PrunedRole {
                name,
                arn,
                repository,
            }))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut pruned = Vec::new();
    for t in tagged {
        if let Some(role) = t? {
            pruned.push(role);
        }
    }
    if pruned.is_empty() {
        return Ok(Vec::new());
    }
    let associations = if settings.config.aws.mode == Mode::PodIdentity {
        let arns: BTreeSet<&str> = pruned.iter().map(|r| r.arn.as_str()).collect();
        associations_of(clients, settings, instance, &arns).await?
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::new();
    for PrunedRole {
        name,
        arn,
        repository,
    } in pruned
    {
        let ids = associations.get(&arn).cloned().unwrap_or_default();
        let mut changes: Vec<Change> = ids
            .iter()
            .map(|id| Change::DeleteAssociation { id: id.clone() })
            .collect();
        changes.push(Change::DeleteRole);
        let mut result = RoleResult {
            repository,
            role: name.clone(),
            action: Action::Prune,
            changes,
            error: None,
            target_trust: None,
        };
        if !options.no_writes {
            let mut outcome = Ok(());
            for id in &ids {
                *writes += 1;
                outcome = delete_association(clients, settings, id).await;
                if outcome.is_err() {
                    break;
                }
            }
            if outcome.is_ok() {
                outcome = delete_role(iam, &name, writes).await;
            }
            if let Err(e) = outcome {
                result.action = Action::Failed;
                result.error = Some(e.to_string());
            }
        }
        out.push(result);
    }
    Ok(out)
}

pub(super) async fn delete_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    writes: &mut usize,
) -> Result<(), AwsError> {
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| call_error("ListAttachedRolePolicies", name.to_string(), &e))?;
    for arn in attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
    {
        *writes += 1;
        detach(iam, name, arn).await?;
    }
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| call_error("ListRolePolicies", name.to_string(), &e))?;
    for policy in inline.policy_names() {
        *writes += 1;
        delete_inline(iam, name, policy).await?;
    }
    *writes += 1;
    iam.delete_role()
        .role_name(name)
        .send()
        .await
        .map(drop)
        .map_err(|e| call_error("DeleteRole", name.to_string(), &e))
}
