//! The `runner-identity` binary: wires the CLI to the library and maps errors
//! to the documented exit codes (0 ok, 1 verification failed, 2 usage or
//! configuration error, 3 external system failed).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use runner_identity::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A container action receives every input, unset ones as empty
    // `INPUT_<NAME>` variables; an empty one means "not given".
    for (key, value) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("INPUT_") && value.is_empty() {
            // SAFETY: no other thread exists yet (the runtime starts below).
            unsafe { std::env::remove_var(&key) };
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RUNNER_IDENTITY_LOG").unwrap_or_else(|_| {
                EnvFilter::new(
                    "info,kube_client::client::builder=off,kube_client::client::tls=off,octocrab=off",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    // `verify` runs at every job start and makes a few sequential requests:
    // one thread starts faster than a pool. Apply and discovery use the pool.
    let mut builder = if cli.is_verify() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(run(cli, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped reading (`| head`) is not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let text = runner_identity::joined_causes(err.chain().map(ToString::to_string));
            eprintln!("error: {text}");
            let code = err
                .downcast_ref::<runner_identity::Error>()
                .map_or(2, runner_identity::Error::exit_code);
            ExitCode::from(code)
        }
    }
}

/// Whether the error comes from writing to a closed stdout.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
