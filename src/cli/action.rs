//! The container action's entry point: `INPUT_COMMAND` and the other
//! `INPUT_*` variables GitHub sets from `with:`, checked against the inputs
//! `action.yml` declares, then run as the command line they stand for.

use std::io::Write;

use clap::Parser;

use super::Cli;
use crate::Result;

/// The argv an action's `command` input stands for.
pub fn action_argv(command: &str) -> Option<Vec<&'static str>> {
    Some(match command {
        "" | "verify-job" => vec!["runner-identity", "verify", "job"],
        "verify-runner" => vec!["runner-identity", "verify", "runner"],
        "plan" => vec!["runner-identity", "plan"],
        "diff" => vec!["runner-identity", "diff"],
        "apply" => vec!["runner-identity", "apply"],
        _ => return None,
    })
}

/// The action's own definition: its inputs are the only `INPUT_*` variables
/// `runner-identity action` accepts.
const ACTION_YML: &str = include_str!("../../action.yml");

/// The `INPUT_<NAME>` variables GitHub sets for the inputs `action.yml`
/// declares (the name upper-cased, hyphens kept).
pub fn declared_input_variables() -> Result<std::collections::BTreeSet<String>> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(ACTION_YML).map_err(|e| crate::Error::Usage {
            message: format!("the embedded action.yml does not parse: {e}"),
        })?;
    let inputs = doc
        .get("inputs")
        .and_then(serde_yaml::Value::as_mapping)
        .ok_or_else(|| crate::Error::Usage {
            message: "the embedded action.yml declares no inputs".into(),
        })?;
    Ok(inputs
        .keys()
        .filter_map(serde_yaml::Value::as_str)
        .map(|name| format!("INPUT_{}", name.to_uppercase()))
        .collect())
}

/// Refuses an `INPUT_*` variable that `action.yml` does not declare: a
/// misspelt input (`dry_run` for `dry-run`) must never be silently ignored.
pub fn check_action_inputs<I>(variables: I) -> Result<()>
where
    I: IntoIterator<Item = std::ffi::OsString>,
{
    let declared = declared_input_variables()?;
    let undeclared: Vec<String> = variables
        .into_iter()
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| v.starts_with("INPUT_") && !declared.contains(v))
        .collect();
    if undeclared.is_empty() {
        return Ok(());
    }
    let known: Vec<String> = declared
        .iter()
        .map(|v| v.trim_start_matches("INPUT_").to_lowercase())
        .collect();
    Err(crate::Error::Usage {
        message: format!(
            "the action received {} that action.yml does not declare: {}; nothing was run. \
             Fix the `with:` key (inputs are {}; hyphens, not underscores)",
            if undeclared.len() == 1 {
                "an input"
            } else {
                "inputs"
            },
            undeclared.join(", "),
            known.join(", ")
        ),
    })
}

/// Runs the command `INPUT_COMMAND` names.
pub(super) async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    check_action_inputs(std::env::vars_os().map(|(k, _)| k))?;
    let command = std::env::var("INPUT_COMMAND").unwrap_or_default();
    let argv = action_argv(&command).ok_or_else(|| {
        anyhow::anyhow!(
            "input `command` is `{command}`; use verify-job, verify-runner, plan, diff or apply"
        )
    })?;
    // Flags come from their INPUT_* variables (clap's env fallback).
    let cli = Cli::try_parse_from(argv)?;
    Box::pin(super::run(cli, out)).await
}
