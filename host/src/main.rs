//! The `hookshape` command: `serve`, `config check`, `plugin run` and
//! `completions`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, LazyLock};

use anyhow::{Context as _, Result};
use clap::{CommandFactory, Parser, Subcommand};

use hookshape::app::dry_run;
use hookshape::clock::{Clock, SystemClock};
use hookshape::config::{Config, ConfigErrors, LogFormat, format_duration, format_size};
use hookshape::delivery::render::{self, NotSent, Transformer};
use hookshape::ids::Tenant;
use hookshape::plugin::{PluginLimits, PluginRuntime};
use hookshape::scaffold::{self, Lang};
use hookshape::server::plugin_cache_dir;
use hookshape::store::Backend;

/// glibc's malloc was a fifth of the server's CPU under load (arena locks
/// and consolidation across the flush thread and the runtime's workers);
/// mimalloc gave +50% ingest and end-to-end throughput in the dispatch
/// benchmark. Built with `no_thp` so its arenas do not ask for transparent
/// huge pages, which added 80 MiB of resident memory for nothing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mi_option_e` has no Rust
/// constant; libmimalloc-sys documents passing the number).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the OS at once instead of after mimalloc's
/// default second: under steady load the allocator always had a second's
/// worth of freed pages waiting, 10-25 MiB resident for nothing (peak RSS
/// in the dispatch benchmark 111 -> 92 MiB, throughput within noise).
fn return_freed_memory_promptly() {
    // SAFETY: sets a plain integer option; called first thing in `main`,
    // before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

#[derive(Parser)]
#[command(
    name = "hookshape",
    version,
    about = "A webhook dispatcher with per-subscription WebAssembly transforms"
)]
struct Cli {
    /// Log format on stderr; `serve` defaults to [server] log_format, the others to human.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dispatcher (embedded defaults without --config).
    Serve {
        /// The config file (TOML); the embedded defaults without it.
        #[arg(long, env = "HOOKSHAPE_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides [server] listen.
        #[arg(long, env = "HOOKSHAPE_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Overrides [storage] path.
        #[arg(long, env = "HOOKSHAPE_DATA")]
        data: Option<PathBuf>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Storage tools.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Print a completion script for SHELL on stdout.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file, including that its plugins load.
    Check {
        /// The config file (TOML).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Create or migrate the PostgreSQL schema of [storage] and exit (what
    /// `serve` does at start; safe while nodes run or start).
    Migrate {
        /// The config file (TOML) naming the database.
        #[arg(long, env = "HOOKSHAPE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a plugin project (source, build file, a test, a README) that builds as written.
    New {
        /// The plugin's name: lowercase letters, digits and '-'.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// Where to create the project's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The hookshape plugin-sdk directory the project depends on.
        #[arg(long, default_value = DEFAULT_SDK.as_os_str())]
        sdk: PathBuf,
    },
    /// Dry run: transform one event file and print the request or the skip reason.
    Run {
        /// The plugin component (.wasm).
        #[arg(long)]
        plugin: PathBuf,
        /// The event: a source's body (as in samples/) or a stored event as the API shows it.
        #[arg(long)]
        event: PathBuf,
        /// Plugin config: inline JSON, or a JSON file.
        #[arg(long)]
        config: Option<String>,
        /// The subscription URL the request would go to.
        #[arg(long, default_value = dry_run::DEFAULT_URL)]
        url: String,
        /// The event's tenant [default: the file's, else "dry-run"].
        #[arg(long)]
        tenant: Option<Tenant>,
        /// Per-call timeout, as in [plugins.NAME] (e.g. "250ms").
        #[arg(
            long,
            default_value = DEFAULT_TIMEOUT.as_str(),
            value_parser = hookshape::config::parse_duration
        )]
        timeout: std::time::Duration,
        /// Linear memory cap, as in [plugins.NAME] (e.g. "64MiB").
        #[arg(
            long,
            default_value = DEFAULT_MEMORY.as_str(),
            value_parser = hookshape::config::parse_size
        )]
        memory: u64,
        /// The data directory whose compile cache to use, as `serve --data` ([storage] path).
        #[arg(long, env = "HOOKSHAPE_DATA", default_value = DEFAULT_DATA.as_os_str())]
        data: PathBuf,
    },
}

/// `plugin run`'s defaults, as the config file would spell them.
static DEFAULT_TIMEOUT: LazyLock<String> =
    LazyLock::new(|| format_duration(PluginLimits::DEFAULT.timeout));
