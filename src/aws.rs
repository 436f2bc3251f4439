//! The AWS side of apply: planned IAM roles (and, in Pod Identity mode, EKS
//! pod identity associations) in, roles converged and a [`AwsReport`] out.
//!
//! Reads before it writes (GetRole, ListAttachedRolePolicies, GetRolePolicy;
//! no IAM write when nothing changed). A role without this configuration's
//! `app.kubernetes.io/managed-by` and instance tags is never modified unless
//! `adopt` is set. IAM has no server-side dry run: a dry run and a diff both
//! compute the changes and send none. Throttling is handled by the SDK's
//! standard retry mode (exponential backoff with jitter); concurrency is
//! bounded.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::Tag;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, instrument};

use crate::apply::Action;
use crate::config::{Mode, Settings};
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, REPOSITORY_ANNOTATION};
use crate::plan::{IamRolePlan, Plan};

/// Name of the inline policy runner-identity writes on each role.
pub const INLINE_POLICY: &str = "runner-identity";
/// IAM roles reconciled at the same time (IAM is rate-limited).
const CONCURRENCY: usize = 8;

/// The AWS clients, configured from the default chain (environment, profile,
/// `AWS_ENDPOINT_URL`, region; `us-east-1` when no region is configured,
/// since IAM is global).
#[derive(Clone, Debug)]
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub eks: aws_sdk_eks::Client,
}

impl Clients {
    /// Loads the shared configuration once.
    pub async fn from_env(region: Option<&str>) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(8));
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_owned()));
        }
        let mut shared = loader.load().await;
        if shared.region().is_none() {
            shared = shared
                .into_builder()
                .region(Region::from_static("us-east-1"))
                .build();
        }
        Clients::from_sdk_config(&shared)
    }

    /// Clients of an already loaded configuration.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig) -> Clients {
        Clients {
            iam: aws_sdk_iam::Client::new(shared),
            eks: aws_sdk_eks::Client::new(shared),
        }
    }
}

/// What an AWS apply may do.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Compute changes only (IAM has no server-side dry run).
    pub no_writes: bool,
    pub prune: bool,
    pub adopt: bool,
}

/// One planned change to a role or association.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum Change {
    CreateRole,
    UpdateTrustPolicy,
    UpdateRole {
        max_session_duration: u32,
    },
    PutPermissionsBoundary {
        arn: String,
    },
    DeletePermissionsBoundary,
    TagRole {
        keys: Vec<String>,
    },
    AttachPolicy {
        arn: String,
    },
    DetachPolicy {
        arn: String,
    },
    PutInlinePolicy,
    DeleteInlinePolicy,
    CreateAssociation {
        namespace: String,
        service_account: String,
    },
    UpdateAssociation {
        id: String,
    },
    DeleteRole,
    DeleteAssociation {
        id: String,
    },
}

/// The result for one role (and its association).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleResult {
    pub repository: String,
    pub role: String,
    pub action: Action,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole AWS result.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsReport {
    pub roles: Vec<RoleResult>,
    /// IAM and EKS write requests sent.
    pub writes: usize,
    /// Problems that do not belong to one role (a missing OIDC provider).
    pub problems: Vec<String>,
}

impl AwsReport {
    /// Whether anything failed.
    pub fn failed(&self) -> bool {
        !self.problems.is_empty()
            || self
                .roles
                .iter()
                .any(|r| r.error.is_some() || r.action == Action::Conflict)
    }

    /// One line per role that changes, fails or conflicts, and a total.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for r in &self.roles {
            let action = serde_json::to_value(r.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let changes: Vec<String> = r
                .changes
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .filter_map(|v| v.get("change").and_then(Value::as_str).map(str::to_owned))
                .collect();
            out.push_str(&format!(
                "IAM role {:<40} {action:<9} {}\n",
                r.role,
                changes.join(", ")
            ));
            if let Some(e) = &r.error {
                out.push_str(&format!("  error: {e}\n"));
            }
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        if self.writes == 0 {
            out.push_str("AWS: no changes: 0 write requests sent\n");
        } else {
            out.push_str(&format!("AWS: {} write requests sent\n", self.writes));
        }
        out
    }
}

/// What IAM holds for one role.
#[derive(Debug, Default)]
struct LiveRole {
    trust: Option<Value>,
    max_session: Option<i32>,
    boundary: Option<String>,
    tags: BTreeMap<String, String>,
    attached: BTreeSet<String>,
    inline: Option<Value>,
}

