//! `job-started`: in a grouped scale set's runner pod, the hook the runner
//! runs before any container (ACTIONS_RUNNER_HOOK_JOB_STARTED). It reads the
//! job's repository from the runner's environment, refuses one outside the
//! group (a non-zero exit: no workflow pod starts), and writes that
//! repository's hook template to the file ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE
//! names, which the container hooks read at `prepare_job` and at every
//! container step (docs/security.md: grouped scale sets).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{self, Group, Settings};
use crate::names::RepoNames;
use crate::subject::SubjectRepository;
use crate::templates::Templates;
use crate::verify::runner::token_namespace;
use crate::{Error, Result, plan};

/// `job-started` arguments.
#[derive(Debug, Args)]
pub struct JobStartedArgs {
    /// The group's configuration: an absolute path outside the runner's work
    /// directory (the hook runs in the job's workspace, which the job's pod
    /// writes).
    #[arg(short, long, required_unless_present = "config_text")]
    pub config: Option<PathBuf>,
    /// The configuration as text instead of a file: how the runner of the
    /// gha-runner-scale-set-experimental chart gets it (`runner.env`).
    #[arg(
        long,
        env = "RUNNER_IDENTITY_CONFIG_TEXT",
        hide_env_values = true,
        conflicts_with = "config"
    )]
    pub config_text: Option<String>,
    /// The group, when the configuration has more than one.
    #[arg(long, env = "RUNNER_IDENTITY_GROUP", hide_env_values = true)]
    pub group: Option<String>,
    /// Directory of replacement templates (as `plan --templates`).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// The runner's pod-bound ServiceAccount token: the claim is recorded
    /// and the runner checks run with it.
    #[arg(long, default_value = crate::verify::runner::IN_CLUSTER_TOKEN)]
    pub token_file: PathBuf,
    /// Out of a pod only: kubeconfig naming the API server and its CA (its
    /// credentials are replaced by --token-file). In a pod the in-cluster
    /// configuration is used explicitly.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// The job's repository as the runner names it: the github context's
/// `repository`, `repository_id` and `repository_owner_id`, which the runner
/// exports to the hook and the job cannot change (no step has run yet). A
/// missing or malformed value is a local problem (the runner always sets
/// `GITHUB_REPOSITORY`).
fn job_repository(env: &BTreeMap<String, String>) -> Result<SubjectRepository> {
    let usage = |message: String| Error::Usage { message };
    let (owner, repo) = env
        .get("GITHUB_REPOSITORY")
        .and_then(|v| v.split_once('/'))
        .filter(|(owner, repo)| !owner.is_empty() && !repo.is_empty())
        .ok_or_else(|| {
            usage("GITHUB_REPOSITORY is not `owner/name`: job-started runs as the runner's job-started hook (ACTIONS_RUNNER_HOOK_JOB_STARTED)".into())
        })?;
    let number = |key: &str| -> Result<Option<u64>> {
        match env.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| usage(format!("{key} is `{v}`, not a number"))),
        }
    };
    Ok(SubjectRepository {
        owner: owner.to_owned(),
        owner_id: number("GITHUB_REPOSITORY_OWNER_ID")?,
        repo: repo.to_owned(),
        repo_id: number("GITHUB_REPOSITORY_ID")?,
    })
}

/// The member of `group` the job's repository is, or why it is none: by
/// name, and by id wherever the configuration knows the id (a deleted
/// repository's name can be taken by another).
pub fn member_of(
    settings: &Settings,
    group: &Group,
    job: &SubjectRepository,
) -> std::result::Result<usize, String> {
    // GitHub's names are ASCII and compared without case; nothing else
    // (a Kelvin sign folds to `k` under Unicode rules) matches.
    let full_name = job.full_name();
    let Some(&member) = group.members.iter().find(|&&i| {
        full_name.is_ascii()
            && settings.repositories[i]
                .full_name()
                .eq_ignore_ascii_case(&full_name)
    }) else {
        return Err(format!(
            "{} is not a repository of group `{}`",
            full_name, group.name
        ));
    };
    let repo = &settings.repositories[member];
    if let Some(want) = repo.id
        && job.repo_id != Some(want)
    {
        return Err(format!(
            "{} has repository id {}, but the configuration pins {want}: the name now belongs to another repository",
            full_name,
            job.repo_id
                .map_or_else(|| "(none given)".to_owned(), |i| i.to_string())
        ));
    }
    if let Some(want) = settings.config.github.owner_id
        && job.owner_id != Some(want)
    {
        return Err(format!(
            "{}'s owner has id {}, but the configuration pins github.ownerId {want}",
            full_name,
            job.owner_id
                .map_or_else(|| "(none given)".to_owned(), |i| i.to_string())
        ));
    }
    Ok(member)
}

