//! `doctor`: diagnose ARC scale sets and their jobs' IAM identity, read-only.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::{aws, config, doctor};

/// Output format of `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorFormat {
    Table,
    Json,
    Markdown,
}

/// `doctor` arguments.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A runner-identity configuration: diagnose its planned scale sets.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Only this namespace (kubectl's -n).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only the scale set of this name.
    #[arg(long)]
    pub scale_set: Option<String>,
    /// The EKS cluster (issuer, Pod Identity associations); default:
    /// `cluster.name` of the configuration.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Leave AWS out (no IAM, STS or EKS request).
    #[arg(long)]
    pub skip_aws: bool,
    /// kubeconfig file (default: the files KUBECONFIG lists, merged as
    /// kubectl merges them, else ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// How long one request to the API server may wait for its answer
    /// (kubectl's flag: `30s`, `2m`); connecting may take 10 s of it.
    #[arg(long, default_value = "30s", value_parser = super::request_timeout)]
    pub request_timeout: std::time::Duration,
    /// The ARC controller's Deployment (`NAMESPACE/NAME`), whose version
    /// each scale set's is compared with; default: the configuration's
    /// `kubernetes.chart.controller`, else `arc-systems/arc-gha-rs-controller`.
    #[arg(long, value_parser = controller_at)]
    pub arc_controller: Option<crate::config::ControllerDeployment>,
    /// The findings on stdout: a table, Markdown (a step summary), or JSON.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: DoctorFormat,
}

/// Runs `doctor`: exit 1 when any finding is an error.
pub(super) async fn run(args: &DoctorArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let settings = args.config.as_deref().map(config::load).transpose()?;
    let client = crate::net::kube::client(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        crate::net::KubeTimeouts::for_request(args.request_timeout),
    )
    .await?;
    let cluster = args
        .cluster
        .clone()
        .or_else(|| settings.as_ref().map(|s| s.config.cluster.name.clone()));
    let region = settings
        .as_ref()
        .and_then(|s| s.config.cluster.region.clone());
    let partition = settings
        .as_ref()
        .map_or(crate::config::Partition::Aws, |s| s.config.aws.partition);
    let clients = if args.skip_aws {
        None
    } else {
        Some(aws::Clients::from_env(region.as_deref(), partition).await)
    };
    let options = doctor::Options {
        settings: settings.as_ref(),
        namespace: args.namespace.clone(),
        scale_set: args.scale_set.clone(),
        cluster,
        aws: clients,
        controller: args.arc_controller.clone(),
    };
    let report = doctor::diagnose(&client, &options).await;
    match args.output {
        DoctorFormat::Table => write!(out, "{}", report.table())?,
        DoctorFormat::Markdown => write!(out, "{}", report.markdown())?,
        DoctorFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
    }
    if let Some(source) = report.unreachable {
        anyhow::bail!(crate::Error::Kube {
            action: "list",
            kind: "AutoscalingRunnerSet",
            namespace: args.namespace.clone().unwrap_or_default(),
            name: "*".into(),
            source: Box::new(source),
        });
    }
    if report.failed() {
        let errors = report
            .findings
            .iter()
            .filter(|f| f.severity == doctor::Severity::Error)
            .count();
        anyhow::bail!(crate::Error::DiagnosisFailed { errors });
    }
    Ok(())
}

/// `NAMESPACE/NAME` of a Deployment.
fn controller_at(text: &str) -> Result<crate::config::ControllerDeployment, String> {
    match text.split_once('/') {
        Some((namespace, deployment)) if !namespace.is_empty() && !deployment.is_empty() => {
            Ok(crate::config::ControllerDeployment {
                namespace: namespace.to_owned(),
                deployment: deployment.to_owned(),
            })
        }
        _ => Err(format!(
            "`{text}`: write it as NAMESPACE/NAME, like arc-systems/arc-gha-rs-controller"
        )),
    }
}