/// Converges every planned role; prunes this instance's roles that left the plan.
#[instrument(skip_all, fields(roles = plan.repositories.len()))]
pub async fn apply(
    clients: &Clients,
    settings: &Settings,
    plan: &Plan,
    options: &AwsOptions,
) -> AwsReport {
    let mut report = AwsReport::default();
    if let Some(problem) = check_oidc_provider(clients, settings).await {
        report.problems.push(problem);
    }
    let results: Vec<(RoleResult, usize)> = futures::stream::iter(&plan.repositories)
        .map(|repo| async move {
            let mut writes = 0;
            let result = reconcile_role(
                clients,
                settings,
                &repo.names.repository,
                &repo.iam_role,
                (&repo.names.namespace, &repo.names.job_service_account),
                options,
                &plan.instance,
                &mut writes,
            )
            .await;
            (result, writes)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for (r, w) in results {
        report.writes += w;
        report.roles.push(r);
    }
    if options.prune {
        prune(clients, settings, plan, options, &mut report).await;
    }
    report
}

/// Deletes this instance's roles that left the plan (and, in Pod Identity
/// mode, their associations first), adding the results to `report`.
pub async fn prune(
    clients: &Clients,
    settings: &Settings,
    plan: &Plan,
    options: &AwsOptions,
    report: &mut AwsReport,
) {
    let planned: BTreeSet<&str> = plan
        .repositories
        .iter()
        .map(|r| r.iam_role.name.as_str())
        .collect();
    match prune_roles(
        clients,
        settings,
        &plan.instance,
        &planned,
        options,
        &mut report.writes,
    )
    .await
    {
        Ok(mut pruned) => report.roles.append(&mut pruned),
        Err(e) => report.problems.push(format!("prune: {e}")),
    }
}

/// The IRSA OIDC provider of the cluster's issuer must exist in the account.
async fn check_oidc_provider(clients: &Clients, settings: &Settings) -> Option<String> {
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

#[allow(clippy::too_many_arguments)]
async fn reconcile_role(
    clients: &Clients,
    settings: &Settings,
    repository: &str,
    role: &IamRolePlan,
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
    };
    let outcome = async {
        let live = read_role(&clients.iam, &role.name).await?;
        if let Some(live) = &live {
            let ours = live.tags.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
                && live.tags.get(INSTANCE_LABEL).map(String::as_str) == Some(instance);
            if !ours && !options.adopt {
                result.action = Action::Conflict;
                return Err(format!(
                    "role {} exists but is not managed by this configuration (tags {MANAGED_BY_LABEL}={MANAGED_BY}, \
                     {INSTANCE_LABEL}={instance}); rename it, delete it, or re-run with --adopt",
                    role.name
                ));
            }
            if !ours {
                result.action = Action::Adopt;
            }
        }
        result.changes = role_changes(role, live.as_ref());
        if settings.config.aws.mode == Mode::PodIdentity {
            result.changes.extend(association_changes(clients, settings, role, identity).await?);
        }
        if result.action == Action::Unchanged && !result.changes.is_empty() {
            result.action = if live.is_none() { Action::Create } else { Action::Update };
        }
        if !options.no_writes {
            for change in &result.changes {
                *writes += 1;
                write_change(clients, settings, role, identity, change).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        if result.action != Action::Conflict {
            result.action = Action::Failed;
        }
        result.error = Some(e);
    } else if !result.changes.is_empty() {
        info!(role = %role.name, changes = result.changes.len(), "IAM role reconciled");
    }
    result
}

async fn read_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<LiveRole>, String> {
    let got = match iam.get_role().role_name(name).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(format!("GetRole {name}: {}", error_text(&e))),
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
        .map_err(|e| format!("ListAttachedRolePolicies {name}: {}", error_text(&e)))?;
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
        Err(e) => return Err(format!("GetRolePolicy {name}: {}", error_text(&e))),
    };
    Ok(Some(live))
}

/// The changes that bring `live` to `role`. Pure.
fn role_changes(role: &IamRolePlan, live: Option<&LiveRole>) -> Vec<Change> {
    let Some(live) = live else {
        let mut changes = vec![Change::CreateRole];
        changes.extend(
            role.managed_policy_arns
                .iter()
                .map(|arn| Change::AttachPolicy { arn: arn.clone() }),
        );
        if role.permissions_policy.is_some() {
            changes.push(Change::PutInlinePolicy);
        }
        return changes;
    };
    let mut changes = Vec::new();
    if live.trust.as_ref() != Some(&role.trust_policy) {
        changes.push(Change::UpdateTrustPolicy);
    }
    if live.max_session != i32::try_from(role.max_session_duration).ok() {
        changes.push(Change::UpdateRole {
            max_session_duration: role.max_session_duration,
        });
    }
    match (&role.permissions_boundary, &live.boundary) {
        (Some(want), have) if have.as_ref() != Some(want) => {
            changes.push(Change::PutPermissionsBoundary { arn: want.clone() })
        }
        (None, Some(_)) => changes.push(Change::DeletePermissionsBoundary),
        _ => {}
    }
    let keys: Vec<String> = role
        .tags
        .iter()
        .filter(|(k, v)| live.tags.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    if !keys.is_empty() {
        changes.push(Change::TagRole { keys });
    }
    let want: BTreeSet<&String> = role.managed_policy_arns.iter().collect();
    changes.extend(
        want.iter()
            .filter(|a| !live.attached.contains(**a))
            .map(|a| Change::AttachPolicy { arn: (*a).clone() }),
    );
    changes.extend(
        live.attached
            .iter()
            .filter(|a| !want.contains(a))
            .map(|a| Change::DetachPolicy { arn: a.clone() }),
    );
    match (&role.permissions_policy, &live.inline) {
        (Some(want), have) if have.as_ref() != Some(want) => changes.push(Change::PutInlinePolicy),
        (None, Some(_)) => changes.push(Change::DeleteInlinePolicy),
        _ => {}
    }
    changes
}

/// Pod Identity: the association (cluster, namespace, job SA) → role.
async fn association_changes(
    clients: &Clients,
    settings: &Settings,
    role: &IamRolePlan,
    (namespace, sa): (&str, &str),
) -> Result<Vec<Change>, String> {
    let cluster = &settings.config.cluster.name;
    let listed = clients
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(namespace)
        .service_account(sa)
        .send()
        .await
        .map_err(|e| {
            format!(
                "ListPodIdentityAssociations {cluster} {namespace}/{sa}: {}",
                error_text(&e)
            )
        })?;
    let Some(id) = listed
        .associations()
        .first()
        .and_then(|a| a.association_id())
        .map(str::to_owned)
    else {
        return Ok(vec![Change::CreateAssociation {
            namespace: namespace.to_owned(),
            service_account: sa.to_owned(),
        }]);
    };
    let described = clients
        .eks
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(&id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribePodIdentityAssociation {cluster} {id}: {}",
                error_text(&e)
            )
        })?;
    let current = described.association().and_then(|a| a.role_arn());
    Ok(if current == Some(role.arn.as_str()) {
        Vec::new()
    } else {
        vec![Change::UpdateAssociation { id }]
    })
}

async fn write_change(
    clients: &Clients,
    settings: &Settings,
    role: &IamRolePlan,
    (namespace, sa): (&str, &str),
    change: &Change,
) -> Result<(), String> {
    let iam = &clients.iam;
    let name = role.name.as_str();
    let json = |v: &Value| serde_json::to_string(v).map_err(|e| e.to_string());
    let fail = |op: &str, e: String| format!("{op} {name}: {e}");
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
            .set_tags(Some(tags(&role.tags, None)?))
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("CreateRole", error_text(&e))),
        Change::UpdateTrustPolicy => iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(json(&role.trust_policy)?)
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("UpdateAssumeRolePolicy", error_text(&e))),
        Change::UpdateRole {
            max_session_duration,
        } => iam
            .update_role()
            .role_name(name)
            .max_session_duration(i32::try_from(*max_session_duration).unwrap_or(3600))
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("UpdateRole", error_text(&e))),
        Change::PutPermissionsBoundary { arn } => iam
            .put_role_permissions_boundary()
            .role_name(name)
            .permissions_boundary(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("PutRolePermissionsBoundary", error_text(&e))),
        Change::DeletePermissionsBoundary => iam
            .delete_role_permissions_boundary()
            .role_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("DeleteRolePermissionsBoundary", error_text(&e))),
        Change::TagRole { keys } => iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(tags(&role.tags, Some(keys))?))
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("TagRole", error_text(&e))),
        Change::AttachPolicy { arn } => iam
            .attach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("AttachRolePolicy", error_text(&e))),
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
                .map_err(|e| fail("PutRolePolicy", error_text(&e)))
        }
        Change::DeleteInlinePolicy => delete_inline(iam, name, INLINE_POLICY).await,
        Change::CreateAssociation { .. } => clients
            .eks
            .create_pod_identity_association()
            .cluster_name(&settings.config.cluster.name)
            .namespace(namespace)
            .service_account(sa)
            .role_arn(&role.arn)
            .set_tags(Some(
                role.tags
                    .iter()
                    .map(|(k, v)| (eks_tag_key(k), v.clone()))
                    .collect(),
            ))
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("CreatePodIdentityAssociation", error_text(&e))),
        Change::UpdateAssociation { id } => clients
            .eks
            .update_pod_identity_association()
            .cluster_name(&settings.config.cluster.name)
            .association_id(id)
            .role_arn(&role.arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| fail("UpdatePodIdentityAssociation", error_text(&e))),
        Change::DeleteRole | Change::DeleteAssociation { .. } => {
            Err(format!("{change:?} is only used by prune"))
        }
    }
}

