//! Every example in the README and `docs/` is run: configurations parse and
//! plan, the walk-through's offline commands succeed on the README's own
//! configuration, command lines parse, and workflow steps use only inputs
//! `action.yml` declares.

use std::path::Path;

use clap::Parser;
use runner_identity::cli::Cli;
use serde_yaml::Value;

use crate::common::cli::ri;
use crate::common::root;

/// The fenced blocks of a Markdown file: (info string, text).
fn blocks(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn documents() -> Vec<std::path::PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// The README's small complete example.
fn readme_config() -> String {
    blocks(&root().join("README.md"))
        .into_iter()
        .find(|(info, body)| info == "yaml" && body.starts_with("github:"))
        .expect("the README holds a configuration")
        .1
}

#[test]
fn the_readme_walk_through_runs_on_its_own_example() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner-identity.yaml"), readme_config()).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    // The offline steps, as the README writes them (backquoted).
    let mut ran = 0;
    for command in readme
        .split('`')
        .filter(|c| c.starts_with("runner-identity "))
    {
        // The part before a pipe is runner-identity's (`… | kubectl apply -f -`).
        let command = command.split('|').next().unwrap_or_default();
        let words: Vec<&str> = command.split_whitespace().collect();
        let verb = words.get(1).copied().unwrap_or_default();
        if !matches!(verb, "plan" | "bootstrap") || command.contains("FILE") {
            continue;
        }
        let ran_command = ri(&words[1..]).cwd(dir.path()).run();
        ran_command.expect(0);
        ran += 1;
    }
    assert!(
        ran >= 2,
        "the walk-through's plan and bootstrap steps were found"
    );
    // The Helm step installs the values plan wrote.
    let helm = readme
        .split('`')
        .find(|c| c.starts_with("helm upgrade --install"))
        .expect("a helm step");
    let values = helm
        .split_whitespace()
        .skip_while(|w| *w != "-f")
        .nth(1)
        .expect("helm -f <values>");
    assert!(dir.path().join(values).is_file(), "{values} was planned");
}

