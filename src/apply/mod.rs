//! Apply: a [`Plan`] in, the cluster converged to it out, with a [`Report`]
//! of what was created, updated, left unchanged, pruned or failed.
//!
//! Reads before it writes: one labelled list per kind ([`inventory`]), then
//! only the objects that differ ([`compare`]) are server-side applied, with
//! one field manager ([`FIELD_MANAGER`]), bounded concurrency, retries with
//! backoff and jitter, and a per-request timeout. An object of the same name
//! that this configuration does not manage is never written unless `adopt`
//! is set; `prune` deletes only objects labelled as managed by this
//! configuration's instance.

pub mod inventory;
mod prune;
pub mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;
use tracing::{debug, info, instrument, warn};

pub use self::inventory::{Inventory, ObjectKey};
pub use self::report::{ObjectResult, RepoResult, Report};
use crate::compare;
pub use crate::outcome::Action;
use crate::plan::{Kind, Plans, RepoPlan};
use crate::retry;
use crate::{Error, Result};

/// The one field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "runner-identity";

/// What an apply may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Server-side dry run: validate, persist nothing.
    pub dry_run: bool,
    /// Only compute what would change (and diffs); send no write at all.
    pub diff_only: bool,
    /// Delete managed objects of this instance that are no longer planned.
    pub prune: bool,
    /// Take over objects of the same name that the tool does not manage.
    pub adopt: bool,
    /// Repositories applied at the same time.
    pub concurrency: usize,
    /// Read the inventory in pages of this many objects (`limit` +
    /// `continue`; [`inventory::PAGE`] by default).
    pub page_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            diff_only: false,
            prune: false,
            adopt: false,
            concurrency: 16,
            page_size: inventory::PAGE,
        }
    }
}

/// The patch parameters of every server-side apply. `force` takes back the
/// fields runner-identity owns when someone else changed them by hand: the
/// apply body only ever holds fields the tool owns.
pub fn patch_params(dry_run: bool) -> PatchParams {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run { params.dry_run() } else { params }
}

/// `Api::namespaced` for namespaced objects, `Api::all` for namespaces.
pub(crate) fn dynamic_api(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), ar)
    } else {
        Api::namespaced_with(client.clone(), namespace, ar)
    }
}

/// One planned object with what the read told about it.
struct Step {
    kind: Kind,
    namespace: String,
    name: String,
    ar: ApiResource,
    desired: Value,
    action: Action,
    diff: Option<String>,
    /// Why the object was not compared ([`Action::NotCompared`]).
    reason: Option<&'static str>,
    /// In a dry run, the namespace does not exist yet: the server cannot validate.
    unvalidated: bool,
}

/// Existence checks (metadata GETs) sent at the same time.
const EXISTENCE_CONCURRENCY: usize = 16;

/// The keys of one repository's planned objects: all that the checks
/// spanning repositories (conflicts, existence, prune) need to know.
struct PlannedKeys {
    namespace: String,
    keys: Vec<ObjectKey>,
}

