//! The command line: what the user typed (clap derive, no I/O), and the
//! commands that run the pipeline stages. Every flag also reads the
//! `INPUT_<NAME>` variable a container action receives, so the action and a
//! local run share one code path.

mod action;
mod apply;
mod bootstrap;
mod discover;
mod doctor;
mod job_started;
mod plan;
mod verify;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use self::action::{action_argv, check_action_inputs, declared_input_variables};
pub use self::apply::ApplyArgs;
pub use self::bootstrap::BootstrapArgs;
pub use self::discover::DiscoverArgs;
pub use self::doctor::{DoctorArgs, DoctorFormat};
pub use self::job_started::JobStartedArgs;
pub use self::plan::PlanArgs;
pub use self::verify::{VerifyCommand, VerifyJobArgs, VerifyOutputArgs, VerifyRunnerArgs};
use crate::{Result, config, github, render, templates::Templates};

/// Per-repository Kubernetes and AWS identities for GitHub Actions runners on
/// actions-runner-controller (kubernetes container mode).
#[derive(Debug, Parser)]
#[command(name = "runner-identity", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether this runs a `verify` mode (directly or through the action).
    pub fn is_verify(&self) -> bool {
        match &self.command {
            Command::Verify(_) => true,
            // The command line the action stands for decides, as it will run.
            Command::Action => {
                let command = std::env::var("INPUT_COMMAND").unwrap_or_default();
                action_argv(&command).is_none_or(|argv| argv.get(1) == Some(&"verify"))
            }
            _ => false,
        }
    }
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
    /// Print the rights the identity that runs `apply` needs (Kubernetes
    /// ServiceAccount, ClusterRole and binding; IAM policies), for this
    /// configuration.
    Bootstrap(BootstrapArgs),
    /// Print the JSON Schema of the configuration file.
    Schema {
        /// Print the configuration reference (`docs/configuration.md`),
        /// generated from the schema, instead.
        #[arg(long)]
        markdown: bool,
    },
    /// List the owner's repositories on GitHub and show which `select:` picks,
    /// and why; `-o json` is the `--repos-file` format.
    Discover(DiscoverArgs),
    /// Diagnose ARC scale sets (any, or the configuration's) and their jobs'
    /// IAM identity from outside, read-only; exit 1 on an error-level finding.
    Doctor(DoctorArgs),
    /// Check the identity a job actually has; exit 1 when a check fails.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Print the shell completion script for SHELL (bash, zsh, fish,
    /// elvish, powershell): e.g. `source <(runner-identity completion bash)`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// In a grouped scale set's runner pod (ACTIONS_RUNNER_HOOK_JOB_STARTED):
    /// write the job's repository's hook template, or refuse a repository
    /// outside the group (exit 1).
    JobStarted(JobStartedArgs),
    /// The container action's entry point: runs `INPUT_COMMAND` (verify-job,
    /// verify-runner, plan, diff, apply) with the other `INPUT_*` variables.
    #[command(hide = true)]
    Action,
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

/// Report formats of `apply` and `diff`.
/// kubectl's `--request-timeout` values: `30s`, `2m`, `1h`, or seconds;
/// `0` is refused (an interactive tool must end).
pub fn request_timeout(text: &str) -> std::result::Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}`: write a duration such as 30s, 2m or 1h")),
    };
    match number.parse::<u64>() {
        Ok(0) => Err("a timeout of 0 would wait forever; give a duration such as 30s".into()),
        Ok(n) => Ok(std::time::Duration::from_secs(n.saturating_mul(seconds))),
        Err(_) => Err(format!("`{text}`: write a duration such as 30s, 2m or 1h")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// For people: a table (`apply` and `diff`: one per repository, with the diffs).
    Table,
    /// For machines: one JSON document.
    Json,
}

/// A loaded configuration: settings, templates, and the discovery behind
/// them (with `select:`).
struct Loaded {
    settings: config::Settings,
    templates: Templates,
    discovery: Option<github::Discovery>,
}

impl Loaded {
    /// The planner of this configuration (what spans repositories checked),
    /// after logging the planning warnings.
    fn planner(&self) -> Result<crate::plan::Planner<'_>> {
        let planner = crate::plan::Planner::new(&self.settings, &self.templates)?;
        for warning in crate::plan::planning_warnings(&self.settings) {
            tracing::warn!("{warning}");
        }
        Ok(planner)
    }
}

/// Loads the configuration and templates, and discovers the repositories
/// when the configuration selects them.
async fn load(args: &ConfigArgs) -> Result<Loaded> {
    let settings = config::load(&args.config)?;
    let templates = Templates::load(args.templates.as_deref())?;
    let (settings, discovery) = match (settings.config.discovers(), &args.repos_file) {
        (false, _) => (settings, None),
        (true, Some(file)) => {
            let d = github::Discovery::read(file, &settings)?;
            (d.settings(&settings)?, Some(d))
        }
        (true, None) => {
            let gh = github::Github::connect(&settings, github::RetryPolicy::default()).await?;
            let d = github::discover(&gh, &settings).await?;
            for p in &d.problems {
                tracing::warn!("{p}");
            }
            (d.settings(&settings)?, Some(d))
        }
    };
    if let Some(reason) = discovery
        .as_ref()
        .filter(|d| d.selected.is_empty())
        .and_then(|d| d.incomplete.clone())
    {
        // Nothing selected from a partial listing is no plan at all.
        return Err(crate::Error::DiscoveryIncomplete {
            reason,
            refused: "it selected no repository, so nothing was planned".into(),
        });
    }
    Ok(Loaded {
        settings,
        templates,
        discovery,
    })
}

/// Runs a parsed command; what it prints goes to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Schema { markdown: false } => {
            writeln!(
                out,
                "{}",
                render::pretty(&config::json_schema())?.trim_end()
            )?;
        }
        Command::Schema { markdown: true } => {
            write!(
                out,
                "{}",
                config::reference::markdown(&config::json_schema())
            )?;
        }
        Command::Plan(args) => return plan::run(&args, out).await,
        Command::Verify(mode) => return verify::run(mode, out).await,
        Command::JobStarted(args) => return job_started::run(&args, out).await,
        Command::Discover(args) => return discover::run(&args, out).await,
        Command::Doctor(args) => return doctor::run(&args, out).await,
        Command::Bootstrap(args) => return bootstrap::run(&args, out).await,
        Command::Completion { shell } => {
            use clap::CommandFactory;
            // Without the hidden `action` (the container's entry point),
            // which the generators would offer anyway.
            let full = Cli::command();
            let mut command = clap::Command::new("runner-identity")
                .about(full.get_about().cloned().unwrap_or_default())
                .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
            clap_complete::generate(shell, &mut command, "runner-identity", out);
        }
        Command::Action => return action::run(out).await,
        Command::Apply(args) => return apply::run(&args, false, out).await,
        Command::Diff(args) => return apply::run(&args, true, out).await,
    }
    Ok(())
}
