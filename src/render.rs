//! Output of a [`Plan`]: multi-document YAML, JSON, or an out-dir with one
//! folder per repository. Rendering to text is pure; [`write_out_dir`] is the
//! only function here that touches the file system.

use std::path::Path;

use serde_json::{Value, json};

use crate::plan::{Object, Plan, RepoPlan};
use crate::{Error, Result};

/// Every Kubernetes object of the plan as multi-document YAML, in stable order.
pub fn manifests_yaml(plan: &Plan) -> Result<String> {
    let mut out = String::new();
    for repo in &plan.repositories {
        out.push_str(&repo_manifests_yaml(repo)?);
    }
    Ok(out)
}

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

/// The plan as one JSON document for machines.
pub fn plan_json(plan: &Plan) -> Result<Value> {
    let repositories = plan
        .repositories
        .iter()
        .map(|repo| {
            let values: serde_yaml::Value =
                serde_yaml::from_str(&repo.values).map_err(|e| Error::Serialize {
                    what: format!("the Helm values of {}", repo.names.repository),
                    message: e.to_string(),
                })?;
            Ok(json!({
                "repository": repo.names.repository,
                "names": repo.names,
                "objects": repo.objects().iter().map(Object::shown).collect::<Vec<_>>(),
                "helmValues": values,
                "iamRole": repo.iam_role,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "instance": plan.instance, "repositories": repositories }))
}

/// Writes `text` to `path`; the error names the file.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.to_owned(),
        source,
    })
}

/// Writes `DIR/<repository>/{manifests.yaml, values.yaml, hook-template.yaml,
/// trust-policy.json, permissions-policy.json}`; the last only when the
/// repository has an inline policy. Returns the folders written.
pub fn write_out_dir(plan: &Plan, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::with_capacity(plan.repositories.len());
    for repo in &plan.repositories {
        let folder = dir.join(&repo.names.repository_label);
        std::fs::create_dir_all(&folder).map_err(|source| Error::Io {
            action: "cannot create",
            path: folder.clone(),
            source,
        })?;
        let hook = repo.hook_template_text().unwrap_or_default().to_owned();
        let mut files = vec![
            ("manifests.yaml", repo_manifests_yaml(repo)?),
            ("values.yaml", repo.values.clone()),
            ("hook-template.yaml", hook),
            ("trust-policy.json", pretty(&repo.iam_role.trust_policy)?),
        ];
        if let Some(p) = &repo.iam_role.permissions_policy {
            files.push(("permissions-policy.json", pretty(p)?));
        }
        for (name, text) in files {
            write_file(&folder.join(name), &text)?;
        }
        written.push(folder);
    }
    Ok(written)
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
