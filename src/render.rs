//! Output of a [`Plan`]: multi-document YAML, JSON, or an out-dir with one
//! folder per repository. Rendering to text is pure; [`write_out_dir`] is the
//! only function here that touches the file system.

use std::path::Path;

use serde_json::{Value, json};

use crate::plan::{Object, Plans, RepoPlan};
use crate::{Error, Result};

/// One repository's objects as multi-document YAML.
pub fn repo_manifests_yaml(repo: &RepoPlan) -> Result<String> {
    let mut out = String::new();
    for object in repo.objects() {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml::to_string(&object.shown()).map_err(|e| Error::Serialize {
                what: format!("the objects of {}", repo.names.repository),
                message: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// One repository of the plan's JSON document.
pub fn repo_json(repo: &RepoPlan) -> Result<Value> {
    // A group's values come with its first member (and none with the others).
    let values: serde_yaml::Value = match repo.values() {
        None => serde_yaml::Value::Null,
        Some(text) => serde_yaml::from_str(text).map_err(|e| Error::Serialize {
            what: format!("the Helm values of {}", repo.names.repository),
            message: e.to_string(),
        })?,
    };
    Ok(json!({
        "repository": repo.names.repository,
        "names": repo.names,
        "objects": repo.objects().iter().map(Object::shown).collect::<Vec<_>>(),
        "helmValues": values,
        "iamRole": repo.iam_role,
    }))
}

/// The plan as one JSON document for machines
/// (`{"instance": …, "repositories": [...]}`, pretty-printed), written a
/// repository at a time so memory stays flat in the number of repositories.
pub fn write_plan_json(plan: &dyn Plans, out: &mut dyn std::io::Write) -> Result<()> {
    let io = |source: std::io::Error| Error::Io {
        action: "cannot write",
        path: "standard output".into(),
        source,
    };
    let instance = serde_json::to_string(plan.instance()).map_err(|e| Error::Serialize {
        what: "the instance name".into(),
        message: e.to_string(),
    })?;
    write!(
        out,
        "{{\n  \"instance\": {instance},\n  \"repositories\": ["
    )
    .map_err(io)?;
    for i in 0..plan.count() {
        let text = pretty(&repo_json(&*plan.repository_again(i)?)?)?;
        out.write_all(if i == 0 { b"\n" } else { b",\n" })
            .map_err(io)?;
        for (n, line) in text.trim_end().lines().enumerate() {
            if n > 0 {
                out.write_all(b"\n").map_err(io)?;
            }
            write!(out, "    {line}").map_err(io)?;
        }
    }
    let close = if plan.count() == 0 {
        "]\n}\n"
    } else {
        "\n  ]\n}\n"
    };
    out.write_all(close.as_bytes()).map_err(io)
}

/// Writes `text` to `path`; the error names the file.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.to_owned(),
        source,
    })
}

/// The file in an out-dir that says runner-identity wrote it, and which
/// files: a later run replaces the folder only when it holds nothing else.
pub const OUT_DIR_MARKER: &str = ".runner-identity-plan.json";

/// What `plan --out-dir` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenFolder {
    pub repository: String,
    pub folder: std::path::PathBuf,
    pub files: Vec<String>,
}

/// One repository's files in its out-dir folder, rendered.
fn repo_files(repo: &RepoPlan) -> Result<Vec<(&'static str, String)>> {
    let hook = repo.hook_template_text().unwrap_or_default().to_owned();
    let mut files = vec![("manifests.yaml", repo_manifests_yaml(repo)?)];
    if let Some(values) = repo.values() {
        files.push(("values.yaml", values.to_owned()));
    }
    files.extend([
        ("hook-template.yaml", hook),
        ("trust-policy.json", pretty(&repo.iam_role.trust_policy)?),
    ]);
    if let Some(p) = &repo.iam_role.permissions_policy {
        files.push(("permissions-policy.json", pretty(p)?));
    }
    Ok(files)
}

