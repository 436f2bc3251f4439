//! GitHub discovery against a wiremock GitHub Enterprise Server (`/api/v3`):
//! pagination, selection, rate limits, server errors, a truncated listing,
//! and the GitHub App flow with a test key pair.

use std::time::{Duration, Instant};

use crate::common::TestConfig;
use crate::common::jwt::TestKey;
use runner_identity::config::Settings;
use runner_identity::github::{Github, RetryPolicy, discover};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ghp_test_token_0123456789";

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        backoff: Duration::from_millis(50),
        secondary_wait: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

struct Gh {
    server: MockServer,
    dir: tempfile::TempDir,
}

impl Gh {
    async fn new() -> Gh {
        Gh {
            server: MockServer::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A configuration for owner `acme` on this server, authenticating with
    /// [`TOKEN`] from a file (or the `auth` given, as YAML), selecting with
    /// `select` (YAML of `select:`'s keys) besides the listed repositories.
    fn settings(&self, select: &str, repositories: &[&str], auth: Option<&str>) -> Settings {
        let token = self.dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let unindented = |yaml: &str| -> String {
            yaml.lines()
                .map(|l| l.strip_prefix("  ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let auth: runner_identity::config::GithubAuth = match auth {
            Some(yaml) => serde_yaml::from_str(&unindented(&unindented(yaml))).unwrap(),
            None => runner_identity::config::GithubAuth {
                token: Some(runner_identity::config::SecretSource {
                    env: None,
                    file: Some(token),
                }),
                app: None,
            },
        };
        let selector: runner_identity::config::Selector =
            serde_yaml::from_str(&unindented(select)).unwrap();
        let config =
            TestConfig::irsa("acme", &["unused"], "https://oidc.example.com/id/X").with(|c| {
                c.repositories = repositories
                    .iter()
                    .map(|r| runner_identity::config::RepositoryEntry::Name((*r).to_owned()))
                    .collect();
                c.github.url = self.server.uri();
                c.github.auth = Some(auth);
                c.select = Some(selector);
                c.kubernetes.namespace =
                    runner_identity::config::KubernetesConfig::default().namespace;
            });
        config.settings()
    }

    /// Discovers with `select` and token auth; also returns how long it took.
    async fn discover(&self, select: &str) -> (runner_identity::github::Discovery, Duration) {
        let settings = self.settings(select, &[], None);
        let github = Github::connect(&settings, fast()).await.unwrap();
        let started = Instant::now();
        let d = discover(&github, &settings).await.unwrap();
        (d, started.elapsed())
    }

    async fn org(&self) {
        Mock::given(method("GET"))
            .and(path("/api/v3/users/acme"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"login": "acme", "type": "Organization"})),
            )
            .mount(&self.server)
            .await;
    }

    /// Serves `repos` as `/orgs/acme/repos`, `per_page` to a page, with Link
    /// headers; each page must be fetched `times` times.
    async fn org_repos(&self, repos: &[Value], per_page: usize, times: u64) {
        let pages: Vec<&[Value]> = repos.chunks(per_page).collect();
        let base = format!(
            "{}/api/v3/orgs/acme/repos?type=all&per_page=100",
            self.server.uri()
        );
        for (i, page) in pages.iter().enumerate() {
            let n = i + 1;
            let mut response =
                ResponseTemplate::new(200).set_body_json(Value::Array(page.to_vec()));
            if n < pages.len() {
                response = response.insert_header(
                    "link",
                    format!(
                        "<{base}&page={}>; rel=\"next\", <{base}&page={}>; rel=\"last\"",
                        n + 1,
                        pages.len()
                    )
                    .as_str(),
                );
            }
            let mock = Mock::given(method("GET"))
                .and(path("/api/v3/orgs/acme/repos"))
                .and(header("authorization", format!("Bearer {TOKEN}").as_str()));
            let mock = if n == 1 {
                mock.and(query_param_is_missing("page"))
            } else {
                mock.and(query_param("page", n.to_string().as_str()))
            };
            mock.respond_with(response)
                .expect(times)
                .mount(&self.server)
                .await;
        }
    }
}

/// The id the fake GitHub gives a repository (derived from its name).
fn repo_id(name: &str) -> u64 {
    name.bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000_000
}

/// The fake organization's id.
const OWNER_ID: u64 = 4242;

fn repo(name: &str, topics: &[&str]) -> Value {
    json!({
        "name": name,
        "id": repo_id(name),
        "owner": {"login": "acme", "id": OWNER_ID},
        "full_name": format!("acme/{name}"),
        "archived": false,
        "fork": false,
        "disabled": false,
        "visibility": "private",
        "topics": topics,
    })
}

#[tokio::test]
async fn three_pages_select_by_name_topic_and_custom_property() {
    let gh = Gh::new().await;
    gh.org().await;
    let mut repos: Vec<Value> = (0..250)
        .map(|i| repo(&format!("lib-{i:03}"), &[]))
        .collect();
    repos[7] = repo("svc-pay", &["arc-runner"]);
    repos[120] = repo("svc-web", &["arc-runner"]);
    repos[121] = repo("svc-nope", &["other"]);
    let mut archived = repo("svc-old", &["arc-runner"]);
    archived["archived"] = json!(true);
    repos[200] = archived;
    let mut fork = repo("svc-fork", &["arc-runner"]);
    fork["fork"] = json!(true);
    repos[201] = fork;
    repos[249] = repo("svc-ops", &["arc-runner"]);
    gh.org_repos(&repos, 100, 1).await;
    // Custom properties: two pages of the organization's values.
    let props = |name: &str, team: Value| json!({"repository_name": name, "properties": [{"property_name": "team", "value": team}]});
    let base = format!(
        "{}/api/v3/orgs/acme/properties/values?per_page=100",
        gh.server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/properties/values"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([
                    props("svc-pay", json!("payments")),
                    props("svc-web", json!("web"))
                ]))
                .insert_header("link", format!("<{base}&page=2>; rel=\"next\"").as_str()),
        )
        .mount(&gh.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/properties/values"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            props("svc-ops", json!(["ops", "payments"])),
            props("svc-old", json!("payments")),
            props("svc-fork", json!("payments")),
        ])))
        .mount(&gh.server)
        .await;

    let settings = gh.settings(
        "  names: [\"svc-*\"]\n  topics: [arc-runner]\n  customProperties: {team: payments}\n",
        &["lib-010"],
        None,
    );
    let github = Github::connect(&settings, fast()).await.unwrap();
    let d = discover(&github, &settings).await.unwrap();
    assert!(d.complete, "{d:?}");
    assert_eq!(d.listed, 250);
    let names = d.names();
    assert_eq!(
        names,
        ["lib-010", "svc-ops", "svc-pay"],
        "{:#?}",
        d.selected
    );
    // GitHub's immutable ids travel with the selection (and `discover -o
    // json`), into the settings `verify job` compares the OIDC token with.
    let pay = d.selected.iter().find(|s| s.name == "svc-pay").unwrap();
    assert_eq!(
        (pay.id, pay.owner_id),
        (Some(repo_id("svc-pay")), Some(OWNER_ID))
    );
    let saved: serde_json::Value = serde_json::to_value(&d).unwrap();
    assert_eq!(saved["selected"][2]["id"], json!(repo_id("svc-pay")));
    let with = d.settings(&settings).unwrap();
    assert_eq!(with.config.github.owner_id, Some(OWNER_ID));
    let ops = with
        .repositories
        .iter()
        .find(|r| r.name == "svc-ops")
        .unwrap();
    assert_eq!(ops.id, Some(repo_id("svc-ops")));
    let why = |n: &str| {
        d.rejected
            .iter()
            .find(|r| r.name == n)
            .unwrap()
            .reason
            .clone()
    };
    assert!(why("svc-web").contains("`team` is \"web\""));
    assert!(why("svc-nope").contains("none of the topics"));
    assert!(why("svc-old").starts_with("archived"));
    assert!(why("svc-fork").contains("fork"));
    assert!(why("lib-011").contains("none of [\"svc-*\"]"));
    let pay = &d
        .selected
        .iter()
        .find(|s| s.name == "svc-pay")
        .unwrap()
        .reasons;
    assert_eq!(
        pay,
        &[
            "name matches `svc-*`",
            "topic `arc-runner`",
            "team=payments"
        ]
    );

    // The selection becomes the configuration's repositories.
    let resolved = d.settings(&settings).unwrap();
    let full: Vec<String> = resolved
        .repositories
        .iter()
        .map(|r| r.full_name())
        .collect();
    assert_eq!(full, ["acme/lib-010", "acme/svc-ops", "acme/svc-pay"]);
    // Each listing page was fetched exactly once (checked on drop by `expect(1)`).
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out() {
    let gh = Gh::new().await;
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    // /users/acme: primary limit exhausted once (403, remaining 0, reset in 1 s).
    Mock::given(method("GET"))
        .and(path("/api/v3/users/acme"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&gh.server)
        .await;
    gh.org().await;
    // Page 1: a secondary limit with retry-after, then a 502, then the page.
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/repos"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&gh.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/repos"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&gh.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/repos"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([repo("svc-a", &[])])))
        .with_priority(3)
        .mount(&gh.server)
        .await;
    let (d, took) = gh.discover("  names: [\"svc-*\"]\n").await;
    assert_eq!(d.names(), ["svc-a"]);
    assert!(
        took >= Duration::from_secs(1),
        "the limits were not waited out"
    );
    let requests = gh.server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 5, "2 for the user, 3 for the page");

    // A plain 403 (a permission, not a limit) fails at once and names the fix.
    let gh = Gh::new().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/users/acme"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&gh.server)
        .await;
    let settings = gh.settings("  names: [\"svc-*\"]\n", &[], None);
    let github = Github::connect(&settings, fast()).await.unwrap();
    let e = discover(&github, &settings).await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 403 Resource not accessible") && e.contains("permission"),
        "{e}"
    );
    assert!(!e.contains(TOKEN));
    assert_eq!(gh.server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_github_app_installation_lists_what_it_can_see_and_a_short_listing_is_incomplete() {
    let gh = Gh::new().await;
    let key = TestKey::generate("app");
    let pem = gh.dir.path().join("app.pem");
    std::fs::write(&pem, key.private_pem()).unwrap();
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/installation"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": 77, "account": {"login": "acme"}})),
        )
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v3/app/installations/77/access_tokens"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "token": "ghs_installation_token_abc",
            "expires_at": "2099-01-01T00:00:00Z",
            "permissions": {"metadata": "read"},
            "repository_selection": "selected",
        })))
        .expect(2) // one per discovery: the library's, then the command's
        .mount(&gh.server)
        .await;
    // GitHub counts 3 repositories; the listing holds 2: truncated.
    Mock::given(method("GET"))
        .and(path("/api/v3/installation/repositories"))
        .and(header("authorization", "Bearer ghs_installation_token_abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total_count": 3,
            "repositories": [repo("svc-a", &[]), repo("svc-b", &[])],
        })))
        .mount(&gh.server)
        .await;
    let auth = format!(
        "    app:\n      id: 4242\n      privateKey:\n        file: {}\n",
        pem.display()
    );
    let settings = gh.settings("  names: [\"svc-*\"]\n", &["hidden"], Some(&auth));
    let github = Github::connect(&settings, fast()).await.unwrap();
    let d = discover(&github, &settings).await.unwrap();
    assert_eq!(d.names(), ["svc-a", "svc-b"]);
    assert!(!d.complete);
    assert!(
        d.incomplete.as_deref().unwrap().contains("counts 3"),
        "{d:?}"
    );
    assert!(
        d.problems[0].contains("installation cannot see it"),
        "{:?}",
        d.problems
    );

    // The App's JWT: signed by the App's key, issued for App 4242, short-lived.
    let requests = gh.server.received_requests().await.unwrap();
    let as_app: Vec<_> = requests
        .iter()
        .filter(|r| !r.url.path().ends_with("/installation/repositories"))
        .collect();
    assert_eq!(as_app.len(), 2, "installation lookup and token exchange");
    for r in as_app {
        let bearer = r.headers.get("authorization").unwrap().to_str().unwrap();
        let claims = key.verify(bearer.strip_prefix("Bearer ").unwrap());
        // GitHub takes the App ID as a number or a string.
        assert_eq!(
            claims["iss"].to_string().trim_matches('"'),
            "4242",
            "{claims}"
        );
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= 600, "{claims}");
    }

    // The commands: `discover` lists what it could and exits 3; a saved
    // discovery that is incomplete and selected nothing plans nothing, exit 3.
    let config = gh.dir.path().join("config.yaml");
    std::fs::write(&config, serde_yaml::to_string(&settings.config).unwrap()).unwrap();
    let config_path = config.clone();
    let discovered = tokio::task::spawn_blocking(move || {
        crate::common::cli::command()
            .args(["discover", "-c"])
            .arg(&config_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&discovered.stderr).into_owned();
    assert_eq!(discovered.status.code(), Some(3), "{err}");
    assert!(
        err.contains("incomplete") && err.contains("counts 3"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&discovered.stdout).contains("acme/svc-a"));
    let mut nothing = d.clone();
    nothing.selected.clear();
    let saved = gh.dir.path().join("repos.json");
    std::fs::write(&saved, serde_json::to_string(&nothing).unwrap()).unwrap();
    let planned = crate::common::cli::command()
        .args(["plan", "--repos-file"])
        .arg(&saved)
        .arg("-c")
        .arg(gh.dir.path().join("config.yaml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&planned.stderr).into_owned();
    assert_eq!(planned.status.code(), Some(3), "{err}");
    assert!(err.contains("nothing was planned"), "{err}");
}

#[tokio::test]
async fn discovers_5000_repositories_in_50_pages() {
    let gh = Gh::new().await;
    gh.org().await;
    let repos: Vec<Value> = (0..5000)
        .map(|i| repo(&format!("svc-{i:04}"), &["arc-runner"]))
        .collect();
    gh.org_repos(&repos, 100, 1).await;
    let (d, took) = gh.discover("  topics: [arc-runner]\n").await;
    assert!(d.complete);
    assert_eq!((d.listed, d.selected.len()), (5000, 5000));
    eprintln!("discovery of 5000 repositories in 50 pages: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// The `discover` command as a user runs it, and `plan --repos-file` from its
/// JSON without network access.
#[tokio::test]
async fn discover_command_explains_and_its_json_feeds_plan() {
    let gh = Gh::new().await;
    gh.org().await;
    gh.org_repos(
        &[
            repo("svc-a", &["arc-runner"]),
            repo("web", &["arc-runner"]),
            repo("svc-b", &[]),
        ],
        100,
        2,
    )
    .await;
    let settings = gh.settings("  names: [\"svc-*\"]\n  topics: [arc-runner]\n", &[], None);
    let config = gh.dir.path().join("config.yaml");
    // The settings' source text, re-created: the same configuration on disk.
    let text = serde_yaml::to_string(&settings.config).unwrap();
    std::fs::write(&config, text).unwrap();
    let config_path = config.clone();
    let run = move |args: &[&str]| {
        let config = &config_path;
        crate::common::cli::command()
            .args(args)
            .arg("-c")
            .arg(config)
            .env_remove("GITHUB_TOKEN")
            .output()
            .unwrap()
    };
    let explain = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["discover", "--explain"])
    });
    let o = explain.await.unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("acme/svc-a  name matches `svc-*`; topic `arc-runner`"),
        "{out}"
    );
    assert!(
        out.contains("acme/web  not selected: name matches none of"),
        "{out}"
    );
    assert!(
        out.contains("acme/svc-b  not selected: has none of the topics"),
        "{out}"
    );
    assert!(out.contains("1 of 3 repositories selected"), "{out}");
    assert!(!out.contains(TOKEN) && !String::from_utf8_lossy(&o.stderr).contains(TOKEN));

    let json = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["discover", "-o", "json"])
    });
    let o = json.await.unwrap();
    let repos_file = gh.dir.path().join("repos.json");
    std::fs::write(&repos_file, &o.stdout).unwrap();
    drop(gh.server); // plan must not need GitHub any more
    let o = run(&[
        "plan",
        "-o",
        "json",
        "--repos-file",
        repos_file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let repos: Vec<&str> = plan["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["acme/svc-a"]);
}

/// A user owner: `/users/{owner}/repos`; a secondary limit announced only in
/// the message (GHES may send no rate-limit headers) is waited out.
#[tokio::test]
async fn a_user_owner_and_a_headerless_secondary_limit() {
    let gh = Gh::new().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/users/acme"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"login": "acme", "type": "User"})),
        )
        .mount(&gh.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/users/acme/repos"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&gh.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/users/acme/repos"))
        .and(query_param("type", "owner"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([repo("dotfiles", &[]), repo("svc-x", &[])])),
        )
        .with_priority(2)
        .mount(&gh.server)
        .await;
    let (d, took) = gh.discover("  names: [\"svc-*\"]\n").await;
    assert_eq!(d.names(), ["svc-x"]);
    assert!(d.complete);
    assert!(
        took >= fast().secondary_wait,
        "the secondary limit was not waited out"
    );
    // Custom properties exist only for organizations: a clear error.
    let settings = gh.settings("  customProperties: {team: x}\n", &[], None);
    let github = Github::connect(&settings, fast()).await.unwrap();
    let e = discover(&github, &settings).await.unwrap_err().to_string();
    assert!(
        e.contains("is a user") && e.contains("organizations"),
        "{e}"
    );
}
