//! Assembling and running the dispatcher: open the store, load plugins,
//! reconcile the config's subscriptions, then serve the API and run the
//! dispatcher until asked to stop.
//!
//! Shutdown order: stop taking requests, let in-flight deliveries finish
//! (up to the attempt timeout; the rest stay queued for the next start),
//! then flush sled. How connections are served is in [`connections`].

mod connections;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::auth::Authenticator;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::delivery::Dispatcher;
use crate::http_client::{ClientOptions, HttpClient};
use crate::metrics::Metrics;
use crate::plugin::PluginRuntime;
use crate::registry::{PluginRegistry, read_uploads};
use crate::services::{Services, Settings};
use crate::store::{Backend, SharedStore};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `[auth] open = true` and the address is not loopback.
    #[error(
        "[auth] open = true would open the API to anyone who reaches {0}: open access is allowed on a loopback address only; add [[auth.tokens]] instead"
    )]
    OpenAccessNotLoopback(SocketAddr),
    /// The data directory or the first-start admin token could not be set up.
    #[error("cannot set up the data directory: {0}")]
    DataDir(#[from] crate::admin_token::AdminTokenError),
    /// The store (the data directory, or the database) could not be opened.
    #[error("cannot open the store in {path}: {source}")]
    Store {
        /// The data directory, or `storage.url`.
        path: String,
        /// Why it could not be opened.
        source: crate::store::StoreError,
    },
    /// The plugin engine or a configured plugin failed to load.
    #[error("cannot set up plugins: {0}")]
    Plugins(String),
    /// The outgoing HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// Applying the config's subscriptions failed.
    #[error("the config's subscriptions cannot be applied: {0}")]
    Reconcile(crate::app::AppError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// A file the config names (the extra CA file) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why reading failed.
        source: std::io::Error,
    },
}

/// A started server; dropping it does not stop it, [`Running::shutdown`] does.
pub struct Running {
    /// The address the API listens on (the bound port when the config asked for 0).
    pub addr: SocketAddr,
    /// The use cases, for callers in the same process.
    pub app: App,
    /// The first-start admin token, on the start that made it only: the
    /// caller shows it once (`hookshape serve` prints it on stdout).
    pub created_admin_token: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: JoinHandle<()>,
    store: SharedStore,
}

