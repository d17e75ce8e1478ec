//! The receivers the demo runs in-process: the git-bridge, the Slack stand-in and the Zapier
//! stand-in, each on the address its subscriptions' URLs name in the config, so the config file
//! stays the one place where ports are chosen.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use git_bridge::{Bridge, BridgeConfig};
use hookshape::config::{Config, SubscriptionConfig};
use hookshape_signing::{DEFAULT_TOLERANCE, Secret};
use receivers::gate::GateConfig;
use receivers::slack::SlackReceiver;
use receivers::zapier::ZapierReceiver;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

/// Which receiver a subscription URL points at, told by its path: Slack incoming webhooks are
/// `/services/...`, Zapier catch hooks `/hooks/catch/...`, and the git-bridge takes `POST /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitBridge,
    Slack,
    Zapier,
}

impl Kind {
    fn of(url: &Url) -> Option<Kind> {
        match url.path() {
            "/" => Some(Kind::GitBridge),
            p if p.starts_with("/services/") => Some(Kind::Slack),
            p if p.starts_with("/hooks/catch/") => Some(Kind::Zapier),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::GitBridge => "git-bridge",
            Kind::Slack => "Slack receiver",
            Kind::Zapier => "Zapier receiver",
        }
    }
}

/// One address to serve, and what serves it.
#[derive(Debug)]
struct Endpoint {
    kind: Kind,
    /// The signing secret, for the git-bridge (which requires signatures).
    secret: Option<String>,
}

/// The running receivers.
pub struct Services {
    /// The git-bridge's work tree, when the config has a git-bridge subscription.
    pub repo: Option<PathBuf>,
    pub slack: Option<Arc<SlackReceiver>>,
    pub zapier: Option<Arc<ZapierReceiver>>,
    /// Where each receiver listens, by address.
    pub addrs: Vec<(Kind, SocketAddr)>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl Services {
    /// Starts one receiver per distinct address among the config's subscription URLs; the
    /// git-bridge keeps its repository in `repo`.
    pub async fn start(config: &Config, repo: PathBuf) -> anyhow::Result<Services> {
        let (stop, stopped) = watch::channel(false);
        let mut services = Services {
            repo: None,
            slack: None,
            zapier: None,
            addrs: Vec::new(),
            stop,
            tasks: Vec::new(),
        };
        for (addr, endpoint) in plan(&config.subscriptions)? {
            let router = match endpoint.kind {
                Kind::GitBridge => {
                    let secret = endpoint
                        .secret
                        .as_deref()
                        .map(Secret::parse)
                        .transpose()?
                        .context("the git-bridge subscription needs a `secret` in the config, so the bridge can check its signatures")?;
                    let bridge = Bridge::open(BridgeConfig {
                        repo: repo.clone(),
                        secret,
                        tolerance: DEFAULT_TOLERANCE,
                    })?;
                    services.repo = Some(repo.clone());
                    Arc::new(bridge).router()
                }
                Kind::Slack => {
                    let slack = SlackReceiver::new(GateConfig::default());
                    services.slack = Some(Arc::clone(&slack));
                    slack.router()
                }
                Kind::Zapier => {
                    let zapier = ZapierReceiver::new(GateConfig::default());
                    services.zapier = Some(Arc::clone(&zapier));
                    zapier.router()
                }
            };
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("the {} cannot listen on {addr}", endpoint.kind.name()))?;
            let mut stopped = stopped.clone();
            services.tasks.push(tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await
            }));
            services.addrs.push((endpoint.kind, addr));
        }
        Ok(services)
    }

    /// The address of the first receiver of this kind.
    pub fn addr(&self, kind: Kind) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find_map(|(k, addr)| (*k == kind).then_some(*addr))
    }

    /// Stops taking connections and waits (briefly) for the servers to finish.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => eprintln!("a demo receiver failed: {error}"),
                Ok(Err(error)) => eprintln!("a demo receiver task failed: {error}"),
                Err(_) => eprintln!("a demo receiver did not stop within 5s"),
            }
        }
    }
}

/// Which receiver serves which address, from the subscription URLs. Every URL must name a
/// literal address and a path that tells its receiver; one address serves one kind, and a
/// git-bridge takes one secret.
fn plan(subscriptions: &[SubscriptionConfig]) -> anyhow::Result<BTreeMap<SocketAddr, Endpoint>> {
    let mut endpoints: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    for sub in subscriptions {
        let url = Url::parse(&sub.url).with_context(|| format!("subscription {}", sub.id))?;
        let kind = Kind::of(&url).with_context(|| {
            format!(
                "subscription {}: the demo has no receiver for {} (use / for the git-bridge, /services/... for Slack, /hooks/catch/... for Zapier)",
                sub.id, sub.url
            )
        })?;
        let addr = url
            .socket_addrs(|| None)
            .ok()
            .and_then(|addrs| addrs.first().copied())
            .with_context(|| format!("subscription {}: {} names no address", sub.id, sub.url))?;
        let endpoint = endpoints
            .entry(addr)
            .or_insert(Endpoint { kind, secret: None });
        if endpoint.kind != kind {
            bail!(
                "subscription {}: {addr} already serves the {}, not the {}",
                sub.id,
                endpoint.kind.name(),
                kind.name()
            );
        }
        if kind == Kind::GitBridge {
            match (&endpoint.secret, &sub.secret) {
                (Some(first), Some(secret)) if first != secret => bail!(
                    "subscription {}: every subscription to the git-bridge at {addr} needs the same secret",
                    sub.id
                ),
                (None, secret) => endpoint.secret.clone_from(secret),
                _ => {}
            }
        }
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_config() -> Config {
        let path = hookshape::plugin::testing::workspace_dir().join("examples/hookshape.toml");
        Config::load(&path).expect("examples/hookshape.toml is valid")
    }

    #[test]
    fn the_demo_config_names_three_receivers() {
        let plan = plan(&demo_config().subscriptions).unwrap();
        let kinds: Vec<(u16, Kind)> = plan.iter().map(|(a, e)| (a.port(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                (9101, Kind::GitBridge),
                (9102, Kind::Slack),
                (9103, Kind::Zapier)
            ]
        );
        let bridge = &plan.values().next().unwrap().secret;
        assert!(bridge.as_deref().is_some_and(|s| s.starts_with("whsec_")));
    }

    #[test]
    fn unknown_paths_and_clashing_kinds_are_refused() {
        let mut subs = demo_config().subscriptions;
        subs[0].url = "http://127.0.0.1:9101/elsewhere".to_owned();
        let error = plan(&subs).unwrap_err().to_string();
        assert!(error.contains("has no receiver"), "{error}");

        let mut subs = demo_config().subscriptions;
        subs[0].url = "http://127.0.0.1:9102/".to_owned();
        let error = plan(&subs).unwrap_err().to_string();
        assert!(error.contains("already serves the"), "{error}");
    }
}
