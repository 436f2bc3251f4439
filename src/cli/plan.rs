//! `plan`: the configuration in, every repository's objects, Helm values,
//! hook template and IAM documents out (stdout or one folder per repository).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{ConfigArgs, Output, load};
use crate::{github, render};

/// `plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Write one folder per repository (manifests, values, hook template, policies).
    #[arg(long, env = "INPUT_OUT-DIR")]
    pub out_dir: Option<PathBuf>,
    /// Output format on stdout (with --out-dir: the folders written).
    #[arg(short, long, value_enum, env = "INPUT_OUTPUT", default_value = "yaml")]
    pub output: Output,
}

/// Runs `plan`.
pub(super) async fn run(args: &PlanArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let loaded = load(&args.config).await?;
    let planner = loaded.planner()?;
    let credentials = github::credentials::load(&loaded.settings, None)
        .await
        .inspect_err(|e| tracing::warn!("the GitHub credentials Secret is not shown: {e}"))
        .ok();
    let plan = match &credentials {
        Some(c) => planner.with_credentials(c).plan()?,
        None => planner.plan()?,
    };
    if let Some(dir) = &args.out_dir {
        // What was written, a line per repository (the manifests are in the files).
        let folders = render::write_out_dir(&plan, dir)?;
        match args.output {
            Output::Yaml => {
                for f in &folders {
                    writeln!(out, "{}  {}", f.folder.display(), f.repository)?;
                }
            }
            Output::Json => {
                let doc = serde_json::json!({ "outDir": dir, "repositories": folders });
                write!(out, "{}", render::pretty(&doc)?)?;
            }
        }
        return Ok(());
    }
    match args.output {
        Output::Yaml => {
            for repo in &plan.repositories {
                write!(out, "{}", render::repo_manifests_yaml(repo)?)?;
            }
        }
        Output::Json => render::write_plan_json(&plan, out)?,
    }
    Ok(())
}