/// Applies the plans: reads, compares, writes what changed, prunes when asked.
///
/// Each repository is planned twice, and held only while it is worked on:
/// first for the keys of its objects (every conflict is found before
/// anything is written), then to compare and write it. Memory stays flat in
/// the number of repositories when `plans` is a [`crate::plan::Planner`].
#[instrument(skip(client, plans, options), fields(repositories = plans.count(), dry_run = options.dry_run))]
pub async fn apply(client: &Client, plans: &impl Plans, options: &Options) -> Result<Report> {
    // The cluster is read while the repositories are planned.
    let inventory = tokio::spawn(Inventory::load(
        client.clone(),
        plans.instance().to_owned(),
        options.page_size,
    ));
    let planned: Vec<PlannedKeys> = (0..plans.count())
        .map(|i| {
            let repo = plans.repository(i)?;
            Ok(PlannedKeys {
                namespace: repo.names.namespace.clone(),
                keys: repo.objects().iter().map(inventory::key_of).collect(),
            })
        })
        .collect::<Result<_>>()
        .inspect_err(|_| inventory.abort())?;
    debug!(repositories = planned.len(), "planned");
    let all_keys = || planned.iter().flat_map(|p| &p.keys);
    let planned_kinds: std::collections::BTreeSet<Kind> = all_keys().map(|k| k.kind).collect();
    let mut inventory = inventory.await.map_err(|e| Error::Internal {
        message: format!("the inventory task stopped: {e}"),
    })??;
    // Secrets are read where one is planned (and, for a prune, wherever
    // this instance may have left one).
    let secret_namespaces = planned
        .iter()
        .filter(|p| p.keys.iter().any(|k| k.kind == Kind::Secret))
        .map(|p| p.namespace.clone())
        .collect();
    inventory
        .load_secrets(client, &secret_namespaces, options.prune, options.page_size)
        .await?;
    // `diff` without the right to read Secrets (the read-only identity):
    // they are not compared, and said so; everything else is.
    let mut required = planned_kinds.clone();
    if options.diff_only && inventory.unseen.contains(&Kind::Secret) {
        required.remove(&Kind::Secret);
    }
    inventory.require(&required)?;
    debug!(requests = inventory.requests, "cluster read");
    // A shared namespace's admission policy judges what its runners create;
    // what it does not judge (hostIPC, capabilities, host ports, sysctls,
    // seccomp) Pod Security's baseline does: required there.
    let unconfined: Vec<String> = planned
        .iter()
        .filter(|p| {
            p.keys
                .iter()
                .any(|k| k.kind == Kind::ValidatingAdmissionPolicy)
        })
        .map(|p| p.namespace.clone())
        .filter(|ns| {
            !matches!(
                inventory.pod_security_enforced(ns),
                Some("baseline" | "restricted")
            )
        })
        .collect();
    if let Some(ns) = unconfined.first() {
        return Err(Error::ClusterUnsupported {
            what: format!(
                "the shared namespace {ns} enforces no Pod Security level: its runners could start \
                 pods that reach the node in ways its admission policy does not judge (hostIPC, \
                 added capabilities, host ports, unsafe sysctls, an unconfined seccomp profile)"
            ),
            fix: format!(
                "kubectl label namespace {ns} pod-security.kubernetes.io/enforce=baseline (Pod \
                 Security admission, Kubernetes ≥ 1.25), then re-run; nothing was changed"
            ),
        });
    }
    // A planned kind the server does not serve stops the apply before any write.
    if let Some(kind) = planned_kinds
        .iter()
        .find(|k| inventory.unserved.contains(*k))
    {
        let ar = kind.api_resource();
        return Err(Error::ClusterUnsupported {
            what: format!(
                "the API server does not serve {}/{} {}, which guards the shared namespace",
                ar.group, ar.version, ar.kind
            ),
            fix: "ValidatingAdmissionPolicy needs Kubernetes 1.30 or later: upgrade the cluster, \
                  or give each repository its own namespace ({repo} in kubernetes.namespace) and \
                  remove kubernetes.sharedNamespace"
                .into(),
        });
    }
    // Where a planned name is not this instance's, in a namespace that
    // exists, another instance's or someone's object may have it.
    let unlisted_kinds = unlisted(&inventory, &planned).map(|k| k.kind).collect();
    inventory
        .load_others(client, &unlisted_kinds, options.page_size)
        .await?;
    let unknown = existence_of_unlisted(client, &inventory, &planned).await?;
    // Every conflict is found, from the keys alone, before anything is written.
    let conflicts: Vec<String> = all_keys()
        .filter(|key| existing(&inventory, &unknown, key) == Existing::Foreign)
        .map(|key| format!("{} {}", key.kind, qualified(&key.namespace, &key.name)))
        .collect();
    if !conflicts.is_empty() && !options.adopt {
        return Err(Error::Unmanaged { objects: conflicts });
    }
    debug!(requests = inventory.requests, "conflicts checked");
    if send_writes(options) {
        check_grants(client, &inventory, &planned).await?;
    }

    // Then repository by repository: a repository's plan and the desired
    // JSON of its objects live only while it is compared and written.
    let writes = Arc::new(AtomicUsize::new(0));
    let progress = crate::outcome::Progress::new(plans.count() as u64, "repositories");
    let send = send_writes(options);
    let (inventory, unknown) = (&inventory, &unknown);
    let outcomes: Vec<Result<RepoResult>> = futures::stream::iter(0..plans.count())
        .map(|i| {
            let writes = Arc::clone(&writes);
            let progress = progress.clone();
            async move {
                let repo = plans.repository_again(i)?;
                let steps = classify(inventory, unknown, &repo, options)?;
                let result = execute(client, &repo, steps, options, send, &writes).await;
                progress.done(&result.repository);
                Ok(result)
            }
        })
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    let mut results = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
    progress.finish();

    if options.prune {
        let planned = planned.into_iter().flat_map(|p| p.keys).collect();
        results.extend(prune::prune(client, inventory, &planned, options, &writes).await?);
    }
    Ok(Report {
        dry_run: options.dry_run,
        diff_only: options.diff_only,
        writes: writes.load(Ordering::Relaxed),
        repositories: results,
    })
}

