//! The command line: what the user typed (clap derive, no I/O), and the
//! commands that run the pipeline stages. Every flag also reads the
//! `INPUT_<NAME>` variable a container action receives, so the action and a
//! local run share one code path.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{Result, apply, aws, config, github, plan, render, templates::Templates, verify};

/// Per-repository Kubernetes and AWS identities for GitHub Actions runners on
/// actions-runner-controller (kubernetes container mode).
#[derive(Debug, Parser)]
#[command(name = "runner-identity", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what would be created for every repository: Kubernetes objects,
    /// Helm values, hook template and IAM policies.
    Plan(PlanArgs),
    /// Converge the cluster to the plan: server-side apply what changed,
    /// prune what left the configuration.
    Apply(ApplyArgs),
    /// Show what `apply` would change, object by object; sends no write.
    Diff(ApplyArgs),
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// List the owner's repositories on GitHub and show which `select:` picks,
    /// and why; `-o json` is the `--repos-file` format.
    Discover(DiscoverArgs),
    /// Check the identity a job actually has; exit 1 when a check fails.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// The container action's entry point: runs `INPUT_COMMAND` (verify-job,
    /// verify-runner, plan, diff, apply) with the other `INPUT_*` variables.
    #[command(hide = true)]
    Action,
}

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
const ACTION_YML: &str = include_str!("../action.yml");

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

/// `verify` modes.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// In the runner pod (ACTIONS_RUNNER_HOOK_JOB_STARTED): the hooks' rights,
    /// least privilege, the hook template, the job's repository.
    Runner(VerifyRunnerArgs),
    /// In the workflow pod: AWS mechanism, projected token, STS caller.
    Job(VerifyJobArgs),
}

/// Output options shared by both verify modes.
#[derive(Debug, Args)]
pub struct VerifyOutputArgs {
    /// Report format on stdout.
    #[arg(short, long, value_enum, env = "INPUT_OUTPUT", default_value = "table")]
    pub output: ReportFormat,
    /// Mask the AWS account id in the job log (`::add-mask::`).
    #[arg(long, env = "INPUT_MASK-ACCOUNT-ID")]
    pub mask_account_id: bool,
}

/// `verify runner` arguments.
#[derive(Debug, Args)]
pub struct VerifyRunnerArgs {
    /// Configuration file (naming rules and expectations).
    #[arg(
        short,
        long,
        env = "INPUT_CONFIG",
        default_value = "runner-identity.yaml"
    )]
    pub config: PathBuf,
    /// Excess rights fail instead of warn.
    #[arg(long, env = "INPUT_STRICT")]
    pub strict: bool,
    /// The ServiceAccount token to check with.
    #[arg(long, default_value = crate::verify::runner::IN_CLUSTER_TOKEN)]
    pub token_file: PathBuf,
    /// Out of a pod only: kubeconfig naming the API server and its CA (its
    /// credentials are replaced by --token-file). In a pod the in-cluster
    /// configuration is used explicitly.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub out: VerifyOutputArgs,
}

/// `verify job` arguments.
#[derive(Debug, Args)]
pub struct VerifyJobArgs {
    /// Configuration file (expected role from the token's ServiceAccount).
    #[arg(short, long, env = "INPUT_CONFIG")]
    pub config: Option<PathBuf>,
    /// With a `select:` configuration: the saved discovery (`discover -o json`)
    /// that lists its repositories.
    #[arg(long, env = "INPUT_REPOS-FILE", requires = "config")]
    pub repos_file: Option<PathBuf>,
    /// The role the job must have (instead of, or beside, -c).
    #[arg(long, env = "INPUT_EXPECTED-ROLE-ARN")]
    pub expected_role_arn: Option<String>,
    /// Kubernetes API token to check for rights (skipped when absent).
    #[arg(long, default_value = crate::verify::runner::IN_CLUSTER_TOKEN)]
    pub kubernetes_token: PathBuf,
    /// Out of a pod only: kubeconfig naming the API server and its CA.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Directory whose files replace the embedded templates (the trust policy
    /// a failed STS call is diagnosed with).
    #[arg(long, env = "INPUT_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// GitHub OIDC check: auto runs it when the job has `id-token: write`.
    #[arg(long, value_enum, env = "INPUT_GITHUB-OIDC", default_value = "auto")]
    pub github_oidc: verify::github_oidc::OidcMode,
    #[command(flatten)]
    pub out: VerifyOutputArgs,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Multi-document YAML of the Kubernetes objects.
    Yaml,
    /// One JSON document with objects, names, Helm values and IAM documents.
    Json,
}

