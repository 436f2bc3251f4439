//! `plan`: the configuration in, every repository's objects, Helm values,
//! hook template and IAM documents out (stdout or one folder per repository).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{ConfigArgs, Output, load};
use crate::plan::Plans;
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
    let planner = match &credentials {
        Some(c) => planner.with_credentials(c),
        None => planner,
    };
    // Every repository is planned (and its output checked) before anything
    // is printed, without keeping the plans: memory stays flat in their
    // number, and a failing repository leaves stdout empty.
    for i in 0..planner.count() {
        planner.repository(i)?;
    }
    let mut out = std::io::BufWriter::new(out);
    if let Some(dir) = &args.out_dir {
        // What was written, a line per repository (the manifests are in the files).
        let folders = render::write_out_dir(&planner, dir)?;
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
        out.flush()?;
        return Ok(());
    }
    match args.output {
        Output::Yaml => {
            for i in 0..planner.count() {
                write!(
                    out,
                    "{}",
                    render::repo_manifests_yaml(&*planner.repository_again(i)?)?
                )?;
            }
        }
        Output::Json => render::write_plan_json(&planner, &mut out)?,
    }
    out.flush()?;
    Ok(())
}
