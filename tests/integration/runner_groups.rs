//! The groups' GitHub runner groups against a wiremock GitHub Enterprise
//! Server (`/api/v3`) that keeps state as GitHub's REST API documents it
//! (`/orgs/{org}/actions/runner-groups`: list paged with `per_page`, create,
//! update, list and replace the repositories; 204 for PUT): created with
//! exactly the group's repositories, drift reported by `diff` and repaired by
//! `apply`, runner groups the configuration does not name never written,
//! the default group refused, a public member refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use runner_identity::config::Settings;
use runner_identity::github::runner_groups::{self, Action};
use runner_identity::github::{Github, RetryPolicy};
use serde_json::{Value, json};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// One runner group as GitHub keeps it.
#[derive(Debug, Clone)]
struct Group {
    name: String,
    visibility: String,
    default: bool,
    allows_public: bool,
    repositories: Vec<u64>,
    /// Names of the self-hosted runners registered in it.
    runners: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<u64, Group>,
    /// Repository id → (full name, private).
    repositories: BTreeMap<u64, (String, bool)>,
    /// Every write: (method, path).
    writes: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn group_json(id: u64, g: &Group) -> Value {
        json!({"id": id, "name": g.name, "visibility": g.visibility, "default": g.default,
               "inherited": false, "allows_public_repositories": g.allows_public,
               "restricted_to_workflows": false, "selected_workflows": [],
               "workflow_restrictions_read_only": false})
    }
}

/// `page` of `items` with `per_page` items, and the `Link` to the next.
fn paged(req: &Request, key: &str, items: Vec<Value>) -> ResponseTemplate {
    let query: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
    let per_page: usize = query
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let page: usize = query.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let total = items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut response =
        ResponseTemplate::new(200).set_body_json(json!({"total_count": total, key: slice}));
    if page * per_page < total {
        let mut next = req.url.clone();
        next.query_pairs_mut()
            .clear()
            .append_pair("per_page", &per_page.to_string())
            .append_pair("page", &(page + 1).to_string());
        response = response.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
    }
    response
}

impl wiremock::Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap();
        let path = req.url.path().trim_start_matches("/api/v3").to_owned();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = req.method.as_str().to_owned();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        if method != "GET" {
            state.writes.push((method.clone(), path.clone()));
        }
        let id = parts.get(4).and_then(|i| i.parse::<u64>().ok());
        match (method.as_str(), parts.len(), id) {
            ("GET", 4, _) => {
                let items = state
                    .groups
                    .iter()
                    .map(|(i, g)| Fake::group_json(*i, g))
                    .collect();
                paged(req, "runner_groups", items)
            }
            ("POST", 4, _) => {
                let name = body["name"].as_str().unwrap().to_owned();
                if state
                    .groups
                    .values()
                    .any(|g| g.name.eq_ignore_ascii_case(&name))
                {
                    return ResponseTemplate::new(422)
                        .set_body_json(json!({"message": "Name already exists"}));
                }
                let id = state.groups.keys().max().copied().unwrap_or(0) + 1;
                let group = Group {
                    name,
                    visibility: body["visibility"].as_str().unwrap_or("all").to_owned(),
                    default: false,
                    allows_public: body["allows_public_repositories"]
                        .as_bool()
                        .unwrap_or(false),
                    repositories: body["selected_repository_ids"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default(),
                    runners: Vec::new(),
                };
                let out = Fake::group_json(id, &group);
                state.groups.insert(id, group);
                ResponseTemplate::new(201).set_body_json(out)
            }
            ("PATCH", 5, Some(id)) => {
                let Some(g) = state.groups.get_mut(&id) else {
                    return ResponseTemplate::new(404);
                };
                if let Some(v) = body["visibility"].as_str() {
                    g.visibility = v.to_owned();
                }
                if let Some(p) = body["allows_public_repositories"].as_bool() {
                    g.allows_public = p;
                }
                let out = Fake::group_json(id, g);
                ResponseTemplate::new(200).set_body_json(out)
            }
            ("GET", 6, Some(id)) if parts[5] == "runners" => {
                let Some(g) = state.groups.get(&id) else {
                    return ResponseTemplate::new(404);
                };
                let items = g
                    .runners
                    .iter()
                    .enumerate()
                    .map(|(i, name)| json!({"id": i + 1, "name": name, "os": "linux", "status": "online"}))
                    .collect();
                paged(req, "runners", items)
            }
            ("GET", 6, Some(id)) => {
                let Some(g) = state.groups.get(&id) else {
                    return ResponseTemplate::new(404);
                };
                let items = g
                    .repositories
                    .iter()
                    .map(|r| {
                        let (name, private) = state.repositories[r].clone();
                        json!({"id": r, "full_name": name, "private": private})
                    })
                    .collect();
                paged(req, "repositories", items)
            }
            ("PUT", 6, Some(id)) => {
                let ids: Vec<u64> = body["selected_repository_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_u64)
                    .collect();
                match state.groups.get_mut(&id) {
                    Some(g) => {
                        g.repositories = ids;
                        ResponseTemplate::new(204)
                    }
                    None => ResponseTemplate::new(404),
                }
            }
            _ => ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
        }
    }
}