async fn detach(iam: &aws_sdk_iam::Client, name: &str, arn: &str) -> Result<(), String> {
    iam.detach_role_policy()
        .role_name(name)
        .policy_arn(arn)
        .send()
        .await
        .map(drop)
        .map_err(|e| format!("DetachRolePolicy {name} {arn}: {}", error_text(&e)))
}

async fn delete_inline(iam: &aws_sdk_iam::Client, name: &str, policy: &str) -> Result<(), String> {
    iam.delete_role_policy()
        .role_name(name)
        .policy_name(policy)
        .send()
        .await
        .map(drop)
        .map_err(|e| format!("DeleteRolePolicy {name} {policy}: {}", error_text(&e)))
}

/// A role to prune: name, ARN, and the repository its tag names.
type PrunedRole = (String, String, String);

/// Deletes this instance's roles (found by path and tags) that are no longer
/// planned; in Pod Identity mode their associations first, so none is left
/// pointing at a deleted role.
async fn prune_roles(
    clients: &Clients,
    settings: &Settings,
    instance: &str,
    planned: &BTreeSet<&str>,
    options: &AwsOptions,
    writes: &mut usize,
) -> Result<Vec<RoleResult>, String> {
    let iam = &clients.iam;
    let path = &settings.config.aws.role_path;
    let mut pages = iam.list_roles().path_prefix(path).into_paginator().send();
    let mut candidates = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("ListRoles {path}: {}", error_text(&e)))?;
        candidates.extend(
            page.roles()
                .iter()
                .filter(|r| !planned.contains(r.role_name()))
                .map(|r| (r.role_name().to_owned(), r.arn().to_owned())),
        );
    }
    // One ListRoleTags per candidate, CONCURRENCY at a time.
    let tagged: Vec<Result<Option<PrunedRole>, String>> = futures::stream::iter(candidates)
        .map(|(name, arn)| async move {
            let tags = match iam.list_role_tags().role_name(&name).send().await {
                Ok(t) => t,
                // Deleted since it was listed (by another instance's prune).
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(format!("ListRoleTags {name}: {}", error_text(&e))),
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
            Ok(Some((name, arn, repository)))
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
        let arns: BTreeSet<&str> = pruned.iter().map(|(_, arn, _)| arn.as_str()).collect();
        associations_of(clients, settings, instance, &arns).await?
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::new();
    for (name, arn, repository) in pruned {
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
                result.error = Some(e);
            }
        }
        out.push(result);
    }
    Ok(out)
}