#[test]
fn every_configuration_in_the_docs_is_valid() {
    let base: Value = serde_yaml::from_str(&readme_config()).unwrap();
    let (mut checked, mut planned) = (0, 0);
    for file in documents() {
        for (info, body) in blocks(&file) {
            if info != "yaml" {
                continue;
            }
            let Ok(Value::Mapping(doc)) = serde_yaml::from_str::<Value>(&body) else {
                panic!("{}: a yaml block does not parse:\n{body}", file.display());
            };
            if !doc.contains_key("github") {
                continue;
            }
            // A fragment (discovery only) is completed with the README's
            // example; repositories come from `select:` there.
            let mut whole = base.as_mapping().unwrap().clone();
            if doc.contains_key("select") {
                whole.remove("repositories");
            }
            for (k, v) in doc {
                whole.insert(k, v);
            }
            let selects = whole.contains_key("select");
            let text = serde_yaml::to_string(&Value::Mapping(whole)).unwrap();
            runner_identity::config::parse(&text, Path::new("example.yaml"))
                .unwrap_or_else(|e| panic!("{}: {e}\n{body}", file.display()));
            checked += 1;
            // A listed configuration plans offline; one with `select:`
            // would ask GitHub first.
            if !selects {
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("example.yaml"), &text).unwrap();
                let out = ri(&["plan", "-c", "example.yaml"]).cwd(dir.path()).run();
                out.expect(0);
                planned += 1;
            }
        }
    }
    assert!(checked >= 2, "{checked} configurations");
    assert!(planned >= 1, "{planned} configurations planned");
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut checked = 0;
    for file in documents() {
        for (info, body) in blocks(&file) {
            if !matches!(info.as_str(), "" | "sh" | "bash" | "console") {
                continue;
            }
            let joined = body.replace("\\\n", " ");
            for line in joined.lines() {
                let line = line.trim().trim_start_matches("$ ");
                if !line.starts_with("runner-identity ") {
                    continue;
                }
                // runner-identity's part of a pipeline; a synopsis without
                // its optional parts (`[-c FILE]`), which must parse too.
                let line = without_optional_parts(line.split('|').next().unwrap_or_default());
                let words: Vec<&str> = line.split_whitespace().collect();
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{}: `{line}` does not parse:\n{e}", file.display());
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 1, "{checked} command lines");
}

/// `text` without its `[…]` groups (nested ones included).
fn without_optional_parts(text: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn every_helm_value_the_docs_set_on_the_chart_exists() {
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("charts/runner-identity/values.yaml")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for file in documents() {
        for (_, body) in blocks(&file) {
            let joined = body.replace("\\\n", " ");
            for line in joined
                .lines()
                .filter(|l| l.contains("helm ") && l.contains("charts/runner-identity"))
            {
                // `--set k=v,k2=v2` and `--set=k=v` alike.
                let words: Vec<String> = line
                    .split_whitespace()
                    .flat_map(|w| match w.split_once('=') {
                        Some((flag, rest)) if flag.starts_with("--set") => {
                            vec![flag.to_owned(), rest.to_owned()]
                        }
                        _ => vec![w.to_owned()],
                    })
                    .collect();
                let assignments = words
                    .windows(2)
                    .filter(|pair| {
                        matches!(pair[0].as_str(), "--set" | "--set-file" | "--set-string")
                    })
                    .flat_map(|pair| pair[1].split(',').map(str::to_owned).collect::<Vec<_>>());
                for assignment in assignments {
                    let key = assignment.split('=').next().unwrap_or_default();
                    // `a.b\.c` is the keys `a` and `b.c`; a key under a map
                    // the chart leaves empty (annotations) is the user's.
                    let mut at = &values;
                    for part in key.replace("\\.", "\u{0}").split('.') {
                        let part = part.replace('\u{0}', ".");
                        match at {
                            Value::Mapping(m) if m.is_empty() => break,
                            Value::Mapping(m) => {
                                at = m.get(part.as_str()).unwrap_or_else(|| {
                                    panic!(
                                        "{}: `{key}` is not a value of the chart",
                                        file.display()
                                    )
                                });
                            }
                            _ => panic!("{}: `{key}` goes below a scalar", file.display()),
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 2, "{checked} helm values");
}

#[test]
fn every_script_the_docs_run_exists() {
    let mut checked = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in text.split(|c: char| c.is_whitespace() || "`()'\"".contains(c)) {
            let Some(path) = word
                .strip_prefix("scripts/")
                .map(|p| p.trim_end_matches([',', '.', ':', ';']))
            else {
                continue;
            };
            if path.is_empty() {
                continue;
            }
            let script = root().join("scripts").join(path);
            assert!(
                script.is_file(),
                "{}: scripts/{path} does not exist",
                file.display()
            );
            if path.ends_with(".sh") {
                use std::os::unix::fs::PermissionsExt;
                let mode = script.metadata().unwrap().permissions().mode();
                assert!(mode & 0o111 != 0, "scripts/{path} is not executable");
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "{checked} scripts");
}

#[test]
fn every_workflow_step_in_the_docs_uses_declared_inputs() {
    let action: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("action.yml")).unwrap()).unwrap();
    let inputs = action["inputs"].as_mapping().unwrap();
    let mut steps = 0;
    for file in documents() {
        for (info, body) in blocks(&file) {
            if info != "yaml" || !body.contains("runner-identity/runner-identity@") {
                continue;
            }
            let doc: Value = serde_yaml::from_str(&body).unwrap();
            for job in doc["jobs"]
                .as_mapping()
                .into_iter()
                .flat_map(|j| j.values())
            {
                for step in job["steps"].as_sequence().into_iter().flatten() {
                    let uses = step["uses"].as_str().unwrap_or_default();
                    if !uses.starts_with("runner-identity/runner-identity@") {
                        continue;
                    }
                    for key in step["with"].as_mapping().into_iter().flat_map(|w| w.keys()) {
                        assert!(
                            inputs.contains_key(key),
                            "{}: input {key:?} is not in action.yml",
                            file.display()
                        );
                    }
                    steps += 1;
                }
            }
        }
    }
    assert!(steps >= 1, "{steps} workflow steps");
}

/// One version everywhere a release names it: Cargo.toml, the chart (its
/// version and the image tag it defaults to), the image `action.yml` runs
/// (in the exact line the release workflow checks against its tag), and
/// every `uses:` of the action in the docs.
#[test]
fn the_release_version_is_the_same_everywhere() {
    // The first `version = "…"` is [package]'s (Cargo.toml starts with it).
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        cargo.starts_with("[package]"),
        "Cargo.toml starts with [package]"
    );
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap()
        .to_owned();
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("charts/runner-identity/Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        chart["version"].as_str(),
        Some(version.as_str()),
        "Chart.yaml version"
    );
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version.as_str()),
        "Chart.yaml appVersion"
    );
    let action = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let line = format!("  image: docker://ghcr.io/runner-identity/runner-identity:v{version}");
    assert!(
        action.lines().any(|l| l == line),
        "action.yml does not run the image of version {version} (`{line}`)"
    );
    let release = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    assert!(
        release.contains(r#"grep -qx "  image: docker://ghcr.io/runner-identity/runner-identity:$TAG" action.yml"#),
        "the release workflow checks action.yml's image line against its tag"
    );
    let mut uses = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for at in text.match_indices("uses: runner-identity/runner-identity@") {
            let pinned = text[at.0 + at.1.len()..].split_whitespace().next().unwrap();
            if pinned.starts_with('<') {
                continue; // a placeholder (`@<commit sha>`)
            }
            assert_eq!(pinned, format!("v{version}"), "{}", file.display());
            uses += 1;
        }
    }
    assert!(uses >= 1, "{uses} uses of the action");
}

/// The project's own workflows run third-party actions only by commit: a
/// tag can be moved to other code, in a release job that can write packages
/// and sign attestations.
#[test]
fn every_action_the_workflows_run_is_pinned_by_commit() {
    let mut pinned = 0;
    for entry in std::fs::read_dir(root().join(".github/workflows")).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let Some(uses) = line.trim().trim_start_matches("- ").strip_prefix("uses: ") else {
                continue;
            };
            let reference = uses.split_whitespace().next().unwrap();
            let (_, version) = reference.split_once('@').unwrap();
            assert!(
                version.len() == 40 && version.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: `{reference}` is not pinned by commit",
                file.display()
            );
            pinned += 1;
        }
    }
    assert!(pinned >= 8, "{pinned} pinned actions");
}
