//! `hookshape-demo`: the bridges demo in one process. It builds the plugins, starts the
//! git-bridge and the Slack and Zapier stand-ins on the addresses `examples/hookshape.toml`
//! gives them, starts the dispatcher on that config, publishes every sample event to its tenant
//! through the HTTP API, waits until every delivery settles and prints what each receiver got.
//! Then it keeps everything running for you to play with until Ctrl-C (or exits, with `--exit`).
//!
//! Each run starts from scratch: everything lives under `demo-data/` in the workspace, which the
//! demo empties first (it refuses to touch a `demo-data/` it did not create).

mod api;
mod data;
mod report;
mod samples;
mod services;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use hookshape::clock::SystemClock;
use hookshape::config::{Config, Role, TenantScope};
use hookshape::plugin::testing::{build_plugin, workspace_dir};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

use crate::api::Api;
use crate::report::Published;
use crate::services::{Kind, Services};

/// How long all deliveries together may take to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs hookshape with the git-bridge, Slack and Zapier receivers and sends it the sample events.
#[derive(Debug, Parser)]
#[command(name = "hookshape-demo", version)]
struct Args {
    /// Exit once the report is printed instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// The config file, relative to the workspace root.
    #[arg(long, default_value = "examples/hookshape.toml")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    // Relative paths in the config (its storage path) and in the printed commands are the
    // workspace's, wherever `cargo run` was started.
    std::env::set_current_dir(workspace_dir())
        .with_context(|| format!("cannot enter {}", workspace_dir().display()))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    let data = data::DemoData::reset(&config.storage.path)?;
    build_plugins(&config)?;

    let services = Services::start(&config, data.repo()).await?;
    let token = admin_token(&config)?;
    let running = hookshape::server::start(config.clone(), Arc::new(SystemClock))
        .await
        .context("starting hookshape")?;
    let base_url = format!("http://{}", running.addr);
    let api = Api::new(base_url.clone(), token.clone());

    let result = publish_and_report(&api, &config, &services).await;
    if result.is_ok() && !args.exit {
        print_playground(&base_url, &token, &services);
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        println!("\nstopping");
    }
    running.shutdown().await;
    services.shutdown().await;
    result
}

/// Builds every plugin the config declares and checks the config points at what was built.
fn build_plugins(config: &Config) -> anyhow::Result<()> {
    for (name, plugin) in &config.plugins {
        println!("building plugin {name} for wasm32-wasip2 ...");
        let built = build_plugin(name.as_str());
        if !same_file(&built, &plugin.path) {
            bail!(
                "plugins.{name}.path is {}, but the demo builds it at {}",
                plugin.path.display(),
                built.display()
            );
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// A token that may read every tenant.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    config
        .auth
        .tokens
        .iter()
        .find(|t| t.role == Role::Admin && t.tenants.contains(&TenantScope::Any))
        .map(|t| t.token.clone())
        .context("the demo needs an admin token for all tenants (tenants = [\"*\"]) in the config")
}

async fn publish_and_report(api: &Api, config: &Config, services: &Services) -> anyhow::Result<()> {
    let tenants: Vec<_> = config
        .subscriptions
        .iter()
        .map(|s| s.tenant.clone())
        .collect();
    let dir = samples::samples_dir();
    let (samples, unclaimed) = samples::load(&dir, &tenants)?;
    report::heading(&format!(
        "Publishing {} samples from {}",
        samples.len(),
        dir.display()
    ));
    for name in unclaimed {
        println!("  {name}: no tenant in the config; not sent");
    }
    let mut receipts = Vec::new();
    for sample in &samples {
        let receipt = api.publish(sample.tenant.as_str(), &sample.body).await?;
        println!(
            "  {:<40} -> {:<15} {} ({} deliveries)",
            sample.name,
            sample.tenant.as_str(),
            receipt["id"].as_str().unwrap_or("-"),
            receipt["deliveries"]
        );
        receipts.push((sample, receipt));
    }

    let mut published = Vec::new();
    for (sample, receipt) in receipts {
        let id = receipt["id"].as_str().context("the receipt has an id")?;
        let event = api
            .settled_event(sample.tenant.as_str(), id, SETTLE_TIMEOUT)
            .await?;
        published.push(Published {
            sample: sample.name.clone(),
            tenant: sample.tenant.to_string(),
            duplicate: receipt["duplicate"] == Value::Bool(true),
            event,
        });
    }
    report::deliveries(&published);
    if let Some(repo) = &services.repo {
        report::git(repo)?;
    }
    if let Some(slack) = &services.slack {
        report::slack(&slack.received());
    }
    if let Some(zapier) = &services.zapier {
        report::zapier(&zapier.received());
    }
    report::skipped(api, &published).await
}

/// Where things run, and three commands to try.
fn print_playground(base_url: &str, token: &str, services: &Services) {
    report::heading("Running until Ctrl-C");
    println!("  {:<16} {base_url}  (admin token: {token})", "hookshape");
    for (kind, addr) in &services.addrs {
        println!("  {:<16} http://{addr}", kind.name());
    }
    let auth = format!("-H 'Authorization: Bearer {token}'");
    println!("\nTry:");
    println!("  # a slow day: the floor alert posts to Slack, the target alert skips");
    println!(
        "  curl -s {auth} -H 'content-type: application/json' \\\n    -d '{{\"type\": \"report_run_completed\", \"payload\": {{\"report\": {{\"name\": \"Daily revenue\"}}, \"rows\": [{{\"revenue\": 42000}}]}}}}' \\\n    {base_url}/v1/tenants/analyst-studio/events"
    );
    if let Some(slack) = services.addr(Kind::Slack) {
        println!("  # what the Slack receiver got so far");
        println!("  curl -s http://{slack}/received");
    }
    println!("  # the attempts of the target alert, newest first, with the skip reasons");
    println!(
        "  curl -s {auth} {base_url}/v1/tenants/analyst-studio/subscriptions/revenue-above-target/attempts"
    );
}