static DEFAULT_MEMORY: LazyLock<String> =
    LazyLock::new(|| format_size(PluginLimits::DEFAULT.memory_bytes));
/// The SDK of the source tree this binary was built from.
static DEFAULT_SDK: LazyLock<PathBuf> = LazyLock::new(scaffold::default_sdk_dir);
/// `serve`'s data directory without a config: `plugin run` shares its compile cache.
static DEFAULT_DATA: LazyLock<PathBuf> = LazyLock::new(|| Config::default().storage.path);

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        // Each line carries its span and the spans around it, with their
        // ids (event, delivery, subscription), so a flow can be followed.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                config,
                listen,
                data,
            } => serve(cli.log_format, config, listen, data).await,
            Command::Config {
                command: ConfigCommand::Check { file },
            } => {
                init_logs(cli.log_format.unwrap_or(LogFormat::Human));
                config_check(&file)
            }
            Command::Plugin {
                command:
                    PluginCommand::Run {
                        plugin,
                        event,
                        config,
                        url,
                        tenant,
                        timeout,
                        memory,
                        data,
                    },
            } => {
                init_logs(cli.log_format.unwrap_or(LogFormat::Human));
                plugin_run(
                    &plugin,
                    &event,
                    config.as_deref(),
                    &url,
                    tenant,
                    PluginLimits {
                        timeout,
                        memory_bytes: memory,
                    },
                    &data,
                )
                .await
            }
            Command::Storage {
                command: StorageCommand::Migrate { config },
            } => {
                init_logs(cli.log_format.unwrap_or(LogFormat::Human));
                storage_migrate(&config).await
            }
            Command::Plugin {
                command:
                    PluginCommand::New {
                        name,
                        lang,
                        dir,
                        sdk,
                    },
            } => {
                let project = scaffold::create(&dir, &name, lang, &sdk)?;
                println!("created {}: see its README.md", project.display());
                Ok(ExitCode::SUCCESS)
            }
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "hookshape",
                    &mut std::io::stdout(),
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookshape: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &Path) -> Result<Config> {
    Config::load(path)
        .map_err(|errors: ConfigErrors| anyhow::anyhow!("invalid configuration:\n{errors}"))
}

