//! EKS Pod Identity: the association (cluster, namespace, job ServiceAccount)
//! → role, found, compared, and deleted with the role it points at.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_eks::types::PodIdentityAssociation;
use futures::StreamExt;
use tracing::info;

use super::error_kind::found;
use super::{AwsError, CONCURRENCY, Change, Clients, call_error};
use crate::config::Settings;
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::plan::IamRolePlan;

/// The id of the association of (namespace, ServiceAccount) on `cluster`.
async fn association_id(
    clients: &Clients,
    cluster: &str,
    (namespace, sa): (&str, &str),
) -> Result<Option<String>, AwsError> {
    let listed = clients
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(namespace)
        .service_account(sa)
        .send()
        .await
        .map_err(|e| {
            call_error(
                "ListPodIdentityAssociations",
                format!("{cluster} {namespace}/{sa}"),
                &e,
            )
        })?;
    Ok(listed
        .associations()
        .first()
        .and_then(|a| a.association_id())
        .map(str::to_owned))
}

/// Pod Identity: the association (cluster, namespace, job SA) → role: what
/// differs from the plan, and the `externalId` it has now.
pub(super) async fn association_changes(
    clients: &Clients,
    settings: &Settings,
    role: &IamRolePlan,
    (namespace, sa): (&str, &str),
) -> Result<(Vec<Change>, Option<String>), AwsError> {
    let cluster = &settings.config.cluster.name;
    let Some(id) = association_id(clients, cluster, (namespace, sa)).await? else {
        let create = Change::CreateAssociation {
            namespace: namespace.to_owned(),
            service_account: sa.to_owned(),
        };
        return Ok((vec![create], None));
    };
    let described = describe(clients, cluster, &id).await?;
    let external_id = described
        .as_ref()
        .and_then(|a| a.external_id())
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    let drift = association_drift(
        id,
        described.as_ref(),
        &role.arn,
        role.target_role_arn.as_deref(),
    );
    Ok((drift, external_id))
}

/// What of an association differs from the plan: its role, session tags on
/// (the trust conditions on them), the planned target role (or none), no
/// session policy. A wrong or missing target is set in place; a target or a
/// policy the plan does not hold is removed by replacing the association
/// (the API cannot be relied on to clear either).
pub(super) fn association_drift(
    id: String,
    current: Option<&PodIdentityAssociation>,
    role_arn: &str,
    target_role_arn: Option<&str>,
) -> Vec<Change> {
    let mut update = Vec::new();
    let mut replace = Vec::new();
    if current.and_then(|a| a.role_arn()) != Some(role_arn) {
        update.push("roleArn".to_owned());
    }
    if current.and_then(|a| a.disable_session_tags()) == Some(true) {
        update.push("disableSessionTags".to_owned());
    }
    let current_target = current
        .and_then(|a| a.target_role_arn())
        .filter(|t| !t.is_empty());
    match (target_role_arn, current_target) {
        (Some(planned), current) if current != Some(planned) => {
            update.push("targetRoleArn".to_owned());
        }
        (None, Some(_)) => replace.push("targetRoleArn".to_owned()),
        _ => {}
    }
    if current
        .and_then(|a| a.policy())
        .is_some_and(|p| !p.is_empty())
    {
        replace.push("policy".to_owned());
    }
    if !replace.is_empty() {
        replace.extend(update);
        vec![Change::ReplaceAssociation {
            id,
            fields: replace,
        }]
    } else if !update.is_empty() {
        vec![Change::UpdateAssociation { id, fields: update }]
    } else {
        Vec::new()
    }
}

/// The `externalId` EKS gave the association of (namespace, ServiceAccount)
/// for its target role (`None`: no association, or no target).
pub(super) async fn external_id(
    clients: &Clients,
    settings: &Settings,
    (namespace, sa): (&str, &str),
) -> Result<Option<String>, AwsError> {
    let cluster = &settings.config.cluster.name;
    let Some(id) = association_id(clients, cluster, (namespace, sa)).await? else {
        return Ok(None);
    };
    Ok(describe(clients, cluster, &id)
        .await?
        .and_then(|a| a.external_id().map(str::to_owned))
        .filter(|e| !e.is_empty()))
}

/// The pod identity associations of the cluster that point at one of `arns`,
/// by role ARN. One that this instance did not create (no managed-by and
/// instance tags) is an error: deleting the role would leave it dangling,
/// deleting it would touch what the tool does not manage.
pub(super) async fn associations_of(
    clients: &Clients,
    settings: &Settings,
    instance: &str,
    arns: &BTreeSet<&str>,
) -> Result<BTreeMap<String, Vec<String>>, AwsError> {
    let cluster = &settings.config.cluster.name;
    let mut pages = clients
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .into_paginator()
        .send();
    let mut ids = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| call_error("ListPodIdentityAssociations", cluster.to_string(), &e))?;
        ids.extend(
            page.associations()
                .iter()
                .filter_map(|a| a.association_id())
                .map(str::to_owned),
        );
    }
    let described: Vec<Result<_, AwsError>> = futures::stream::iter(ids)
        .map(|id| async move {
            let association = describe(clients, cluster, &id).await?;
            Ok(association.map(|a| (id, a)))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut by_role: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in described {
        let Some((id, association)) = d? else {
            continue;
        };
        let Some(role) = association.role_arn().filter(|r| arns.contains(r)) else {
            continue;
        };
        let tags = association.tags();
        let ours = tags
            .and_then(|t| t.get(MANAGED_BY_LABEL))
            .map(String::as_str)
            == Some(MANAGED_BY)
            && tags.and_then(|t| t.get(INSTANCE_LABEL)).map(String::as_str) == Some(instance);
        if !ours {
            return Err(AwsError::ForeignAssociation {
                namespace: association.namespace().unwrap_or("?").to_owned(),
                service_account: association.service_account().unwrap_or("?").to_owned(),
                cluster: cluster.clone(),
                role: role.to_owned(),
                id,
            });
        }
        by_role.entry(role.to_owned()).or_default().push(id);
    }
    Ok(by_role)
}

pub(super) async fn delete_association(
    clients: &Clients,
    settings: &Settings,
    id: &str,
) -> Result<(), AwsError> {
    let cluster = &settings.config.cluster.name;
    let deleted = found(
        clients
            .eks
            .delete_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await,
        |e| e.is_resource_not_found_exception(),
    )
    .map_err(|e| {
        call_error(
            "DeletePodIdentityAssociation",
            format!("{cluster} {id}"),
            &e,
        )
    })?;
    // None: already gone, the goal of a delete is reached.
    if deleted.is_some() {
        info!("deleted pod identity association {id} on {cluster} (its role is pruned)");
    }
    Ok(())
}

/// The planned association: (cluster, namespace, job ServiceAccount) →
/// role, session tags on, the planned target role (or none), no session
/// policy.
pub(super) async fn create_association(
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

/// EKS tag keys allow the same characters as IAM's; kept as is.
fn eks_tag_key(k: &str) -> String {
    k.to_owned()
}

/// One association, described.
async fn describe(
    clients: &Clients,
    cluster: &str,
    id: &str,
) -> Result<Option<PodIdentityAssociation>, AwsError> {
    let out = clients
        .eks
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(id)
        .send()
        .await
        .map_err(|e| {
            call_error(
                "DescribePodIdentityAssociation",
                format!("{cluster} {id}"),
                &e,
            )
        })?;
    Ok(out.association().cloned())
}
