//! `discover`: the owner's repositories on GitHub, which `select:` picks and why.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::ReportFormat;
use crate::{config, github, render};

/// `discover` arguments.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "INPUT_CONFIG",
        default_value = "runner-identity.yaml"
    )]
    pub config: PathBuf,
    /// Also show the repositories not selected, with the reason.
    #[arg(long)]
    pub explain: bool,
    /// The selected repositories on stdout: a table, or the JSON document
    /// `plan`/`apply --repos-file` read.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: ReportFormat,
}

pub(super) async fn run(args: &DiscoverArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let settings = config::load(&args.config)?;
    let gh = github::Github::connect(&settings, github::RetryPolicy::default()).await?;
    let d = github::discover(&gh, &settings).await?;
    match args.output {
        ReportFormat::Json => write!(out, "{}", render::pretty(&serde_json::to_value(&d)?)?)?,
        ReportFormat::Table => {
            for s in &d.selected {
                let groups = match s.groups.as_slice() {
                    [] => String::new(),
                    g => format!("  [group {}]", g.join(", ")),
                };
                writeln!(
                    out,
                    "{}/{}{groups}  {}",
                    d.owner,
                    s.name,
                    s.reasons.join("; ")
                )?;
            }
            if args.explain {
                for r in &d.rejected {
                    writeln!(out, "{}/{}  not selected: {}", d.owner, r.name, r.reason)?;
                }
            }
            writeln!(
                out,
                "{} of {} repositories selected{}",
                d.selected.len(),
                d.listed,
                d.incomplete
                    .as_ref()
                    .map(|r| format!("; INCOMPLETE: {r}"))
                    .unwrap_or_default()
            )?;
        }
    }
    for p in &d.problems {
        tracing::warn!("{p}");
    }
    if let Some(reason) = &d.incomplete {
        anyhow::bail!(crate::Error::DiscoveryIncomplete {
            reason: reason.clone(),
            refused: "the list above may lack repositories `select:` picks (`apply --prune` \
                      refuses to run on it)"
                .into(),
        });
    }
    Ok(())
}
