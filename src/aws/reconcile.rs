//! One role converged: read, compared, written; the account-wide reads
//! (the OIDC provider, every role's path) it needs.

use std::collections::BTreeMap;

use tracing::info;

use super::diff::role_changes;
use super::live::read_role;
use super::pod_identity::association_changes;
use super::write::write_change;
use super::{AwsError, AwsOptions, Change, Clients, RoleResult, TargetTrust, call_error};
use crate::aws::error_kind::error_text;
use crate::config::{Mode, Settings};
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::outcome::Action;
use crate::plan::RepoPlan;

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

/// What every role of one AWS apply shares.
pub(super) struct Run<'a> {
    pub(super) clients: &'a Clients,
    pub(super) settings: &'a Settings,
    pub(super) options: &'a AwsOptions,
    /// This configuration's instance (its roles carry it as a tag).
    pub(super) instance: &'a str,
}

/// Converges the role of `repo`; `known_path` is where the account's role
/// list found a role of its name (`None`: there is none). Returns the
/// result and the write requests sent.
pub(super) async fn reconcile_role(
    run: &Run<'_>,
    repo: &RepoPlan,
    known_path: Option<&str>,
) -> (RoleResult, usize) {
    let Run {
        clients,
        settings,
        options,
        instance,
    } = *run;
    let role = &repo.iam_role;
    let identity = (
        repo.names.namespace.as_str(),
        repo.names.job_service_account.as_str(),
    );
    let mut count = 0;
    let writes = &mut count;
    let mut result = RoleResult {
        repository: repo.names.repository.clone(),
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
        let mut external_id = None;
        if settings.config.aws.mode == Mode::PodIdentity {
            let (changes, current) = association_changes(clients, settings, role, identity).await?;
            result.changes.extend(changes);
            external_id = current;
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
            let new_external_id = !options.no_writes
                && result.changes.iter().any(|c| {
                    matches!(
                        c,
                        Change::CreateAssociation { .. } | Change::ReplaceAssociation { .. }
                    )
                });
            // Read again only when this run made a new association or set
            // its target (EKS may issue the externalId then).
            let target_set = !options.no_writes
                && result.changes.iter().any(|c| {
                    matches!(c, Change::UpdateAssociation { fields, .. }
                        if fields.iter().any(|f| f == "targetRoleArn"))
                });
            if new_external_id || target_set {
                external_id = super::pod_identity::external_id(clients, settings, identity).await?;
            }
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
    (result, count)
}
