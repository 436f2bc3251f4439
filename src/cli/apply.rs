//! `apply` and `diff`: the plan in, the cluster and AWS converged (or the
//! differences shown) and a report out.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{ConfigArgs, ReportFormat, load};
use crate::plan::Plans;
use crate::{apply, aws, github, render};

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
    /// How long one request to the API server may wait for its answer
    /// (kubectl's flag: `30s`, `2m`); connecting may take 10 s of it.
    #[arg(long, default_value = "30s", value_parser = super::request_timeout)]
    pub request_timeout: std::time::Duration,
    /// Server-side dry run: the API server validates, nothing is persisted
    /// (`--dry-run`, `--dry-run=server` as kubectl spells it; `none` for none).
    #[arg(
        long,
        env = "INPUT_DRY-RUN",
        num_args = 0..=1,
        require_equals = true,
        default_value = "none",
        default_missing_value = "server",
        value_parser = dry_run_value,
    )]
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
    /// Read the cluster in pages of this many objects (`limit` + `continue`).
    #[arg(long, default_value_t = apply::inventory::PAGE, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Leave AWS alone: no IAM role, OIDC provider check or pod identity association.
    #[arg(long, env = "INPUT_SKIP-AWS")]
    pub skip_aws: bool,
    /// Leave GitHub alone: no runner group of a grouped scale set is read or
    /// changed.
    #[arg(long)]
    pub skip_github: bool,
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

/// What `apply` or `diff` will do: the arguments turned, once, into the
/// options of each stage (and refused when they contradict each other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    pub kubernetes: apply::Options,
    /// `None` with `--skip-aws`.
    pub aws: Option<aws::AwsOptions>,
    /// `diff --exit-code`.
    pub fail_on_changes: bool,
}

impl Run {
    pub(super) fn new(args: &ApplyArgs, diff_only: bool) -> crate::Result<Run> {
        if args.exit_code && !diff_only {
            return Err(crate::Error::Usage {
                message: "--exit-code is a `diff` flag: `apply` exits 0 when it converged".into(),
            });
        }
        Ok(Run {
            kubernetes: apply::Options {
                dry_run: args.dry_run,
                diff_only,
                prune: args.prune,
                adopt: args.adopt,
                concurrency: usize::from(args.concurrency),
                page_size: args.page_size,
            },
            aws: (!args.skip_aws).then_some(aws::AwsOptions {
                no_writes: args.dry_run || diff_only,
                prune: args.prune,
                adopt: args.adopt,
            }),
            fail_on_changes: diff_only && args.exit_code,
        })
    }
}