async fn serve(
    log_format: Option<LogFormat>,
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    data: Option<PathBuf>,
) -> Result<ExitCode> {
    let mut config = match &config {
        Some(path) => load_config(path)?,
        None => Config::default(),
    };
    init_logs(log_format.unwrap_or(config.server.log_format));
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    if let Some(data) = data {
        config.storage.path = data;
    }
    let running = hookshape::server::start(config, Arc::new(SystemClock)).await?;
    // The first line on stdout, for scripts and tests that listen on port 0.
    println!("hookshape listening on http://{}", running.addr);
    if let Some(token) = &running.created_admin_token {
        // Shown once: only its digest is kept.
        println!("admin token: {token}");
    }
    let stop = running.stopper();
    tokio::spawn(async move {
        hookshape_shutdown::signal().await;
        tracing::info!("shutting down");
        stop.send_replace(true);
    });
    running.wait().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn storage_migrate(file: &Path) -> Result<ExitCode> {
    let config = load_config(file)?;
    let Backend::Postgres(settings) = &config.storage.backend else {
        println!(
            "{}: the sled backend has no schema to migrate",
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let applied = hookshape::store::postgres::migrate(&settings.url)
        .await
        .context("migrating the database")?;
    match applied.as_slice() {
        [] => println!("the database schema is up to date"),
        versions => println!("applied migration(s) {versions:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn config_check(file: &Path) -> Result<ExitCode> {
    // The server's compile cache, when the file names a data directory that
    // parses; a broken file is reported by the check below.
    let cache = Config::parse(
        &std::fs::read_to_string(file).unwrap_or_default(),
        file,
        &|name| std::env::var(name).ok(),
    )
    .ok()
    .map(|config| plugin_cache_dir(&config.storage.path));
    let runtime = PluginRuntime::new(cache.as_deref()).context("setting up the plugin runtime")?;
    let checked = Config::check(file, &mut |name, plugin| {
        let path = plugin.path.display();
        let wasm =
            std::fs::read(&plugin.path).map_err(|e| format!("{path}: cannot read it: {e}"))?;
        let loaded = runtime.load(&wasm).map_err(|e| format!("{path}: {e}"))?;
        // Starting it once catches a memory cap below its starting image now
        // rather than at the first delivery.
        let limits = PluginLimits {
            timeout: plugin.timeout,
            memory_bytes: plugin.memory,
        };
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(runtime.instantiate_once(&loaded, limits))
        })
        .map_err(|e| format!("{path}: does not start under its limits: {e}"))?;
        println!(
            "plugin {name}: ok ({} bytes, sha256 {})",
            loaded.size, loaded.sha256
        );
        Ok(())
    });
    let config = match checked {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} problem(s)", file.display(), errors.0.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "{}: ok ({} subscription(s), {} plugin(s), {} token(s))",
        file.display(),
        config.subscriptions.len(),
        config.plugins.len(),
        config.auth.tokens.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_plugin_config(arg: Option<&str>) -> Result<serde_json::Value> {
    let Some(arg) = arg else {
        return Ok(serde_json::Value::Null);
    };
    if let Ok(v) = serde_json::from_str(arg) {
        return Ok(v);
    }
    let text = std::fs::read_to_string(arg)
        .with_context(|| format!("--config is neither JSON nor a readable file: {arg}"))?;
    serde_json::from_str(&text).with_context(|| format!("{arg} is not valid JSON"))
}

async fn plugin_run(
    plugin: &Path,
    event: &Path,
    config: Option<&str>,
    url: &str,
    tenant: Option<Tenant>,
    limits: PluginLimits,
    data: &Path,
) -> Result<ExitCode> {
    let wasm =
        std::fs::read(plugin).with_context(|| format!("cannot read {}", plugin.display()))?;
    let text = std::fs::read_to_string(event)
        .with_context(|| format!("cannot read {}", event.display()))?;
    let now = SystemClock.now();
    let event =
        dry_run::parse_event(&text, tenant, now).with_context(|| event.display().to_string())?;
    let sub = dry_run::offline_subscription(&event, read_plugin_config(config)?, url, now)?;
    let runtime = PluginRuntime::new(Some(&plugin_cache_dir(data)))
        .context("setting up the plugin runtime")?;
    let loaded = runtime
        .load(&wasm)
        .with_context(|| plugin.display().to_string())?;
    let transformer = Transformer {
        runtime: &runtime,
        plugin: &loaded,
        limits,
    };
    let rendered = render::render(Some(transformer), &event, &sub, now).await;
    let code = match &rendered.result {
        Ok(req) => {
            println!("deliver: POST {}", req.url);
            for (name, value) in &req.headers {
                println!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
            }
            println!();
            println!("{}", String::from_utf8_lossy(&req.body));
            ExitCode::SUCCESS
        }
        Err(NotSent::Skipped(reason)) => {
            println!("skip: {reason}");
            ExitCode::SUCCESS
        }
        Err(NotSent::TransformFailed(why) | NotSent::Invalid(why)) => {
            println!("transform_failed: {why}");
            ExitCode::FAILURE
        }
    };
    if !rendered.logs.is_empty() {
        println!();
        println!("plugin logs:");
        for line in &rendered.logs {
            println!("[{}] {}", line.level, line.message);
        }
    }
    println!();
    println!(
        "transform took {:?}",
        rendered.transform_time.unwrap_or_default()
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument and subcommand, at any depth, that has no help line.
    fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if arg.get_help().is_none() {
                found.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                found.push(path.clone());
            }
            undocumented(sub, &path, found);
        }
    }

    #[test]
    fn every_argument_and_subcommand_has_a_help_line() {
        let command = Cli::command();
        command.clone().debug_assert();
        let mut found = Vec::new();
        undocumented(&command, "hookshape", &mut found);
        assert!(found.is_empty(), "without help: {found:?}");
    }

    #[test]
    fn plugin_run_defaults_to_the_plugin_defaults() {
        let cli = Cli::try_parse_from([
            "hookshape",
            "plugin",
            "run",
            "--plugin",
            "p",
            "--event",
            "e",
        ])
        .unwrap();
        let Command::Plugin {
            command: PluginCommand::Run {
                timeout, memory, ..
            },
        } = cli.command
        else {
            panic!("not plugin run");
        };
        assert_eq!(timeout, PluginLimits::DEFAULT.timeout);
        assert_eq!(memory, PluginLimits::DEFAULT.memory_bytes);
    }
}
