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

mod diff;
pub mod error_kind;
mod live;
mod pod_identity;
mod prune;
mod reconcile;
mod report;
mod write;

use std::collections::BTreeSet;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use futures::StreamExt;
use tracing::instrument;

pub use self::live::decode_policy;
pub use self::report::{AwsReport, Change, RoleResult, TargetTrust};
use crate::config::{Partition, Settings};
use crate::kvp::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::plan::Plans;

/// Name of the inline policy runner-identity writes on each role.
pub const INLINE_POLICY: &str = "runner-identity";
/// IAM roles reconciled at the same time (IAM is rate-limited).
pub(crate) const CONCURRENCY: usize = 8;

/// The AWS clients, configured from the default chain (environment, profile,
/// `AWS_ENDPOINT_URL`). The region: the one given, else `AWS_REGION` /
/// `AWS_DEFAULT_REGION` or the profile's, else the partition's own (IAM is
/// global) — never the instance metadata service, which runner-identity's
/// NetworkPolicy blocks in a pod and a laptop does not have.
#[derive(Clone, Debug)]
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub eks: aws_sdk_eks::Client,
}

/// The region the clients use: the configuration's, else the environment's
/// or profile's, else the partition's own.
fn region_for(explicit: Option<&str>, configured: Option<&str>, partition: Partition) -> String {
    explicit
        .or(configured)
        .unwrap_or(partition.default_region())
        .to_owned()
}

/// The region the environment or the shared profile names, without asking
/// the instance metadata service.
pub async fn configured_region() -> Option<String> {
    use aws_config::environment::region::EnvironmentVariableRegionProvider;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::profile::ProfileFileRegionProvider;
    let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new());
    chain.region().await.map(|r| r.to_string())
}

impl Clients {
    /// Loads the shared configuration once.
    pub async fn from_env(region: Option<&str>, partition: Partition) -> Clients {
        let configured = match region {
            Some(_) => None,
            None => configured_region().await,
        };
        let region = region_for(region, configured.as_deref(), partition);
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(8))
            .region(Region::new(region))
            .load()
            .await;
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

/// What can go wrong on the AWS side; each error names the call or object.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// An IAM or EKS request failed; the advice follows from its kind.
    #[error("{operation} {target}: {message}{}", kind.apply_advice())]
    Call {
        operation: &'static str,
        target: String,
        message: String,
        kind: error_kind::AwsErrorKind,
    },
    /// A role of a planned name exists that this configuration does not manage.
    #[error(
        "role {role} exists but is not managed by this configuration (tags {MANAGED_BY_LABEL}={MANAGED_BY}, \
         {INSTANCE_LABEL}={instance}); rename it, delete it, or re-run with --adopt"
    )]
    Unmanaged { role: String, instance: String },
    /// A role of a planned name exists under another IAM path (IAM cannot
    /// move a role; its name is unique in the account).
    #[error(
        "role {role} exists under the path {live}, but the configuration puts it under {planned} \
         (aws.rolePath; by default `/runner-identity/<instance>/`, so that the identity running apply \
         can write this instance's roles and no other); IAM cannot move a role: delete it (`aws iam \
         delete-role --role-name {role}` after removing its policies) so that apply creates it under \
         {planned}, then re-run"
    )]
    OtherPath {
        role: String,
        live: String,
        planned: String,
    },
    /// A pod identity association runner-identity did not create points at a
    /// role it is about to prune.
    #[error(
        "pod identity association {id} ({namespace}/{service_account}) on cluster {cluster} points at {role}, \
         which is to be pruned, but runner-identity did not create it; delete it \
         (`aws eks delete-pod-identity-association --cluster-name {cluster} --association-id {id}`) \
         or point it at another role, then re-run"
    )]
    ForeignAssociation {
        id: String,
        namespace: String,
        service_account: String,
        cluster: String,
        role: String,
    },
    /// A planned document or tag of a role could not be built.
    #[error("role {role}: {message}")]
    Document { role: String, message: String },
}

/// An SDK error as [`AwsError::Call`].
pub(crate) fn call_error<E>(operation: &'static str, target: impl Into<String>, e: &E) -> AwsError
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    AwsError::Call {
        operation,
        target: target.into(),
        message: error_kind::error_text(e),
        kind: error_kind::AwsErrorKind::of(e),
    }
}

