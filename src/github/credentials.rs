//! The scale sets' GitHub credentials: ARC's keys for the Secret
//! `githubConfigSecret` names, read from the configured source (files, env,
//! or an existing Secret). Values are never logged or printed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::{credential_error, read_secret};
use crate::config::{RunnerCredentials, Settings};
use crate::plan::Kind;
use crate::{Error, Result};

/// ARC's keys for a GitHub App.
pub const APP_KEYS: [&str; 3] = [
    "github_app_id",
    "github_app_installation_id",
    "github_app_private_key",
];
/// ARC's key for a token.
pub const TOKEN_KEY: &str = "github_token";

/// The content of a Secret `githubConfigSecret` names.
pub type SecretData = BTreeMap<String, String>;

/// Each repository's credentials Secret content, by `owner/name`; a
/// repository without credentials (none configured) is absent. The global
/// source is read once; a repository's own replaces it. `fromSecret` needs
/// `client`; without one it is an error naming the fix.
pub async fn load(
    settings: &Settings,
    client: Option<&kube::Client>,
) -> Result<BTreeMap<String, SecretData>> {
    let mut global: Option<SecretData> = None;
    let mut out = BTreeMap::new();
    for repo in &settings.repositories {
        let Some(c) = &repo.github_credentials else {
            continue;
        };
        let data = if repo.own_github_credentials {
            let field = format!("repositories[{}].kubernetes.githubCredentials", repo.name);
            load_one(c, &field, client).await?
        } else {
            match &global {
                Some(data) => data.clone(),
                None => {
                    let data = load_one(c, "kubernetes.githubCredentials", client).await?;
                    global = Some(data.clone());
                    data
                }
            }
        };
        out.insert(repo.full_name(), data);
    }
    Ok(out)
}

/// What one credentials source holds, as ARC's keys.
async fn load_one(
    c: &RunnerCredentials,
    field: &str,
    client: Option<&kube::Client>,
) -> Result<SecretData> {
    let from = match c {
        RunnerCredentials::Token(token) => {
            let value = read_secret(token, &format!("{field}.token"))?;
            return Ok(BTreeMap::from([(TOKEN_KEY.to_owned(), value)]));
        }
        RunnerCredentials::App {
            id,
            installation_id,
            private_key,
        } => {
            let pem = read_secret(private_key, &format!("{field}.app.privateKey"))?;
            if !pem.contains("PRIVATE KEY-----") {
                return Err(credential_error(
                    format!("{field}.app.privateKey"),
                    "not a PEM private key",
                    "use the .pem file GitHub generated for the App",
                ));
            }
            return Ok(BTreeMap::from([
                (APP_KEYS[0].to_owned(), id.to_string()),
                (APP_KEYS[1].to_owned(), installation_id.to_string()),
                (APP_KEYS[2].to_owned(), pem),
            ]));
        }
        RunnerCredentials::FromSecret(from) => from,
    };
    let source = format!("Secret {}/{}", from.namespace, from.name);
    let Some(client) = client else {
        return Err(credential_error(
            format!("{field}.fromSecret"),
            format!("{source} is read from the cluster, which `plan` does not contact"),
            "use `diff` to see the Secrets that would change",
        ));
    };
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &from.namespace);
    let secret = api.get(&from.name).await.map_err(|e| Error::Kube {
        action: "read",
        kind: Kind::Secret.as_str(),
        namespace: from.namespace.clone(),
        name: from.name.clone(),
        source: Box::new(e),
    })?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let token = text(TOKEN_KEY);
    let app: Vec<Option<String>> = APP_KEYS.iter().map(|k| text(k)).collect();
    match (
        token,
        app.iter().all(Option::is_some),
        app.iter().any(Option::is_some),
    ) {
        (Some(t), false, false) => Ok(BTreeMap::from([(TOKEN_KEY.to_owned(), t)])),
        (None, true, _) => Ok(APP_KEYS
            .iter()
            .zip(app)
            .map(|(k, v)| ((*k).to_owned(), v.unwrap_or_default()))
            .collect()),
        _ => Err(credential_error(
            format!("{field}.fromSecret"),
            format!(
                "{source} must hold either `{TOKEN_KEY}` or all of {APP_KEYS:?}, not both kinds and not a part"
            ),
            "fix the source Secret",
        )),
    }
}
