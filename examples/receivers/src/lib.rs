//! Example receivers for hookshape's demo and tests: [`slack`] behaves like a Slack incoming
//! webhook and [`zapier`] like a Zapier catch hook. Each records what it accepted ([`record`])
//! and shows it at `GET /received` (`DELETE /received` forgets it), and each can fail its first
//! requests on purpose and check Standard Webhooks signatures ([`gate`]).
//!
//! The binaries `slack-receiver` and `zapier-receiver` share [`CommonArgs`] and [`serve`].

pub mod gate;
pub mod record;
pub mod slack;
pub mod zapier;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hookshape_signing::Secret;
use tokio::net::TcpListener;

use crate::gate::GateConfig;

/// The flags both receivers take.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// When given, require a valid Standard Webhooks signature for this secret (whsec_...).
    #[arg(long, env = "RECEIVER_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,
    /// How far webhook-timestamp may be from now when checking signatures.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub tolerance: Duration,
    /// Answer 503 to the first N requests, to show hookshape's retries.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub fail_first: u64,
}

impl CommonArgs {
    /// The gate these flags describe.
    pub fn gate(&self) -> GateConfig {
        GateConfig {
            secret: self.secret.clone(),
            tolerance: self.tolerance,
            fail_first: self.fail_first,
        }
    }
}

/// Sends logs to stderr, keeping stdout for the `listening on` line; `RUST_LOG` filters them.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(io::stderr)
        .init();
}

/// Binds `listen`, prints `listening on http://ADDR` as the first stdout line, and serves
/// `router` until SIGINT or SIGTERM.
pub async fn serve(listen: SocketAddr, router: Router) -> io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on http://{addr}")?;
        stdout.flush()?;
    }
    tracing::info!(%addr, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(hookshape_shutdown::signal())
        .await
}