/// Whether this apply sends writes (a dry run sends them too; `diff` none).
fn send_writes(options: &Options) -> bool {
    !options.diff_only
}

/// Access reviews sent at the same time.
const REVIEW_CONCURRENCY: usize = 16;

/// Before any write: the caller may write in every namespace where this
/// instance has nothing yet. A least-privilege identity (`bootstrap`) is
/// granted its rights per namespace by an administrator; a namespace it was
/// not granted is named with the fix instead of failing half-way. One
/// review when the caller may write everywhere (an administrator), else one
/// per new namespace; a re-run sends none.
async fn check_grants(
    client: &Client,
    inventory: &Inventory,
    planned: &[PlannedKeys],
) -> Result<()> {
    // The first namespaced object of each namespace the instance has no
    // object in yet.
    let granted = inventory.namespaces_with_objects();
    let mut first: BTreeMap<&str, &ObjectKey> = BTreeMap::new();
    for repo in planned {
        // What apply writes itself (not the administrator's objects).
        let written = |k: &&ObjectKey| !k.namespace.is_empty() && !k.kind.administrator_owned();
        for key in repo.keys.iter().filter(written) {
            if granted.contains(key.namespace.as_str()) {
                continue;
            }
            first.entry(key.namespace.as_str()).or_insert(key);
        }
    }
    let Some(sample) = first.values().next() else {
        return Ok(());
    };
    if may_patch(client, "", sample.kind, None).await? {
        return Ok(());
    }
    let reviewed: Vec<Result<(String, bool)>> = futures::stream::iter(first.into_values())
        .map(|key| async move {
            let allowed = may_patch(client, &key.namespace, key.kind, Some(&key.name)).await?;
            Ok((key.namespace.clone(), allowed))
        })
        .buffer_unordered(REVIEW_CONCURRENCY)
        .collect()
        .await;
    let mut missing: Vec<String> = Vec::new();
    for r in reviewed {
        let (namespace, allowed) = r?;
        if !allowed {
            missing.push(namespace);
        }
    }
    missing.sort();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::MissingGrant {
        namespaces: missing,
        fix: "The identity `runner-identity bootstrap` prints is granted its rights inside each \
              planned namespace by a RoleBinding there, so that it can never grant itself a right \
              outside them: an administrator applies bootstrap's output for this configuration \
              again (`runner-identity bootstrap -c <config> | kubectl apply -f -`), which creates \
              the new namespaces and their RoleBindings; then re-run apply"
            .into(),
    })
}