impl Running {
    /// Stops taking requests, drains deliveries, flushes storage.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        self.wait().await;
    }

    /// Runs until a shutdown is requested elsewhere (see [`Running::stopper`]).
    pub async fn wait(self) {
        if let Err(e) = self.tasks.await {
            tracing::error!(error = %e, "server task failed");
        }
        if let Err(e) = self.store.durable().await {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    /// A handle that requests shutdown (for signal handlers).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// The compile cache inside a data directory (`[storage] path`), shared by
/// `serve`, `config check` and `plugin run`.
pub fn plugin_cache_dir(data: &std::path::Path) -> std::path::PathBuf {
    data.join("plugin-cache")
}

/// Starts the plugin engine and loads the config's plugins, then the
/// uploaded ones. Compiling takes up to a second per plugin, so it runs on a
/// blocking thread rather than stalling the reactor.
async fn load_plugins(
    config: &Config,
    store: SharedStore,
) -> Result<Arc<PluginRegistry>, ServerError> {
    let cache_dir = plugin_cache_dir(&config.storage.path);
    let declared = config.plugins.clone();
    let uploads = read_uploads(&*store)
        .await
        .map_err(|e| ServerError::Plugins(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let runtime = PluginRuntime::new(Some(&cache_dir))
            .map_err(|e| ServerError::Plugins(e.to_string()))?;
        let plugins = PluginRegistry::new(runtime, store);
        let problems: Vec<String> = plugins
            .load_config(&declared)
            .iter()
            .map(|e| e.to_string())
            .collect();
        // An uploaded plugin that no longer loads (e.g. after an engine
        // upgrade broke it) must not keep the server down: it is logged,
        // and its subscriptions record transform failures until replaced.
        for e in plugins.load_stored(uploads) {
            tracing::error!(error = %e, "an uploaded plugin failed to load");
        }
        if problems.is_empty() {
            Ok(Arc::new(plugins))
        } else {
            Err(ServerError::Plugins(problems.join("; ")))
        }
    })
    .await
    .map_err(|e| ServerError::Plugins(format!("loading plugins panicked: {e}")))?
}

/// Who may call the API: the configured tokens; or everyone with
/// `[auth] open = true` (loopback only, checked again here because `--listen`
/// overrides the file); or, with neither, the first-start admin token, which
/// is returned when this start made it.
fn authenticator(config: &Config) -> Result<(Authenticator, Option<String>), ServerError> {
    let listen = config.server.listen;
    if config.auth.open {
        if !listen.ip().is_loopback() {
            return Err(ServerError::OpenAccessNotLoopback(listen));
        }
        tracing::warn!(%listen, "[auth] open = true: open access on a loopback address");
        return Ok((Authenticator::open(), None));
    }
    let auth = Authenticator::new(&config.auth.tokens);
    if !config.auth.tokens.is_empty() {
        return Ok((auth, None));
    }
    let token = crate::admin_token::load_or_create(&config.storage.path)?;
    Ok((auth.with_admin_digest(token.digest), token.created))
}

/// Builds everything from the config and starts serving.
pub async fn start(config: Config, clock: SharedClock) -> Result<Running, ServerError> {
    let listen = config.server.listen;
    let data = &config.storage.path;
    crate::admin_token::create_data_dir(data)?;
    let (auth, created_admin_token) = authenticator(&config)?;
    let options = crate::store::Options {
        sync: config.storage.sync,
        max_size: config.storage.max_size,
        min_free: config.storage.min_free,
    };
    let store = crate::store::open(&config.storage.backend, data, &options)
        .await
        .map_err(|source| ServerError::Store {
            path: match &config.storage.backend {
                Backend::Sled => data.display().to_string(),
                Backend::Postgres(_) => "storage.url".to_owned(),
            },
            source,
        })?;
    let plugins = load_plugins(&config, store.clone()).await?;
    let extra_roots_pem = match &config.delivery.extra_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| ServerError::Read {
            path: path.display().to_string(),
            source,
        })?),
        None => None,
    };
    let client = HttpClient::new(ClientOptions {
        timeout: config.delivery.timeout,
        allow_private_targets: config.delivery.allow_private_targets,
        extra_roots_pem,
        // hookshape/VERSION as the user agent.
        ..ClientOptions::default()
    })
    .map_err(|e| ServerError::Client(e.to_string()))?;
    let ctx = Arc::new(Services {
        store: store.clone(),
        clock,
        client,
        plugins,
        metrics: Arc::new(Metrics::new()),
        settings: Settings {
            retry_schedule: config.delivery.retry_schedule.clone(),
            disable_after_failures: config.delivery.disable_after_failures,
            max_in_flight: config.delivery.max_in_flight,
            max_in_flight_per_subscription: config.delivery.max_in_flight_per_subscription,
        },
    });
    let dispatcher = Dispatcher::new(ctx.clone());
    store.wake_on_remote_work(dispatcher.waker());
    let grace = config.delivery.timeout;
    let declared = config.subscriptions.clone();
    let app = App::new(config, ctx, dispatcher.waker());
    let report = app
        .reconcile(&declared)
        .await
        .map_err(ServerError::Reconcile)?;
    tracing::info!(
        added = report.added,
        changed = report.changed,
        removed = report.removed,
        "config subscriptions reconciled"
    );

    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: listen,
            source,
        })?;
    let (shutdown, rx) = watch::channel(false);
    let router = crate::api::router(app.clone(), auth);
    let (sweeper, retention) = (app.clone(), app.config().retention.clone());
    let limits = app.config().server.clone();
    let http_rx = rx.clone();
    let tasks = tokio::spawn(async move {
        let http = connections::serve(listener, router, &limits, http_rx);
        let dispatcher = dispatcher.run(rx.clone(), grace);
        let retention = crate::app::retention::run(sweeper, retention, rx);
        tokio::join!(http, dispatcher, retention);
    });
    tracing::info!(%addr, "hookshape is listening");
    Ok(Running {
        addr,
        app,
        created_admin_token,
        shutdown,
        tasks,
        store,
    })
}