/// The runner's work directory (the parent of `RUNNER_WORKSPACE`), which
/// the job's pod shares or copies back into, resolved through links.
fn work_directory(env: &BTreeMap<String, String>) -> Result<PathBuf> {
    let workspace = env
        .get("RUNNER_WORKSPACE")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::Usage {
            message: "RUNNER_WORKSPACE is not set: job-started runs as the runner's job-started hook (ACTIONS_RUNNER_HOOK_JOB_STARTED)".into(),
        })?;
    let work = Path::new(workspace)
        .parent()
        .filter(|w| !w.as_os_str().is_empty())
        .unwrap_or(Path::new(workspace));
    // Unresolved, a link to it would pass for another directory.
    std::fs::canonicalize(work).map_err(|source| Error::Io {
        action: "resolve the runner's work directory (RUNNER_WORKSPACE's parent)",
        path: work.to_owned(),
        source,
    })
}

/// `path`, refused unless it is absolute, without `..`, without a symbolic
/// link on the way to it, and outside `work`.
fn outside_work(path: &Path, what: &str, work: &Path) -> Result<PathBuf> {
    let usage = |message: String| Error::Usage { message };
    if !path.is_absolute()
        || path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(usage(format!(
            "{what} `{}` is not an absolute path without `..`",
            path.display()
        )));
    }
    for ancestor in path.ancestors().skip(1) {
        if std::fs::symlink_metadata(ancestor).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(usage(format!(
                "{what} `{}`: {} is a symbolic link; name the real path",
                path.display(),
                ancestor.display()
            )));
        }
    }
    // The path itself may be a link (a ConfigMap mount's files are), as long
    // as it resolves outside the work directory too.
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    if path.starts_with(work) || resolved.starts_with(work) {
        return Err(usage(format!(
            "{what} `{}` is under the runner's work directory {}, which the job's pod writes: \
             keep it in the runner container's own files",
            path.display(),
            work.display()
        )));
    }
    Ok(path.to_owned())
}

/// A templates directory and every file in it outside `work` (each file may
/// be a link, as a ConfigMap mount's are, resolving outside it).
fn templates_outside_work(dir: &Path, work: &Path) -> Result<()> {
    outside_work(dir, "--templates", work)?;
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        action: "read the templates directory",
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        outside_work(&entry.path(), "--templates file", work)?;
    }
    Ok(())
}

/// The template file: outside the work directory, in a real directory.
fn template_path(env: &BTreeMap<String, String>, work: &Path) -> Result<PathBuf> {
    let path = env
        .get("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Usage {
            message: "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE is not set: the runner container names the template file the hooks read".into(),
        })?;
    let path = outside_work(&path, "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE", work)?;
    let folder = path.parent().unwrap_or(Path::new("/"));
    let real = std::fs::symlink_metadata(folder).map_err(|source| Error::Io {
        action: "read the folder of the hook template",
        path: folder.to_owned(),
        source,
    })?;
    if !real.is_dir() {
        return Err(Error::Usage {
            message: format!(
                "{} is not a directory: mount the runner container's own emptyDir there",
                folder.display()
            ),
        });
    }
    Ok(path)
}

/// Replaces `path` with `text`: written beside it under a fresh name, then
/// renamed over it. Exclusive creation follows no symbolic link (POSIX:
/// O_CREAT|O_EXCL fails on a link, dangling or not).
fn write_template(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        action: "write the hook template",
        path: path.to_owned(),
        source,
    };
    // Process ids repeat in containers: the time makes the name fresh.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temporary = path.with_extension(format!("tmp-{}-{nanos}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        // Read-only, for its owner too: the runner (uid 1001) writes files
        // of the work volume the job controls, following links (the event
        // payload of each step), and a link there to this file must not let
        // the job's steps overwrite it. Renaming over it needs the folder's
        // rights only.
        .mode(0o444)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// Creates this runner pod's claim (`<pod>-claim`, immutable, owned by the