/// The pod identity associations of the cluster that point at one of `arns`,
/// by role ARN. One that this instance did not create (no managed-by and
/// instance tags) is an error: deleting the role would leave it dangling,
/// deleting it would touch what the tool does not manage.
async fn associations_of(
    clients: &Clients,
    settings: &Settings,
    instance: &str,
    arns: &BTreeSet<&str>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
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
            page.map_err(|e| format!("ListPodIdentityAssociations {cluster}: {}", error_text(&e)))?;
        ids.extend(
            page.associations()
                .iter()
                .filter_map(|a| a.association_id())
                .map(str::to_owned),
        );
    }
    let described: Vec<Result<_, String>> = futures::stream::iter(ids)
        .map(|id| async move {
            let out = clients
                .eks
                .describe_pod_identity_association()
                .cluster_name(cluster)
                .association_id(&id)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "DescribePodIdentityAssociation {cluster} {id}: {}",
                        error_text(&e)
                    )
                })?;
            Ok(out.association().cloned().map(|a| (id, a)))
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
            return Err(format!(
                "pod identity association {id} ({}/{}) on cluster {cluster} points at {role}, \
                 which is to be pruned, but runner-identity did not create it; delete it \
                 (`aws eks delete-pod-identity-association --cluster-name {cluster} --association-id {id}`) \
                 or point it at another role, then re-run",
                association.namespace().unwrap_or("?"),
                association.service_account().unwrap_or("?"),
            ));
        }
        by_role.entry(role.to_owned()).or_default().push(id);
    }
    Ok(by_role)
}

