//! `apply` and `diff`: the plan in, the cluster and AWS converged (or the
//! differences shown) and a report out.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{ConfigArgs, ReportFormat, load_plan};
use crate::{apply, aws, github, plan, render};

/// `apply` and `diff` arguments.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// kubeconfig file (default: the files KUBECONFIG lists, merged as
    /// kubectl merges them, else ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long, env = "INPUT_CONTEXT")]
    pub context: Option<String>,
    /// Server-side dry run: the API server validates, nothing is persisted.
    #[arg(long, env = "INPUT_DRY-RUN")]
    pub dry_run: bool,
    /// Delete objects of this configuration whose repository left it.
    #[arg(long, env = "INPUT_PRUNE")]
    pub prune: bool,
    /// Take over objects of a planned name that runner-identity does not manage.
    #[arg(long, env = "INPUT_ADOPT")]
    pub adopt: bool,
    /// Repositories applied at the same time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Report format on stdout.
    #[arg(short, long, value_enum, env = "INPUT_OUTPUT", default_value = "table")]
    pub output: ReportFormat,
    /// Read the cluster in pages of this many objects (`limit` + `continue`)
    /// instead of one response per kind.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: Option<u32>,
    /// Leave AWS alone: no IAM role, OIDC provider check or pod identity association.
    #[arg(long, env = "INPUT_SKIP-AWS")]
    pub skip_aws: bool,
    /// `diff` only: exit 1 when anything would change (a drift check).
    #[arg(long)]
    pub exit_code: bool,
    /// `json`: one JSON line per repository result on stderr, for log pipelines.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How results are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub(super) async fn run(
    args: &ApplyArgs,
    diff_only: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if args.exit_code && !diff_only {
        anyhow::bail!(crate::Error::Usage {
            message: "--exit-code is a `diff` flag: `apply` exits 0 when it converged".into()
        });
    }
    let (settings, mut plan, discovery) = load_plan(&args.config).await?;
    if let (true, Some(d)) = (args.prune, &discovery) {
        if let Some(reason) = &d.incomplete {
            anyhow::bail!(crate::Error::DiscoveryIncomplete {
                reason: reason.clone()
            });
        }
        if plan.repositories.is_empty() {
            anyhow::bail!(crate::Error::DiscoveryIncomplete {
                reason: "it selected no repository, which would prune every one".into()
            });
        }
    }
    let client = apply::client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let credentials = github::credentials::load(&settings, Some(&client)).await?;
    plan::attach_github_secret(&mut plan, &settings, &credentials);
    let options = apply::Options {
        dry_run: args.dry_run,
        diff_only,
        prune: args.prune,
        adopt: args.adopt,
        concurrency: usize::from(args.concurrency),
        page_size: args.page_size,
    };
    let report = match apply::apply(&client, &plan, &options).await {
        Ok(r) => r,
        Err(crate::Error::Unmanaged { objects }) if args.output == ReportFormat::Json => {
            // The error names a few; the JSON document lists every one.
            let doc = serde_json::json!({ "kubernetes": null, "aws": null, "conflicts": objects });
            write!(out, "{}", render::pretty(&doc)?)?;
            anyhow::bail!(crate::Error::Unmanaged { objects });
        }
        Err(e) => return Err(e.into()),
    };
    let aws_report = if args.skip_aws {
        None
    } else {
        let clients = aws::Clients::from_env(settings.config.cluster.region.as_deref()).await;
        let aws_options = aws::AwsOptions {
            no_writes: args.dry_run || diff_only,
            prune: args.prune,
            adopt: args.adopt,
        };
        Some(aws::apply(&clients, &settings, &plan, &aws_options).await)
    };
    match args.output {
        ReportFormat::Json => {
            let doc = serde_json::json!({ "kubernetes": report, "aws": aws_report });
            write!(out, "{}", render::pretty(&doc)?)?;
        }
        ReportFormat::Table => {
            if diff_only {
                write!(out, "{}", report.diffs())?;
            }
            write!(out, "{}", report.table())?;
            if let Some(a) = &aws_report {
                write!(out, "{}", a.table())?;
            }
        }
    }
    if args.log_format == LogFormat::Json {
        for repo in &report.repositories {
            eprintln!("{}", repo.log_line());
        }
    }
    for problem in report.problems() {
        tracing::error!("{problem}");
    }
    let aws_failed = aws_report.as_ref().map_or(0, |a| {
        a.roles.iter().filter(|r| r.error.is_some()).count() + a.problems.len()
    });
    for p in aws_report.iter().flat_map(|a| &a.problems) {
        tracing::error!("{p}");
    }
    if report.failed() || aws_failed > 0 {
        anyhow::bail!(crate::Error::PartialFailure {
            failed: report.totals().failed + aws_failed
        });
    }
    if diff_only && args.exit_code {
        let totals = report.totals();
        let changes = totals.created
            + totals.updated
            + totals.pruned
            + aws_report.as_ref().map_or(0, |a| {
                a.roles.iter().filter(|r| !r.changes.is_empty()).count()
            });
        if changes > 0 {
            anyhow::bail!(crate::Error::Drift { changes });
        }
    }
    Ok(())
}