struct Setup {
    server: MockServer,
    fake: Fake,
    settings: Settings,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// Group `platform` of `acme/api` (id 901) and `acme/web` (902); the
    /// organisation has its Default group (id 1) and a group `other` (id 2)
    /// of another team.
    async fn new() -> Setup {
        let server = MockServer::start().await;
        let fake = Fake::default();
        {
            let mut s = fake.0.lock().unwrap();
            for (id, name, private) in [
                (901, "acme/api", true),
                (902, "acme/web", true),
                (950, "acme/other-team", true),
                (960, "acme/intruder", true),
                (970, "acme/site", false),
            ] {
                s.repositories.insert(id, (name.to_owned(), private));
            }
            s.groups.insert(
                1,
                Group {
                    name: "Default".into(),
                    visibility: "all".into(),
                    default: true,
                    allows_public: false,
                    repositories: vec![],
                    runners: Vec::new(),
                },
            );
            s.groups.insert(
                2,
                Group {
                    name: "other".into(),
                    visibility: "selected".into(),
                    default: false,
                    allows_public: true,
                    repositories: vec![950],
                    runners: Vec::new(),
                },
            );
        }
        Mock::given(path_regex("^/api/v3/orgs/acme/actions/runner-groups"))
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "ghp_test_token_0123456789\n").unwrap();
        let text = format!(
            "github:\n  url: {}\n  owner: acme\n  ownerId: 900\n  auth: {{token: {{file: {}}}}}\n\
             repositories:\n  - {{name: api, id: 901}}\n  - {{name: web, id: 902}}\n  - docs\n\
             groups:\n  - {{name: platform, repositories: [api, web]}}\n\
             cluster: {{name: c, oidcIssuer: https://oidc.example.com/id/X}}\n\
             aws: {{accountId: '111122223333', mode: irsa}}\n",
            server.uri(),
            token.display()
        );
        let settings =
            runner_identity::config::parse(&text, std::path::Path::new("t.yaml")).unwrap();
        Setup {
            server,
            fake,
            settings,
            _dir: dir,
        }
    }

    async fn reconcile(&self, no_writes: bool) -> runner_groups::Report {
        let gh = Github::connect(&self.settings, RetryPolicy::default())
            .await
            .unwrap();
        runner_groups::reconcile(
            &gh,
            "acme",
            &runner_groups::planned(&self.settings),
            runner_groups::Options {
                no_writes,
                adopt: false,
            },
        )
        .await
        .unwrap()
    }

    fn group(&self, name: &str) -> Option<(u64, Group)> {
        let s = self.fake.0.lock().unwrap();
        s.groups
            .iter()
            .find(|(_, g)| g.name == name)
            .map(|(i, g)| (*i, g.clone()))
    }

    fn writes(&self) -> Vec<(String, String)> {
        self.fake.0.lock().unwrap().writes.clone()
    }
}