/// Where the configuration and templates come from.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "INPUT_CONFIG",
        default_value = "runner-identity.yaml"
    )]
    pub config: PathBuf,
    /// Directory whose files replace the embedded templates of the same name.
    #[arg(long, env = "INPUT_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// With `select:`, use this saved discovery (`discover -o json`) instead
    /// of asking GitHub.
    #[arg(long, env = "INPUT_REPOS-FILE")]
    pub repos_file: Option<PathBuf>,
}

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
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: ReportFormat,
}

/// `plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Write one folder per repository (manifests, values, hook template, policies).
    #[arg(long, env = "INPUT_OUT-DIR")]
    pub out_dir: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(short, long, value_enum, env = "INPUT_OUTPUT", default_value = "yaml")]
    pub output: Output,
}

/// Report formats of `apply` and `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A summary table per repository (and diffs, for `diff`).
    Table,
    /// One JSON document with every object's action.
    Json,
}

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
    /// instead of one watch-cache read per kind.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: Option<u32>,
    /// Leave AWS alone: no IAM role, OIDC provider check or pod identity association.
    #[arg(long, env = "INPUT_SKIP-AWS")]
    pub skip_aws: bool,
}

/// The configuration, its plan, and the discovery behind it (with `select:`).
async fn load_plan(
    args: &ConfigArgs,
) -> Result<(config::Settings, plan::Plan, Option<github::Discovery>)> {
    let settings = config::load(&args.config)?;
    let templates = Templates::load(args.templates.as_deref())?;
    let (settings, discovery) = match (&settings.config.select, &args.repos_file) {
        (None, _) => (settings, None),
        (Some(_), Some(file)) => {
            let d = github::Discovery::read(file, &settings)?;
            (d.settings(&settings)?, Some(d))
        }
        (Some(_), None) => {
            let gh = github::Github::connect(&settings, github::RetryPolicy::default()).await?;
            let d = github::discover(&gh, &settings).await?;
            for p in &d.problems {
                tracing::warn!("{p}");
            }
            (d.settings(&settings)?, Some(d))
        }
    };
    let plan = plan::plan(&settings, &templates)?;
    Ok((settings, plan, discovery))
}

/// Runs a parsed command; what it prints goes to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Schema => {
            writeln!(
                out,
                "{}",
                render::pretty(&config::json_schema())?.trim_end()
            )?;
        }
        Command::Plan(args) => {
            let (settings, mut plan, _) = load_plan(&args.config).await?;
            match github::credentials::load(&settings, None).await {
                Ok(Some(data)) => plan::attach_github_secret(&mut plan, &settings, &data),
                Ok(None) => {}
                Err(e) => tracing::warn!("the GitHub credentials Secret is not shown: {e}"),
            }
            if let Some(dir) = &args.out_dir {
                // What was written, a line per repository (the manifests are in the files).
                let folders = render::write_out_dir(&plan, dir)?;
                for (repo, folder) in plan.repositories.iter().zip(&folders) {
                    writeln!(out, "{}  {}", folder.display(), repo.names.repository)?;
                }
                return Ok(());
            }
            match args.output {
                Output::Yaml => write!(out, "{}", render::manifests_yaml(&plan)?)?,
                Output::Json => write!(out, "{}", render::pretty(&render::plan_json(&plan)?)?)?,
            }
        }
        Command::Verify(mode) => return run_verify(mode, out).await,
        Command::Discover(args) => return run_discover(&args, out).await,
        Command::Action => {
            check_action_inputs(std::env::vars_os().map(|(k, _)| k))?;
            let command = std::env::var("INPUT_COMMAND").unwrap_or_default();
            let argv = action_argv(&command).ok_or_else(|| {
                anyhow::anyhow!("input `command` is `{command}`; use verify-job, verify-runner, plan, diff or apply")
            })?;
            // Flags come from their INPUT_* variables (clap's env fallback).
            let cli = Cli::try_parse_from(argv)?;
            return Box::pin(run(cli, out)).await;
        }
        Command::Apply(args) => return run_apply(&args, false, out).await,
        Command::Diff(args) => return run_apply(&args, true, out).await,
    }
    Ok(())
}