pub(super) async fn run(
    args: &ApplyArgs,
    diff_only: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let run = Run::new(args, diff_only)?;
    let loaded = load(&args.config).await?;
    let (settings, planner) = (&loaded.settings, loaded.planner()?);
    if run.aws.is_some() && !diff_only {
        // Before anything is written anywhere.
        crate::plan::apply_identity_requirements(settings)?;
    }
    if let (true, Some(d)) = (args.prune, &loaded.discovery) {
        if let Some(reason) = &d.incomplete {
            anyhow::bail!(crate::Error::DiscoveryIncomplete {
                reason: reason.clone(),
                refused: "refusing to prune, nothing was changed (or re-run without --prune)"
                    .into(),
            });
        }
        if planner.count() == 0 {
            anyhow::bail!(crate::Error::DiscoveryIncomplete {
                reason: "it selected no repository, which would prune every one".into(),
                refused: "refusing to prune, nothing was changed (or re-run without --prune)"
                    .into(),
            });
        }
    }
    // A partial listing would take the members it missed out of their
    // group's runner group.
    if let Some(d) = loaded.discovery.as_ref().filter(|_| !args.skip_github)
        && let Some(reason) = &d.incomplete
        && let Some(g) = settings.config.groups.iter().find(|g| g.select.is_some())
    {
        anyhow::bail!(crate::Error::DiscoveryIncomplete {
            reason: reason.clone(),
            refused: format!(
                "refusing to apply: group `{}` is filled by `select:`, and its runner group would \
                 lose the repositories the listing missed; nothing was changed (or re-run with \
                 --skip-github)",
                g.name
            ),
        });
    }
    let client = crate::net::kube::client(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        crate::net::KubeTimeouts::for_request(args.request_timeout),
    )
    .await?;
    // The controller deletes scale sets of a version it does not keep:
    // refused before anything is written (diff says it).
    match crate::controller::read(&client, settings).await {
        Ok(controller) => {
            let chart = &settings.config.kubernetes.chart;
            if let Some((what, fix)) =
                crate::controller::refusal(&controller, &chart.version, chart.name.as_str())
            {
                if diff_only {
                    tracing::error!("{what}; {fix}");
                } else {
                    anyhow::bail!(crate::Error::ClusterUnsupported {
                        what: format!("{what}; nothing was changed"),
                        fix,
                    });
                }
            }
        }
        Err(crate::controller::Unknown::Failed(source)) => {
            // The API server itself failed: nothing else would work either.
            let at = &settings.config.kubernetes.chart.controller;
            anyhow::bail!(crate::Error::Kube {
                action: "get",
                kind: "Deployment",
                namespace: at.namespace.clone(),
                name: at.deployment.clone(),
                source,
            });
        }
        Err(why) => tracing::warn!("{}", crate::controller::unknown_text(settings, &why)),
    }
    let credentials = github::credentials::load(settings, Some(&client)).await?;
    let planner = planner.with_credentials(&credentials);
    let report = match apply::apply(&client, &planner, &run.kubernetes).await {
        Ok(r) => r,
        Err(crate::Error::Unmanaged { objects }) if args.output == ReportFormat::Json => {
            // The error names a few; the JSON document lists every one.
            let doc = serde_json::json!({ "kubernetes": null, "aws": null, "conflicts": objects });
            write!(out, "{}", render::pretty(&doc)?)?;
            anyhow::bail!(crate::Error::Unmanaged { objects });
        }
        Err(e) => return Err(e.into()),
    };
    let aws_report = match &run.aws {
        None => None,
        Some(aws_options) => {
            let clients = aws::Clients::from_env(
                settings.config.cluster.region.as_deref(),
                settings.config.aws.partition,
            )
            .await;
            Some(aws::apply(&clients, settings, &planner, aws_options).await)
        }
    };
    // The groups' runner groups: only the group's repositories may send it jobs.
    let github_report = if settings.groups.is_empty() || args.skip_github {
        None
    } else {
        let gh = github::Github::connect(settings, github::RetryPolicy::default()).await?;
        Some(
            github::runner_groups::reconcile(
                &gh,
                &settings.config.github.owner,
                &github::runner_groups::planned(settings),
                github::runner_groups::Options {
                    no_writes: args.dry_run || diff_only,
                    adopt: args.adopt,
                },
            )
            .await?,
        )
    };
    match args.output {
        ReportFormat::Json => {
            let doc = serde_json::json!({ "kubernetes": report, "aws": aws_report, "github": github_report });
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
            if let Some(g) = &github_report {
                write!(out, "{}", g.table())?;
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
    let github_failed = github_report.as_ref().map_or(0, |g| g.failed());
    for p in github_report.iter().flat_map(|g| g.problems()) {
        tracing::error!("{p}");
    }
    if report.failed() || aws_failed > 0 || github_failed > 0 {
        anyhow::bail!(crate::Error::PartialFailure {
            failed: report.totals().failed + aws_failed + github_failed
        });
    }
    if run.fail_on_changes {
        let totals = report.totals();
        let changes = totals.created
            + totals.updated
            + totals.pruned
            + aws_report.as_ref().map_or(0, |a| {
                a.roles.iter().filter(|r| !r.changes.is_empty()).count()
            })
            + github_report.as_ref().map_or(0, |g| g.changes());
        if changes > 0 {
            anyhow::bail!(crate::Error::Drift { changes });
        }
    }
    Ok(())
}

/// kubectl's `--dry-run` values (and the action's `true`/`false`); a client
/// dry run is `plan`'s job.
fn dry_run_value(text: &str) -> std::result::Result<bool, String> {
    match text {
        "server" | "true" => Ok(true),
        "none" | "false" => Ok(false),
        "client" => Err(
            "runner-identity's dry run is the API server's (`--dry-run=server`); for what would \
             be written without asking the server, run `runner-identity plan`"
                .into(),
        ),
        other => Err(format!("`{other}`: use server or none")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> ApplyArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ApplyArgs,
        }
        Wrapper::parse_from([&["runner-identity"], argv].concat()).args
    }

    #[test]
    fn the_arguments_become_each_stages_options_once() {
        // kubectl's spelling too; before, `--dry-run=server` was refused.
        for dry in ["--dry-run", "--dry-run=server"] {
            assert!(
                Run::new(&args(&["-c", "c.yaml", dry]), false)
                    .unwrap()
                    .kubernetes
                    .dry_run
            );
        }
        assert!(
            !Run::new(&args(&["-c", "c.yaml", "--dry-run=none"]), false)
                .unwrap()
                .kubernetes
                .dry_run
        );
        let run = Run::new(&args(&["-c", "c.yaml", "--prune", "--dry-run"]), false).unwrap();
        assert!(run.kubernetes.prune && run.kubernetes.dry_run && !run.kubernetes.diff_only);
        assert_eq!(
            run.aws,
            Some(aws::AwsOptions {
                no_writes: true,
                prune: true,
                adopt: false
            })
        );
        let diff = Run::new(&args(&["-c", "c.yaml", "--skip-aws", "--exit-code"]), true).unwrap();
        assert!(diff.kubernetes.diff_only && diff.fail_on_changes && diff.aws.is_none());
        let refused = Run::new(&args(&["-c", "c.yaml", "--exit-code"]), false).unwrap_err();
        assert!(refused.to_string().contains("--exit-code is a `diff` flag"));
    }
}