#[tokio::test]
async fn apply_creates_the_groups_runner_group_with_exactly_its_repositories() {
    let s = Setup::new().await;
    // diff: what would be created, nothing written.
    let report = s.reconcile(true).await;
    assert_eq!(report.runner_groups[0].action, Action::WouldChange);
    assert!(
        report.runner_groups[0]
            .changes
            .contains(&"+acme/api".to_owned())
    );
    assert!(s.writes().is_empty());
    assert!(s.group("platform").is_none());

    let report = s.reconcile(false).await;
    assert_eq!(
        report.runner_groups[0].action,
        Action::Created,
        "{report:?}"
    );
    let (_, g) = s.group("platform").unwrap();
    assert_eq!(g.visibility, "selected");
    assert!(!g.allows_public);
    assert_eq!(g.repositories, vec![901, 902]);
    // Converged: a second run writes nothing.
    let before = s.writes().len();
    let report = s.reconcile(false).await;
    assert_eq!(report.runner_groups[0].action, Action::Unchanged);
    assert_eq!(report.failed(), 0);
    assert_eq!(s.writes().len(), before);
    // Nothing was written to the groups the configuration does not name.
    assert!(
        s.writes()
            .iter()
            .all(|(_, p)| !p.ends_with("/runner-groups/1") && !p.contains("/runner-groups/2")),
        "{:?}",
        s.writes()
    );
    let (_, other) = s.group("other").unwrap();
    assert_eq!(other.repositories, vec![950]);
    assert!(other.allows_public);
}

#[tokio::test]
async fn drift_is_reported_by_diff_and_repaired_by_apply() {
    let s = Setup::new().await;
    s.reconcile(false).await;
    let (id, _) = s.group("platform").unwrap();
    // Someone opens the runner group to another repository and to public ones.
    {
        let mut state = s.fake.0.lock().unwrap();
        let g = state.groups.get_mut(&id).unwrap();
        g.repositories = vec![901, 960];
        g.allows_public = true;
        g.visibility = "all".into();
    }
    let writes = s.writes().len();
    let report = s.reconcile(true).await;
    let r = &report.runner_groups[0];
    assert_eq!(r.action, Action::WouldChange);
    for change in [
        "+acme/web",
        "-acme/intruder (not in the group)",
        "public repositories allowed → not allowed",
        "visibility all → selected",
    ] {
        assert!(
            r.changes.contains(&change.to_owned()),
            "{change}: {:?}",
            r.changes
        );
    }
    assert_eq!(s.writes().len(), writes, "diff writes nothing");
    assert_eq!(report.changes(), 1);

    let report = s.reconcile(false).await;
    assert_eq!(report.runner_groups[0].action, Action::Updated);
    let (_, g) = s.group("platform").unwrap();
    assert_eq!(g.repositories, vec![901, 902]);
    assert!(!g.allows_public);
    assert_eq!(g.visibility, "selected");
    assert_eq!(
        s.reconcile(false).await.runner_groups[0].action,
        Action::Unchanged
    );
}

#[tokio::test]
async fn the_default_group_and_public_members_are_refused() {
    // A group named like the organisation's default runner group.
    let s = Setup::new().await;
    let mut settings = s.settings.clone();
    settings.groups[0].name = "default".into();
    let gh = Github::connect(&settings, RetryPolicy::default())
        .await
        .unwrap();
    let report = runner_groups::reconcile(
        &gh,
        "acme",
        &runner_groups::planned(&settings),
        runner_groups::Options::default(),
    )
    .await
    .unwrap();
    let r = &report.runner_groups[0];
    assert_eq!(r.action, Action::Refused);
    assert!(
        r.error.as_ref().unwrap().contains("default runner group"),
        "{r:?}"
    );
    assert_eq!(report.failed(), 1);
    assert!(s.writes().is_empty(), "{:?}", s.writes());

    // A member that is public: GitHub sends it no job (public repositories
    // not allowed), and apply says so.
    s.reconcile(false).await;
    let (id, _) = s.group("platform").unwrap();
    s.fake
        .0
        .lock()
        .unwrap()
        .repositories
        .get_mut(&902)
        .unwrap()
        .1 = false;
    let report = s.reconcile(false).await;
    let r = &report.runner_groups[0];
    assert_eq!(r.action, Action::Failed, "{r:?}");
    assert!(
        r.error.as_ref().unwrap().contains("acme/web is public"),
        "{r:?}"
    );
    assert_eq!(s.group("platform").unwrap().0, id);
}