/// pod so that it goes with it), naming the member's job ServiceAccount.
/// The pod comes from the runner's bound token, as the admission policy
/// reads it. One job per runner pod: an existing claim refuses the job.
async fn record_claim(
    args: &JobStartedArgs,
    client: std::result::Result<&kube::Client, &crate::verify::VerifyError>,
    group: &str,
    names: &RepoNames,
) -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use plan::group_admission::{CLAIM_LABEL, claim_name};
    let refuse = |reason: String| Error::JobRefused {
        group: group.to_owned(),
        reason,
    };
    let token = std::fs::read_to_string(&args.token_file).map_err(|source| Error::Io {
        action: "read the runner's ServiceAccount token",
        path: args.token_file.clone(),
        source,
    })?;
    let claims = crate::jwt::claims(&token).map_err(|e| {
        refuse(format!(
            "the runner's token is not a JWT ({e}): the claim needs a pod-bound token"
        ))
    })?;
    let pod = claims.pointer("/kubernetes.io/pod");
    let field = |key: &str| {
        pod.and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let (Some(pod_name), Some(pod_uid)) = (field("name"), field("uid")) else {
        return Err(refuse(
            "the runner's token is bound to no pod (a legacy token): the group's admission \
             policy tells runners apart by their pod"
                .into(),
        ));
    };
    let client = client.map_err(|e| {
        refuse(format!(
            "cannot reach the API server to record the claim: {e}"
        ))
    })?;
    let claim = ConfigMap {
        metadata: ObjectMeta {
            name: Some(claim_name(&pod_name)),
            namespace: Some(names.namespace.clone()),
            labels: Some(BTreeMap::from([
                (CLAIM_LABEL.to_owned(), group.to_owned()),
                (
                    crate::kvp::MANAGED_BY_LABEL.to_owned(),
                    crate::kvp::MANAGED_BY.to_owned(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                crate::kvp::REPOSITORY_ANNOTATION.to_owned(),
                names.repository.clone(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod_name.clone(),
                uid: pod_uid,
                ..Default::default()
            }]),
            ..Default::default()
        },
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            "serviceAccountName".to_owned(),
            names.job_service_account.clone(),
        )])),
        ..Default::default()
    };
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &names.namespace);
    match api.create(&kube::api::PostParams::default(), &claim).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(refuse(format!(
            "runner pod {pod_name} has a claim already: a runner runs one job"
        ))),
        Err(e) => Err(refuse(format!(
            "recording the claim {}/{} failed: {e}",
            names.namespace,
            claim_name(&pod_name)
        ))),
    }
}