/// Writes `DIR/<repository>/{manifests.yaml, values.yaml, hook-template.yaml,
/// trust-policy.json, permissions-policy.json}` (the last only when the
/// repository has an inline policy) as a whole or not at all: the tree is
/// written beside `DIR` and renamed into place. An existing `DIR` is replaced
/// only when it is empty or holds exactly what an earlier run wrote (its
/// [`OUT_DIR_MARKER`] lists it); a symbolic link, in it or as it, is refused
/// and never followed. Returns the folders written.
pub fn write_out_dir(plan: &dyn Plans, dir: &Path) -> Result<Vec<WrittenFolder>> {
    let refuse = |path: &Path, why: String| Error::Io {
        action: "will not replace",
        path: path.to_owned(),
        source: std::io::Error::other(why),
    };
    let previous = existing_out_dir(dir, &refuse)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let staging = parent.join(format!(
        ".{base}.runner-identity-new-{}",
        std::process::id()
    ));
    let result = (|| {
        let create = |path: &Path| {
            std::fs::create_dir(path).map_err(|source| Error::Io {
                action: "cannot create",
                path: path.to_owned(),
                source,
            })
        };
        create(&staging)?;
        // A repository at a time (memory flat in their number); the staging
        // folder is removed if any fails.
        let mut listed = Vec::new();
        let mut folders = Vec::with_capacity(plan.count());
        for i in 0..plan.count() {
            let repo = plan.repository_again(i)?;
            let label = &repo.names.repository_label;
            let files = repo_files(&repo)?;
            create(&staging.join(label))?;
            for (name, text) in &files {
                write_file(&staging.join(label).join(name), text)?;
                listed.push(format!("{label}/{name}"));
            }
            folders.push(WrittenFolder {
                repository: repo.names.repository.clone(),
                folder: dir.join(label),
                files: files.iter().map(|(name, _)| (*name).to_owned()).collect(),
            });
        }
        let marker = json!({
            "writtenBy": "runner-identity plan --out-dir",
            "note": "the next `plan --out-dir` replaces this folder as a whole; it refuses to \
                     when the folder holds anything not listed here",
            "files": listed,
        });
        write_file(&staging.join(OUT_DIR_MARKER), &pretty(&marker)?)?;
        replace_dir(&staging, dir, previous)?;
        Ok(folders)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Whether `dir` exists (and may be replaced): `Ok(true)` when it holds an
/// earlier run's output or nothing, `Ok(false)` when it does not exist.
fn existing_out_dir(dir: &Path, refuse: &dyn Fn(&Path, String) -> Error) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Io {
                action: "cannot read",
                path: dir.to_owned(),
                source,
            });
        }
    };
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(refuse(
            dir,
            "it is not a folder (a symbolic link is never followed); pass a new or empty folder"
                .into(),
        ));
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "cannot read",
            path: path.to_owned(),
            source,
        })
    };
    let mut found = Vec::new();
    collect_entries(dir, dir, &mut found, refuse)?;
    if found.is_empty() {
        return Ok(true);
    }
    let marker = dir.join(OUT_DIR_MARKER);
    let not_ours = |what: &str| {
        refuse(
            dir,
            format!(
                "it holds {what} that runner-identity did not write; pass a new or empty folder, \
                 or move it away"
            ),
        )
    };
    let marker_meta = std::fs::symlink_metadata(&marker).ok();
    if !marker_meta.is_some_and(|m| m.is_file()) {
        return Err(not_ours("files"));
    }
    let listed: Value = serde_json::from_str(&read(&marker)?).map_err(|_| not_ours("a marker"))?;
    let listed: std::collections::BTreeSet<&str> = listed["files"]
        .as_array()
        .map(|files| files.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for entry in &found {
        if entry != OUT_DIR_MARKER && !listed.contains(entry.as_str()) {
            return Err(not_ours(&format!("`{entry}`")));
        }
    }
    Ok(true)
}

/// Every file under `dir` (relative, `/`-separated); folders are walked,
/// symbolic links refused.
fn collect_entries(
    root: &Path,
    dir: &Path,
    found: &mut Vec<String>,
    refuse: &dyn Fn(&Path, String) -> Error,
) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        action: "cannot read",
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            action: "cannot read",
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| Error::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        })?;
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if kind.is_symlink() {
            return Err(refuse(
                root,
                format!("`{relative}` is a symbolic link, which is never followed; remove it"),
            ));
        } else if kind.is_dir() {
            collect_entries(root, &path, found, refuse)?;
        } else {
            found.push(relative);
        }
    }
    Ok(())
}

/// Puts the finished `staging` tree at `dir`, replacing an earlier one.
fn replace_dir(staging: &Path, dir: &Path, exists: bool) -> Result<()> {
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|source| Error::Io {
            action: "cannot rename into place",
            path: to.to_owned(),
            source,
        })
    };
    if !exists {
        return rename(staging, dir);
    }
    let old = staging.with_extension("old");
    rename(dir, &old)?;
    if let Err(e) = rename(staging, dir) {
        // Put the earlier output back: nothing changed.
        let _ = std::fs::rename(&old, dir);
        return Err(e);
    }
    // `remove_dir_all` removes links, never what they point to.
    std::fs::remove_dir_all(&old).map_err(|source| Error::Io {
        action: "cannot remove the earlier output",
        path: old,
        source,
    })
}

/// Pretty JSON with a trailing newline.
pub fn pretty(v: &Value) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| Error::Serialize {
            what: "a JSON document".into(),
            message: e.to_string(),
        })
}
