//! `verify runner` and `verify job`: the checks, their report on stdout,
//! and in GitHub Actions the annotations, outputs and step summary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ReportFormat;
use crate::{config, github, render, verify};

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
    /// The checks on stdout: a table, or one JSON document (`-o json`).
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
    /// The configuration as text instead of a file: how the runner of the
    /// gha-runner-scale-set-experimental chart gets it (`runner.env`).
    #[arg(long, env = "RUNNER_IDENTITY_CONFIG_TEXT", hide_env_values = true)]
    pub config_text: Option<String>,
    /// Excess rights fail instead of warn (so does the configuration's
    /// `kubernetes.verifyRunner.strict`).
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
    /// A reachable instance metadata service (the node's role) fails
    /// instead of warning.
    #[arg(long, env = "INPUT_STRICT")]
    pub strict: bool,
    /// GitHub OIDC check: auto runs it when the job has `id-token: write`.
    #[arg(long, value_enum, env = "INPUT_GITHUB-OIDC", default_value = "auto")]
    pub github_oidc: verify::github_oidc::OidcMode,
    #[command(flatten)]
    pub out: VerifyOutputArgs,
}

/// The inputs of `verify runner`: the arguments and the runner's variables,
/// read once. The configuration comes from `RUNNER_IDENTITY_CONFIG_TEXT` when
/// set (the experimental chart), else from the file; its
/// `verifyRunner.strict` makes the run strict too.
fn runner_inputs(
    args: &VerifyRunnerArgs,
    env: &BTreeMap<String, String>,
) -> crate::Result<verify::runner::RunnerInputs> {
    let settings = match &args.config_text {
        Some(text) => config::parse(text, std::path::Path::new("RUNNER_IDENTITY_CONFIG_TEXT"))?,
        None => config::load(&args.config)?,
    };
    let strict = args.strict || settings.config.kubernetes.verify_runner.strict;
    Ok(verify::runner::RunnerInputs {
        settings,
        kubeconfig: args.kubeconfig.clone(),
        token_file: args.token_file.clone(),
        hook_template: env
            .get("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE")
            .map(PathBuf::from),
        repository: env.get("GITHUB_REPOSITORY").cloned(),
        require_job_container: env.get("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER").cloned(),
        strict,
    })
}

/// The inputs of `verify job`: the arguments, the configuration (with a
/// saved discovery when `--repos-file` is given) and the environment.
fn job_inputs(
    args: &VerifyJobArgs,
    env: &BTreeMap<String, String>,
) -> crate::Result<verify::job::JobInputs> {
    let settings = match (args.config.as_deref(), &args.repos_file) {
        (Some(path), Some(file)) => {
            let settings = config::load(path)?;
            Some(github::Discovery::read(file, &settings)?.settings(&settings)?)
        }
        (path, _) => path.map(config::load).transpose()?,
    };
    Ok(verify::job::JobInputs {
        settings,
        expected_role_arn: args.expected_role_arn.clone(),
        kubernetes_token: Some(args.kubernetes_token.clone()),
        kubeconfig: args.kubeconfig.clone(),
        github_oidc: args.github_oidc,
        templates: args.templates.clone(),
        strict: args.strict,
        env: env.clone(),
    })
}

pub(super) async fn run(mode: VerifyCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    // Variables whose name or value is not UTF-8 are none of the ones read here.
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let (verdict, output) = match mode {
        VerifyCommand::Runner(args) => {
            let inputs = runner_inputs(&args, &env)?;
            (verify::runner::verify(&inputs).await, args.out)
        }
        VerifyCommand::Job(args) => {
            let inputs = job_inputs(&args, &env)?;
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