/// Runs the hook: exit 0 with the template written, exit 1 (and no
/// template) for a repository outside the group.
pub async fn run(args: &JobStartedArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    // First of all, no template a previous job left may serve this one,
    // whatever fails below (removing a link removes the link, not what it
    // names).
    if let Some(previous) = env
        .get("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        match std::fs::remove_file(&previous) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "remove the previous job's hook template",
                    path: previous,
                    source,
                }
                .into());
            }
        }
    }
    // The runner checks' reads need the token's namespace alone: started
    // now, on the worker threads, they run while the configuration is read.
    let client =
        crate::verify::runner::token_client(args.kubeconfig.as_deref(), &args.token_file).await;
    let early_reads = match (&client, token_namespace(&args.token_file)) {
        (Ok(client), Ok(namespace)) => {
            let client = client.clone();
            Some(tokio::spawn(async move {
                crate::verify::runner::read(&client, &namespace, true).await
            }))
        }
        _ => None,
    };
    let work = work_directory(&env)?;
    let path = template_path(&env, &work)?;
    if env
        .get("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER")
        .map(String::as_str)
        != Some("true")
    {
        return Err(Error::Usage {
            message: "ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER is not `true`: a job without a container would run in the runner container, beside the ServiceAccount that may start every member's pods".into(),
        }
        .into());
    }
    if let Some(dir) = &args.templates {
        templates_outside_work(dir, &work)?;
    }
    let (settings, source) = match (&args.config, &args.config_text) {
        (_, Some(text)) => (
            config::parse(text, Path::new("RUNNER_IDENTITY_CONFIG_TEXT"))?,
            "RUNNER_IDENTITY_CONFIG_TEXT".to_owned(),
        ),
        (Some(path), None) => (
            config::load(&outside_work(path, "-c", &work)?)?,
            path.display().to_string(),
        ),
        (None, None) => {
            return Err(Error::Usage {
                message:
                    "name the group's configuration with -c FILE or RUNNER_IDENTITY_CONFIG_TEXT"
                        .into(),
            }
            .into());
        }
    };
    let templates = Templates::load(args.templates.as_deref())?;
    let group = match (&args.group, settings.groups.as_slice()) {
        (Some(name), groups) => groups.iter().find(|g| &g.name == name),
        (None, [only]) => Some(only),
        (None, _) => None,
    }
    .ok_or_else(|| Error::Usage {
        message: format!(
            "{source}: name one of its groups with --group ({})",
            settings
                .groups
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let job = job_repository(&env)?;
    let member = member_of(&settings, group, &job).map_err(|reason| Error::JobRefused {
        group: group.name.clone(),
        reason,
    })?;
    let (names, text) = plan::member_hook_template(&settings, &templates, group, member)?;
    write_template(&path, &text)?;
    writeln!(
        out,
        "job-started: {} runs as ServiceAccount {}/{} (template {})",
        names.repository,
        names.namespace,
        names.job_service_account,
        path.display()
    )?;
    // The claim the group's admission policy judges this runner's pods by,
    // and the runner's own identity, rights and template as `verify runner`
    // checks them on a repository's own scale set: both before any step of
    // the job runs, concurrently (the claim's write waits on etcd while the
    // reviews are answered), on one client.
    let k8s = &settings.config.kubernetes;
    let (claiming, verifying) = (k8s.group_admission_policy, k8s.verify_runner.enabled);
    if !verifying && let Some(reads) = &early_reads {
        reads.abort();
    }
    if !claiming && !verifying {
        return Ok(());
    }
    let inputs = crate::verify::runner::RunnerInputs {
        settings: settings.clone(),
        kubeconfig: args.kubeconfig.clone(),
        token_file: args.token_file.clone(),
        hook_template: Some(path.clone()),
        repository: Some(names.repository.clone()),
        require_job_container: env.get("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER").cloned(),
        strict: k8s.verify_runner.strict,
    };
    let claim = async {
        match claiming {
            true => Some(record_claim(args, client.as_ref(), &group.name, &names).await),
            false => None,
        }
    };
    let checks = async {
        match verifying {
            true => {
                let reads = match early_reads {
                    Some(task) => task.await.ok(),
                    None => None,
                };
                let client = client.as_ref().ok().cloned();
                Some(crate::verify::runner::verify_with(&inputs, client, reads).await)
            }
            false => None,
        }
    };
    let (claimed, verdict) = tokio::join!(claim, checks);
    if let Some(Ok(())) = claimed {
        writeln!(
            out,
            "job-started: claim recorded: this runner starts pods only as {}",
            names.job_service_account
        )?;
    }
    if let Some(verdict) = &verdict {
        write!(out, "{verdict}")?;
    }
    let failed = match (claimed, verdict) {
        (Some(Err(e)), _) => Some(e),
        (_, Some(v)) if !v.passed() => Some(Error::JobRefused {
            group: group.name.clone(),
            reason: "the runner checks failed (above)".into(),
        }),
        _ => None,
    };
    match failed {
        // No workflow pod may start from a runner that failed either.
        Some(e) => {
            std::fs::remove_file(&path).ok();
            Err(e.into())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        let text = format!(
            "github: {{owner: acme, ownerId: 7}}\nrepositories:\n  - {{name: api, id: 41}}\n  - {{name: web, id: 42}}\n  - docs\n\
             cluster: {{name: prod, oidcIssuer: https://o.example/id/1}}\n\
             aws: {{accountId: '111122223333', mode: irsa}}\n\
             groups:\n  - {{name: platform, repositories: [api, web]}}\n{extra}"
        );
        config::parse(&text, Path::new("t.yaml")).unwrap()
    }

    fn job(name: &str, id: Option<u64>, owner_id: Option<u64>) -> SubjectRepository {
        let (owner, repo) = name.split_once('/').unwrap();
        SubjectRepository {
            owner: owner.to_owned(),
            owner_id,
            repo: repo.to_owned(),
            repo_id: id,
        }
    }

    #[test]
    fn a_job_is_a_member_by_name_and_by_every_id_the_configuration_pins() {
        let s = settings("");
        let g = &s.groups[0];
        let name_of = |i: usize| s.repositories[i].name.clone();
        assert_eq!(
            member_of(&s, g, &job("ACME/Api", Some(41), Some(7))).map(name_of),
            Ok("api".to_owned())
        );
        assert_eq!(
            member_of(&s, g, &job("acme/web", Some(42), Some(7))).map(name_of),
            Ok("web".to_owned())
        );
        for (j, says) in [
            (
                job("acme/docs", None, Some(7)),
                "is not a repository of group `platform`",
            ),
            (
                job("other/api", Some(41), Some(7)),
                "is not a repository of group `platform`",
            ),
            // The Kelvin sign folds to `k` under Unicode rules only.
            (
                job("acme/we\u{212A}", Some(42), Some(7)),
                "is not a repository",
            ),
            // A recycled name: another repository took `web`.
            (job("acme/web", Some(43), Some(7)), "pins 42"),
            (job("acme/web", None, Some(7)), "(none given)"),
            // Another owner of the same name.
            (job("acme/api", Some(41), Some(8)), "github.ownerId 7"),
        ] {
            let e = member_of(&s, g, &j).unwrap_err();
            assert!(e.contains(says), "{j:?}: {e}");
        }
    }

    #[test]
    fn the_template_is_written_only_outside_the_work_directory_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let env = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let own = root.join("own");
        std::fs::create_dir(&own).unwrap();
        let work_dir = root.join("_work");
        std::fs::create_dir_all(work_dir.join("repo")).unwrap();
        let workspace = (
            "RUNNER_WORKSPACE",
            work_dir.join("repo").display().to_string(),
        );
        let work = work_directory(&env(std::slice::from_ref(&workspace))).unwrap();
        assert_eq!(work, work_dir);
        assert!(
            work_directory(&env(&[]))
                .unwrap_err()
                .to_string()
                .contains("RUNNER_WORKSPACE")
        );
        let ok = own.join("template.yaml");
        let key = "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE";
        assert_eq!(
            template_path(&env(&[(key, ok.display().to_string())]), &work).unwrap(),
            ok
        );
        // A folder the job writes, reached directly or through a link; a
        // link anywhere above; a relative path; `..`.
        std::os::unix::fs::symlink(&work_dir, root.join("link")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("up")).unwrap();
        for (path, says) in [
            (
                work_dir.join("template.yaml").display().to_string(),
                "under the runner's work directory",
            ),
            (
                root.join("link/template.yaml").display().to_string(),
                "symbolic link",
            ),
            (
                root.join("up/own/template.yaml").display().to_string(),
                "symbolic link",
            ),
            ("template.yaml".to_owned(), "absolute path"),
            (format!("{}/../_work/t.yaml", own.display()), "without `..`"),
        ] {
            let e = template_path(&env(&[(key, path.clone())]), &work)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{path}: {e}");
        }
        assert!(
            template_path(&env(&[]), &work)
                .unwrap_err()
                .to_string()
                .contains("is not set")
        );

        // A configuration that is itself a link into the work directory (the
        // path is outside, what it names is inside), and a templates
        // directory holding one: refused. A link that resolves outside (a
        // ConfigMap mount's files are links) is fine.
        let planted = work_dir.join("runner-identity.yaml");
        std::fs::write(&planted, "planted").unwrap();
        let cfg = root.join("cfg");
        std::fs::create_dir(&cfg).unwrap();
        std::os::unix::fs::symlink(&planted, cfg.join("config.yaml")).unwrap();
        let e = outside_work(&cfg.join("config.yaml"), "-c", &work)
            .unwrap_err()
            .to_string();
        assert!(e.contains("under the runner's work directory"), "{e}");
        let templates = root.join("templates");
        std::fs::create_dir(&templates).unwrap();
        std::os::unix::fs::symlink(&planted, templates.join("hook-template.yaml")).unwrap();
        let e = templates_outside_work(&templates, &work)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--templates file"), "{e}");
        let mounted = root.join("mounted.yaml");
        std::fs::write(&mounted, "real").unwrap();
        std::os::unix::fs::symlink(&mounted, cfg.join("via-link.yaml")).unwrap();
        assert!(outside_work(&cfg.join("via-link.yaml"), "-c", &work).is_ok());
        // An unresolvable work directory is an error, not a guess.
        let gone = (
            "RUNNER_WORKSPACE",
            root.join("gone/repo").display().to_string(),
        );
        assert!(work_directory(&env(&[gone])).is_err());

        // Written over an old file, never through a link at the temporary name.
        std::fs::write(&ok, "old").unwrap();
        write_template(&ok, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&ok).unwrap(), "new");
        let leftovers: Vec<_> = std::fs::read_dir(&own).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
        // Read-only for its owner too (0o644 before): a step's link in the
        // work volume to it cannot make the runner (uid 1001) write it.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ok).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444, "{mode:o}");
        // And the next job's template replaces it all the same.
        write_template(&ok, "next").unwrap();
        assert_eq!(std::fs::read_to_string(&ok).unwrap(), "next");
    }
}
