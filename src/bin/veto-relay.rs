//! `veto-relay`: a fault-injecting UDP relay between veto nodes, for
//! rehearsing partitions, loss and delay, and for tests. It is not part of
//! the node; see the `relay` module for the faults and the control port.

#[path = "../relay/mod.rs"]
mod relay;

use std::process::ExitCode;

use clap::Parser;

/// veto-relay: a UDP relay that injects network faults.
#[derive(Parser, Debug)]
#[command(
    name = "veto-relay",
    version,
    about = "A UDP relay that injects network faults between veto nodes, for rehearsals and tests",
    long_about = None
)]
struct Cli {
    #[command(flatten)]
    config: relay::RelayConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(run(cli.config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("veto-relay: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Relays until the listening socket fails.
async fn run(config: relay::RelayConfig) -> std::io::Result<()> {
    let to = config.to;
    let relay = relay::Relay::bind(config).await?;
    tracing::info!(
        listen = %relay.local_addr()?,
        %to,
        control = ?relay.control_addr(),
        "relay running"
    );
    relay.serve().await
}