/// What an AWS apply may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    /// Compute changes only (IAM has no server-side dry run).
    pub no_writes: bool,
    pub prune: bool,
    pub adopt: bool,
}

/// Converges every planned role; prunes this instance's roles that left the
/// plan. Each repository is planned when its role is worked on.
#[instrument(skip_all, fields(roles = plans.count()))]
pub async fn apply(
    clients: &Clients,
    settings: &Settings,
    plans: &impl Plans,
    options: &AwsOptions,
) -> AwsReport {
    let mut report = AwsReport::default();
    if let Some(problem) = reconcile::check_oidc_provider(clients, settings).await {
        report.problems.push(problem);
    }
    // Which roles exist, and under which path, from the list (allowed on
    // every role): a GetRole of a role that does not exist cannot name its
    // path, so an identity limited to one path would be refused it.
    let paths = match reconcile::role_paths(&clients.iam).await {
        Ok(paths) => paths,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    let paths = &paths;
    let run = reconcile::Run {
        clients,
        settings,
        options,
        instance: plans.instance(),
    };
    let run = &run;
    let results: Vec<crate::Result<(RoleResult, usize)>> = futures::stream::iter(0..plans.count())
        .map(|i| async move {
            let repo = plans.repository(i)?;
            let known = paths.get(&repo.iam_role.name).map(String::as_str);
            Ok(reconcile::reconcile_role(run, &repo, known).await)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for outcome in results {
        match outcome {
            Ok((r, w)) => {
                report.writes += w;
                report.roles.push(r);
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    if options.prune {
        prune(clients, settings, plans, options, &mut report).await;
    }
    report
}

/// Deletes this instance's roles that left the plan (and, in Pod Identity
/// mode, their associations first), adding the results to `report`.
pub async fn prune(
    clients: &Clients,
    settings: &Settings,
    plans: &impl Plans,
    options: &AwsOptions,
    report: &mut AwsReport,
) {
    // The role names alone: nothing needs planning.
    let planned: BTreeSet<&str> = (0..plans.count())
        .filter_map(|i| plans.names(i))
        .map(|n| n.iam_role.as_str())
        .collect();
    match prune::prune_roles(
        clients,
        settings,
        plans.instance(),
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

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_failed_call_says_what_to_do_by_its_kind() {
        use aws_sdk_iam::error::ErrorMetadata;
        use aws_sdk_iam::operation::get_role::GetRoleError;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let text_for = |code: &'static str| async move {
            let rule = mock!(aws_sdk_iam::Client::get_role).then_error(move || {
                GetRoleError::generic(ErrorMetadata::builder().code(code).message("m").build())
            });
            let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&rule]);
            let e = iam.get_role().role_name("r").send().await.unwrap_err();
            super::call_error("GetRole", "r", &e).to_string()
        };
        // Before, the error said only `GetRole r: ExpiredToken: m`.
        let expired = text_for("ExpiredToken").await;
        assert!(
            expired.starts_with("GetRole r: ExpiredToken: m; AWS does not accept the credentials"),
            "{expired}"
        );
        let denied = text_for("AccessDenied").await;
        assert!(
            denied.contains("attach the IAM policy `runner-identity bootstrap` prints"),
            "{denied}"
        );
        assert_eq!(
            text_for("MalformedPolicyDocument").await,
            "GetRole r: MalformedPolicyDocument: m"
        );
    }

    #[test]
    fn without_a_region_iam_is_reached_in_the_partitions_own() {
        use super::{Partition, region_for};
        // Before, every partition fell back to us-east-1 (the commercial one).
        assert_eq!(region_for(None, None, Partition::AwsCn), "cn-north-1");
        assert_eq!(region_for(None, None, Partition::AwsUsGov), "us-gov-west-1");
        assert_eq!(region_for(None, None, Partition::Aws), "us-east-1");
        assert_eq!(
            region_for(None, Some("cn-northwest-1"), Partition::AwsCn),
            "cn-northwest-1"
        );
        assert_eq!(
            region_for(Some("eu-west-1"), Some("us-east-2"), Partition::Aws),
            "eu-west-1"
        );
    }
}
