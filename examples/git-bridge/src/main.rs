//! The `git-bridge` binary: parses the command line, opens the repository and serves
//! [`git_bridge::Bridge`] until SIGINT or SIGTERM. The first line on stdout is
//! `listening on http://ADDR`, so a script can start it on port 0 and read the port.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use git_bridge::{Bridge, BridgeConfig};
use hookshape_signing::Secret;
use tracing_subscriber::EnvFilter;

/// Applies signed commit requests from hookshape's git-commit plugin to a local Git repository.
#[derive(Debug, Parser)]
#[command(name = "git-bridge", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The repository's work tree; created and initialised on branch main when it has none.
    #[arg(long)]
    repo: PathBuf,
    /// The subscription's signing secret (whsec_...).
    #[arg(long, env = "GIT_BRIDGE_SECRET", hide_env_values = true)]
    secret: Secret,
    /// How far webhook-timestamp may be from now (Standard Webhooks recommends 5 minutes).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    tolerance: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let bridge = Bridge::open(BridgeConfig {
        repo: args.repo.clone(),
        secret: args.secret,
        tolerance: args.tolerance,
    })
    .with_context(|| format!("cannot use {} as the repository", args.repo.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%addr, "git-bridge listening");

    axum::serve(listener, Arc::new(bridge).router())
        .with_graceful_shutdown(hookshape_shutdown::signal())
        .await
        .context("server failed")
}