#[tokio::test]
async fn a_token_without_the_runner_permission_gets_the_fix() {
    let s = Setup::new().await;
    s.server.reset().await;
    Mock::given(path_regex("^/api/v3/orgs/acme/actions/runner-groups"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Must have admin rights to Repository."})),
        )
        .mount(&s.server)
        .await;
    let gh = Github::connect(&s.settings, RetryPolicy::default())
        .await
        .unwrap();
    let e = runner_groups::reconcile(
        &gh,
        "acme",
        &runner_groups::planned(&s.settings),
        runner_groups::Options::default(),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("admin:org") && text.contains("Self-hosted runners"),
        "{text}"
    );
    assert_eq!(e.exit_code(), 3, "{text}");
}

#[tokio::test]
async fn a_hundred_and_fifty_runner_groups_are_read_in_pages() {
    let s = Setup::new().await;
    {
        let mut state = s.fake.0.lock().unwrap();
        for i in 10..160 {
            state.groups.insert(
                i,
                Group {
                    name: format!("team-{i}"),
                    visibility: "selected".into(),
                    default: false,
                    allows_public: false,
                    repositories: vec![],
                    runners: Vec::new(),
                },
            );
        }
        // The group's own sits on the second page.
        state.groups.insert(
            500,
            Group {
                name: "platform".into(),
                visibility: "selected".into(),
                default: false,
                allows_public: false,
                repositories: vec![901, 902],
                runners: Vec::new(),
            },
        );
    }
    let report = s.reconcile(false).await;
    assert_eq!(
        report.runner_groups[0].action,
        Action::Unchanged,
        "{report:?}"
    );
    assert_eq!(report.runner_groups[0].id, Some(500));
    assert!(s.writes().is_empty());
}

/// `apply` and `diff` as the CLI runs them, on the local API server (no
/// AWS): the runner group is created with the Kubernetes objects, reported
/// in the table, and `diff --exit-code` tells its drift (exit 1).
#[tokio::test]
async fn the_cli_applies_the_runner_group_and_diff_exit_code_tells_its_drift() {
    use crate::common::unique;
    let owner = unique("rg");
    let server = MockServer::start().await;
    let fake = Fake::default();
    {
        let mut s = fake.0.lock().unwrap();
        s.repositories.insert(901, (format!("{owner}/api"), true));
        s.repositories.insert(902, (format!("{owner}/web"), true));
        s.repositories
            .insert(960, (format!("{owner}/intruder"), true));
    }
    Mock::given(path_regex(format!(
        "^/api/v3/orgs/{owner}/actions/runner-groups"
    )))
    .respond_with(fake.clone())
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "ghp_test_token_0123456789\n").unwrap();
    let text = stack_config(&owner, &["api", "web"], &server.uri(), &token);
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        // The local v1.20 server serves no ValidatingAdmissionPolicy.
        format!(
            "{text}  groupAdmissionPolicy: false\ngroups:\n  - name: platform\n    repositories: [api, web]\n"
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| cli_on_stack(&config, args);
    let o = cli(&["apply"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("platform\tcreated"), "{stdout}");
    assert_eq!(cli(&["diff", "--exit-code"]).status.code(), Some(0));
    // Drift: another repository in the runner group.
    fake.0
        .lock()
        .unwrap()
        .groups
        .values_mut()
        .next()
        .unwrap()
        .repositories
        .push(960);
    let o = cli(&["diff", "--exit-code"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("-{owner}/intruder (not in the group)")),
        "{stdout}"
    );
    // --skip-github leaves it alone; apply repairs it.
    let writes = fake.0.lock().unwrap().writes.len();
    assert_eq!(cli(&["apply", "--skip-github"]).status.code(), Some(0));
    assert_eq!(fake.0.lock().unwrap().writes.len(), writes);
    assert_eq!(cli(&["apply"]).status.code(), Some(0));
    assert_eq!(
        fake.0
            .lock()
            .unwrap()
            .groups
            .values()
            .next()
            .unwrap()
            .repositories,
        vec![901, 902]
    );
}

#[tokio::test]
async fn a_runner_group_that_serves_other_runners_is_taken_over_only_with_adopt() {
    let s = Setup::new().await;
    // An administrator's runner group called `platform`, with their runner.
    s.fake.0.lock().unwrap().groups.insert(
        7,
        Group {
            name: "Platform".into(),
            visibility: "selected".into(),
            default: false,
            allows_public: false,
            repositories: vec![950],
            runners: vec!["build-box-1".into(), "platform-x1-runner-y2".into()],
        },
    );
    let report = s.reconcile(false).await;
    let r = &report.runner_groups[0];
    assert_eq!(r.action, Action::Refused, "{r:?}");
    assert!(r.error.as_ref().unwrap().contains("build-box-1"), "{r:?}");
    assert!(r.error.as_ref().unwrap().contains("--adopt"));
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    assert_eq!(s.group("Platform").unwrap().1.repositories, vec![950]);
    // Asked to: taken over.
    let gh = Github::connect(&s.settings, RetryPolicy::default())
        .await
        .unwrap();
    let options = runner_groups::Options {
        no_writes: false,
        adopt: true,
    };
    let report =
        runner_groups::reconcile(&gh, "acme", &runner_groups::planned(&s.settings), options)
            .await
            .unwrap();
    assert_eq!(
        report.runner_groups[0].action,
        Action::Updated,
        "{report:?}"
    );
    assert_eq!(s.group("Platform").unwrap().1.repositories, vec![901, 902]);
    // Its own scale set's runners are no reason to refuse.
    s.fake.0.lock().unwrap().groups.get_mut(&7).unwrap().runners =
        vec!["platform-x1-runner-y2".into()];
    assert_eq!(
        s.reconcile(false).await.runner_groups[0].action,
        Action::Unchanged
    );
}

/// The stack's IRSA configuration of `owner`'s `repos` (`api` id 901, `web`
/// 902), the owner pinned by id 900, against the GitHub fake at `api` with
/// the token in `token`.
fn stack_config(owner: &str, repos: &[&str], api: &str, token: &std::path::Path) -> String {
    use crate::common::{irsa_config, stack_issuer};
    irsa_config(owner, repos, &stack_issuer())
        .replace(
            &format!("  owner: {owner}\n"),
            &format!(
                "  owner: {owner}\n  ownerId: 900\n  url: {api}\n  auth: {{token: {{file: {}}}}}\n",
                token.display()
            ),
        )
        .replace("  - api\n", "  - {name: api, id: 901}\n")
        .replace("  - web\n", "  - {name: web, id: 902}\n")
}

/// The CLI on the local stack with `config`, AWS skipped.
fn cli_on_stack(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    crate::common::cli::command()
        .args(args)
        .arg("-c")
        .arg(config)
        .arg("--skip-aws")
        .env("KUBECONFIG", crate::common::kubeconfig_path())
        .output()
        .unwrap()
}

/// Serves `/users/{owner}` (an organisation) and `/orgs/{owner}/repos` from
/// the fake's repositories (owner id 900), and, with `broken`, an entry that
/// is no repository.
#[derive(Clone)]
struct Listing {
    fake: Fake,
    owner: String,
    broken: Arc<Mutex<bool>>,
}

impl wiremock::Respond for Listing {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if req.url.path().ends_with(&format!("/users/{}", self.owner)) {
            return ResponseTemplate::new(200)
                .set_body_json(json!({"login": self.owner, "type": "Organization", "id": 900}));
        }
        let state = self.fake.0.lock().unwrap();
        let mut repos: Vec<Value> = state
            .repositories
            .iter()
            .map(|(id, (full, private))| {
                let name = full.rsplit('/').next().unwrap();
                let visibility = if *private { "private" } else { "public" };
                json!({"id": id, "name": name, "full_name": full, "owner": {"id": 900},
                       "private": private, "visibility": visibility, "archived": false,
                       "fork": false, "disabled": false, "topics": []})
            })
            .collect();
        if *self.broken.lock().unwrap() {
            repos.push(json!(["not", "a", "repository"]));
        }
        ResponseTemplate::new(200).set_body_json(Value::Array(repos))
    }
}

#[tokio::test]
async fn a_groups_select_fills_it_on_github_and_in_the_cluster_and_a_partial_listing_changes_nothing()
 {
    use crate::common::{admin_client, unique};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, ListParams};
    let owner = unique("rs");
    let server = MockServer::start().await;
    let fake = Fake::default();
    {
        let mut s = fake.0.lock().unwrap();
        for (id, name, private) in [
            (901, "api", true),
            (903, "svc-pay", true),
            (904, "svc-web", true),
            (970, "svc-site", false),
            (950, "other", true),
        ] {
            s.repositories
                .insert(id, (format!("{owner}/{name}"), private));
        }
    }
    Mock::given(path_regex(format!(
        "^/api/v3/orgs/{owner}/actions/runner-groups"
    )))
    .respond_with(fake.clone())
    .mount(&server)
    .await;
    let broken = Arc::new(Mutex::new(false));
    Mock::given(path_regex(format!(
        "^/api/v3/(users/{owner}$|orgs/{owner}/repos$)"
    )))
    .respond_with(Listing {
        fake: fake.clone(),
        owner: owner.clone(),
        broken: broken.clone(),
    })
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "ghp_test_token_0123456789\n").unwrap();
    let text = stack_config(&owner, &["api"], &server.uri(), &token);
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "{text}  groupAdmissionPolicy: false\ngroups:\n  - name: platform\n    repositories: [api]\n    select: {{names: ['svc-*']}}\n"
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| cli_on_stack(&config, args);
    let members = || -> Vec<u64> {
        let s = fake.0.lock().unwrap();
        let g = s.groups.values().find(|g| g.name == "platform").unwrap();
        let mut ids = g.repositories.clone();
        ids.sort_unstable();
        ids
    };
    let sas: Api<ServiceAccount> =
        Api::namespaced(admin_client().await, &format!("{owner}-platform"));
    let job_accounts = || async {
        let mut repos: Vec<String> = sas
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|sa| {
                let labels = sa.metadata.labels.as_ref()?;
                let repo = labels.get("runner-identity.dev/repository")?;
                Some(repo.strip_prefix(&format!("{owner}."))?.to_owned())
            })
            .collect();
        repos.sort();
        repos
    };

    let o = cli(&["apply"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    // The listed member and the private `svc-*` ones; not the public one,
    // not `other`.
    assert_eq!(members(), [901, 903, 904]);
    assert_eq!(job_accounts().await, ["api", "svc-pay", "svc-web"]);
    let o = crate::common::cli::command()
        .args(["discover", "-c"])
        .arg(&config)
        .arg("--explain")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        listing.contains(&format!("{owner}/svc-pay  [group platform]")),
        "{listing}"
    );
    assert!(
        listing.contains("group `platform`: public (a runner group admits private and internal"),
        "{listing}"
    );

    // A new matching repository joins at the next apply.
    fake.0
        .lock()
        .unwrap()
        .repositories
        .insert(905, (format!("{owner}/svc-new"), true));
    assert_eq!(cli(&["diff", "--exit-code"]).status.code(), Some(1));
    assert_eq!(cli(&["apply"]).status.code(), Some(0));
    assert_eq!(members(), [901, 903, 904, 905]);
    assert_eq!(
        job_accounts().await,
        ["api", "svc-new", "svc-pay", "svc-web"]
    );

    // A partial listing (svc-new gone from it, and an entry that is no
    // repository): refused before anything is written.
    fake.0.lock().unwrap().repositories.remove(&905);
    *broken.lock().unwrap() = true;
    let writes = fake.0.lock().unwrap().writes.len();
    let o = cli(&["apply"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("group `platform` is filled by `select:`"),
        "{stderr}"
    );
    assert_eq!(fake.0.lock().unwrap().writes.len(), writes);
    assert_eq!(members(), [901, 903, 904, 905]);
}