async fn delete_association(
    clients: &Clients,
    settings: &Settings,
    id: &str,
) -> Result<(), String> {
    let cluster = &settings.config.cluster.name;
    match clients
        .eks
        .delete_pod_identity_association()
        .cluster_name(cluster)
        .association_id(id)
        .send()
        .await
    {
        Ok(_) => {
            info!("deleted pod identity association {id} on {cluster} (its role is pruned)");
            Ok(())
        }
        // Already gone: the goal of a delete is reached.
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(format!(
            "DeletePodIdentityAssociation {cluster} {id}: {}",
            error_text(&e)
        )),
    }
}

async fn delete_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    writes: &mut usize,
) -> Result<(), String> {
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| format!("ListAttachedRolePolicies {name}: {}", error_text(&e)))?;
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
        .map_err(|e| format!("ListRolePolicies {name}: {}", error_text(&e)))?;
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
        .map_err(|e| format!("DeleteRole {name}: {}", error_text(&e)))
}

fn tags(all: &BTreeMap<String, String>, only: Option<&Vec<String>>) -> Result<Vec<Tag>, String> {
    all.iter()
        .filter(|(k, _)| only.is_none_or(|keys| keys.contains(k)))
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// EKS tag keys allow the same characters as IAM's; kept as is.
fn eks_tag_key(k: &str) -> String {
    k.to_owned()
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
fn error_text<E: ProvideErrorMetadata + std::error::Error>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
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

    fn planned() -> IamRolePlan {
        IamRolePlan {
            name: "r".into(),
            path: "/".into(),
            arn: "arn:aws:iam::111122223333:role/r".into(),
            trust_policy: json!({"Statement": [1]}),
            permissions_policy: Some(json!({"Statement": [2]})),
            managed_policy_arns: vec!["arn:aws:iam::aws:policy/A".into()],
            permissions_boundary: None,
            max_session_duration: 3600,
            tags: BTreeMap::from([("k".into(), "v".into())]),
        }
    }

    #[test]
    fn a_new_role_is_created_with_everything() {
        let changes = role_changes(&planned(), None);
        assert_eq!(changes[0], Change::CreateRole);
        assert!(changes.contains(&Change::AttachPolicy {
            arn: "arn:aws:iam::aws:policy/A".into()
        }));
        assert!(changes.contains(&Change::PutInlinePolicy));
    }

    #[test]
    fn an_identical_role_needs_nothing_and_drift_is_found() {
        let p = planned();
        let mut live = LiveRole {
            trust: Some(p.trust_policy.clone()),
            max_session: Some(3600),
            boundary: None,
            tags: p.tags.clone(),
            attached: p.managed_policy_arns.iter().cloned().collect(),
            inline: p.permissions_policy.clone(),
        };
        assert!(role_changes(&p, Some(&live)).is_empty());
        live.trust = Some(json!({"Statement": []}));
        live.attached.insert("arn:aws:iam::aws:policy/Extra".into());
        live.boundary = Some("arn:aws:iam::111122223333:policy/b".into());
        let changes = role_changes(&p, Some(&live));
        assert!(changes.contains(&Change::UpdateTrustPolicy));
        assert!(changes.contains(&Change::DetachPolicy {
            arn: "arn:aws:iam::aws:policy/Extra".into()
        }));
        assert!(changes.contains(&Change::DeletePermissionsBoundary));
    }
}