async fn run_apply(args: &ApplyArgs, diff_only: bool, out: &mut dyn Write) -> anyhow::Result<()> {
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
    if let Some(data) = github::credentials::load(&settings, Some(&client)).await? {
        plan::attach_github_secret(&mut plan, &settings, &data);
    }
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
    Ok(())
}

async fn run_discover(args: &DiscoverArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let settings = config::load(&args.config)?;
    let gh = github::Github::connect(&settings, github::RetryPolicy::default()).await?;
    let d = github::discover(&gh, &settings).await?;
    match args.output {
        ReportFormat::Json => write!(out, "{}", render::pretty(&serde_json::to_value(&d)?)?)?,
        ReportFormat::Table => {
            for s in &d.selected {
                writeln!(out, "{}/{}  {}", d.owner, s.name, s.reasons.join("; "))?;
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
        tracing::warn!("discovery incomplete: {reason}; `apply --prune` refuses to run on it");
    }
    Ok(())
}

async fn run_verify(mode: VerifyCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    // Variables whose name or value is not UTF-8 are none of the ones read here.
    let env: std::collections::BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let (verdict, output) = match mode {
        VerifyCommand::Runner(args) => {
            let inputs = verify::runner::RunnerInputs {
                settings: config::load(&args.config)?,
                kubeconfig: args.kubeconfig,
                token_file: args.token_file,
                hook_template: env
                    .get("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE")
                    .map(PathBuf::from),
                repository: env.get("GITHUB_REPOSITORY").cloned(),
                strict: args.strict,
            };
            (verify::runner::verify(&inputs).await, args.out)
        }
        VerifyCommand::Job(args) => {
            let inputs = verify::job::JobInputs {
                settings: match (args.config.as_deref(), &args.repos_file) {
                    (Some(path), Some(file)) => {
                        let settings = config::load(path)?;
                        Some(github::Discovery::read(file, &settings)?.settings(&settings)?)
                    }
                    (path, _) => path.map(config::load).transpose()?,
                },
                expected_role_arn: args.expected_role_arn,
                kubernetes_token: Some(args.kubernetes_token),
                kubeconfig: args.kubeconfig,
                github_oidc: args.github_oidc,
                templates: args.templates,
                env: env.clone(),
            };
            (verify::job::verify(&inputs).await, args.out)
        }
    };
    let in_actions = env.get("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    if in_actions {
        let account = verdict.facts.get("account-id").cloned().unwrap_or_default();
        let mask: Vec<&str> = if output.mask_account_id {
            vec![account.as_str()]
        } else {
            Vec::new()
        };
        write!(
            out,
            "{}",
            verify::report::workflow_commands(&verdict, &mask)
        )?;
        let path = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        for problem in verify::report::write_github_files(
            &verdict,
            path("GITHUB_OUTPUT").as_deref(),
            path("GITHUB_STEP_SUMMARY").as_deref(),
        ) {
            tracing::warn!("{problem}");
        }
    }
    match output.output {
        ReportFormat::Json => write!(out, "{}", render::pretty(&verdict.json())?)?,
        ReportFormat::Table => write!(out, "{verdict}")?,
    }
    if !verdict.passed() {
        anyhow::bail!(crate::Error::VerificationFailed { mode: verdict.mode });
    }
    Ok(())
}