/// Whether the caller may server-side apply (`patch`) an object of `kind`
/// in `namespace` (`""`: in every namespace).
async fn may_patch(
    client: &Client,
    namespace: &str,
    kind: Kind,
    name: Option<&str>,
) -> Result<bool> {
    use k8s_openapi::api::authorization::v1::{
        SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let ar = kind.api_resource();
    let mut attributes =
        crate::access::resource_attributes(Some(namespace), &ar.group, &ar.plural, "", "patch");
    attributes.name = name.map(str::to_owned);
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let what = format!("review whether apply may write {kind} in {namespace}");
    let params = kube::api::PostParams::default();
    let answer = retry::kube(&what, || api.create(&params, &review))
        .await
        .map_err(|source| Error::Kube {
            action: "review access to",
            kind: kind.as_str(),
            namespace: namespace.to_owned(),
            name: name.unwrap_or("*").to_owned(),
            source: Box::new(source),
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The planned objects the inventory cannot account for (not managed, in a
/// namespace that exists): whether an object of that name exists, from one
/// metadata GET each, [`EXISTENCE_CONCURRENCY`] at a time. A re-run, and a
/// first apply into new namespaces, send none.
async fn existence_of_unlisted(
    client: &Client,
    inventory: &Inventory,
    planned: &[PlannedKeys],
) -> Result<BTreeMap<ObjectKey, bool>> {
    let unlisted: Vec<ObjectKey> = unlisted(inventory, planned)
        .filter(|key| !inventory.of_other_instance(key))
        .filter(|key| !inventory.unseen.contains(&key.kind))
        .cloned()
        .collect();
    let found: Vec<Result<(ObjectKey, bool)>> = futures::stream::iter(unlisted)
        .map(|key| async move {
            let exists = inventory::exists(client, &key).await?;
            Ok((key, exists))
        })
        .buffer_unordered(EXISTENCE_CONCURRENCY)
        .collect()
        .await;
    found.into_iter().collect()
}

/// The planned keys this instance does not manage that an object of the
/// cluster may hold: namespaced ones in namespaces that exist, and every
/// cluster-scoped one (namespaces themselves are all listed).
fn unlisted<'a>(
    inventory: &'a Inventory,
    planned: &'a [PlannedKeys],
) -> impl Iterator<Item = &'a ObjectKey> {
    planned
        .iter()
        .flat_map(|repo| {
            let namespace_exists = inventory.namespace_exists(&repo.namespace);
            repo.keys
                .iter()
                .filter(move |key| namespace_exists || key.namespace.is_empty())
        })
        .filter(|key| key.kind != Kind::Namespace && !inventory.is_managed(key))
}

/// Whether an object of a planned key exists, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Managed by this configuration instance.
    Ours,
    /// Not managed by it: unmanaged, or another instance's.
    Foreign,
    /// Absent.
    None,
}

/// What the inventory and the existence checks say about one planned key.
fn existing(
    inventory: &Inventory,
    unlisted: &BTreeMap<ObjectKey, bool>,
    key: &ObjectKey,
) -> Existing {
    // The inventory holds this instance's objects only (its lists select on
    // the instance label).
    match inventory.is_managed(key) {
        true => Existing::Ours,
        false if inventory.of_other_instance(key) => Existing::Foreign,
        false => {
            let exists = if key.kind == Kind::Namespace {
                inventory.namespace_exists(&key.name)
            } else {
                unlisted.get(key).copied().unwrap_or(false)
            };
            if exists {
                Existing::Foreign
            } else {
                Existing::None
            }
        }
    }
}

/// Decides, from the inventory and the existence checks, what each object of
/// a repository needs.
fn classify(
    inventory: &Inventory,
    unlisted: &BTreeMap<ObjectKey, bool>,
    repo: &RepoPlan,
    options: &Options,
) -> Result<Vec<Step>> {
    let namespace_exists = inventory.namespace_exists(&repo.names.namespace);
    let mut steps = Vec::with_capacity(6);
    for object in repo.objects() {
        let key = inventory::key_of(&object);
        let ar = object.kind().api_resource();
        let ObjectKey {
            kind,
            namespace,
            name,
        } = key.clone();
        let desired =
            compare::with_hash(serde_json::to_value(object).map_err(|e| Error::Serialize {
                what: format!("{kind} {name}"),
                message: e.to_string(),
            })?);
        let live = inventory.managed(&key);
        let action = match existing(inventory, unlisted, &key) {
            Existing::Ours => {
                if live
                    .as_ref()
                    .is_some_and(|l| compare::unchanged(&desired, l))
                {
                    Action::Unchanged
                } else {
                    Action::Update
                }
            }
            Existing::Foreign => Action::Conflict,
            Existing::None => Action::Create,
        };
        let action = if action == Action::Conflict && options.adopt {
            Action::Adopt
        } else {
            action
        };
        let unread = options.diff_only && inventory.unseen.contains(&kind);
        let action = if unread { Action::NotCompared } else { action };
        // Diffs are for `diff`; an apply's report does not hold every object's text.
        let diff = (options.diff_only
            && matches!(action, Action::Create | Action::Update | Action::Adopt))
        .then(|| compare::diff_text(&desired, live.as_ref()));
        steps.push(Step {
            kind,
            unvalidated: options.dry_run && !namespace_exists && !object.kind().cluster_scoped(),
            namespace,
            name,
            ar,
            desired,
            action,
            diff,
            reason: unread.then_some(
                "not compared: this identity may not read Secrets (a read is a read of their \
                 data; the read-only identity never gets it)",
            ),
        });
    }
    Ok(steps)
}

/// Writes the steps of one repository in order; the first failure stops the
/// repository (its later objects depend on the earlier ones).
async fn execute(
    client: &Client,
    repo: &RepoPlan,
    steps: Vec<Step>,
    options: &Options,
    send: bool,
    writes: &AtomicUsize,
) -> RepoResult {
    let mut result = RepoResult::new(&repo.names.repository);
    let mut failed = false;
    for step in steps {
        let mut object = ObjectResult {
            kind: step.kind,
            namespace: step.namespace.clone(),
            name: step.name.clone(),
            action: step.action,
            diff: step.diff,
            error: None,
            reason: step.reason.map(str::to_owned),
            server_validated: send && !step.unvalidated,
        };
        let needs_write = matches!(step.action, Action::Create | Action::Update | Action::Adopt);
        if failed {
            object.action = Action::Skipped;
        } else if needs_write && send && !step.unvalidated {
            let api = dynamic_api(client, &step.ar, &step.namespace);
            let params = patch_params(options.dry_run);
            let what = format!(
                "server-side apply of {} {}",
                step.kind,
                qualified(&step.namespace, &step.name)
            );
            let patch = Patch::Apply(&step.desired);
            let outcome = retry::kube(&what, || api.patch(&step.name, &params, &patch)).await;
            writes.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok(_) => {
                    debug!(kind = %step.kind, namespace = %step.namespace, name = %step.name, action = ?step.action, "applied")
                }
                Err(e) => {
                    warn!(repository = %repo.names.repository, "{what} failed: {e}");
                    let owned = step.kind.administrator_owned();
                    let hint = match &e {
                        kube::Error::Api(s) if s.code == 403 && owned => {
                            "; it confines what runs in the namespace, so the identity `bootstrap` \
                             prints only reads it: an administrator applies bootstrap's output \
                             for this configuration again"
                        }
                        _ => "",
                    };
                    object.error = Some(format!("{what}: {e}{hint}"));
                    object.action = Action::Failed;
                    failed = true;
                }
            }
        }
        result.objects.push(object);
    }
    info!(repository = %result.repository, summary = %result.counts(), "repository done");
    result
}

/// `namespace/name`, or `name` for cluster-scoped objects.
pub(crate) fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_cluster_scoped_planned_name_is_checked_even_in_a_new_namespace() {
        // Before, every key of a repository whose namespace did not exist
        // yet was skipped: a ValidatingAdmissionPolicy of someone else with
        // the planned name would have been written over on a first apply.
        let planned = [PlannedKeys {
            namespace: "new".into(),
            keys: vec![
                key(Kind::Namespace, "", "new"),
                key(Kind::ValidatingAdmissionPolicy, "", "guard-new"),
                key(Kind::ServiceAccount, "new", "gha-runner"),
            ],
        }];
        let inventory = Inventory::with_namespaces("i", ["old"]);
        let keys: Vec<&ObjectKey> = unlisted(&inventory, &planned).collect();
        assert_eq!(
            keys,
            [&key(Kind::ValidatingAdmissionPolicy, "", "guard-new")]
        );
        let existing = Inventory::with_namespaces("i", ["new"]);
        assert_eq!(unlisted(&existing, &planned).count(), 2);
    }
}
