//! Named plugins: the ones declared in `[plugins.NAME]` and the ones uploaded
//! with `PUT /v1/plugins/NAME`.
//!
//! Each name resolves to one compiled version at a time. Uploads are kept in
//! sled by sha256 and reloaded at start; replacing a plugin swaps the version
//! that new attempts resolve, while attempts already running finish on the
//! version they took. Config-declared names belong to the config file and
//! cannot be replaced through the API. Every name carries its limits: the
//! config's for declared plugins, the uploader's for uploads, which are
//! stored with the record and reapplied at start. An uploader is trusted less
//! than the config file's author: its limits have upper bounds
//! ([`MAX_UPLOAD_TIMEOUT`], [`MAX_UPLOAD_MEMORY`]), and uploads compile one at
//! a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::clock::Timestamp;
use crate::config::{PluginConfig, non_zero, parse_duration, parse_size, plugin_memory};
use crate::ids::PluginName;
use crate::plugin::{LoadedPlugin, PluginError, PluginLimits, PluginRuntime};
use crate::store::{PluginRecord, PluginSource, SharedStore, Store, StoreError};

/// The longest `timeout` an upload may ask for. A transform takes
/// milliseconds; a call that runs longer holds a pool slot and a share of
/// the CPU, and an admin credential should not buy more than this.
pub const MAX_UPLOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The most `memory` an upload may ask for. Transforms need a few MiB; each
/// call in flight may use this much, so it bounds what one upload can make
/// the host commit per delivery.
pub const MAX_UPLOAD_MEMORY: u64 = 1 << 30;

/// Uploads compiled at the same time. Compiling takes a core and memory in
/// proportion to the component for up to seconds; one at a time keeps N
/// parallel uploads from taking N cores and N times the memory, at the cost
/// of queueing uploads, which are rare.
const UPLOAD_COMPILES: usize = 1;

/// A plugin name bound to a compiled version and its limits.
pub struct NamedPlugin {
    /// The name subscriptions refer to.
    pub name: PluginName,
    /// The compiled component.
    pub loaded: Arc<LoadedPlugin>,
    /// Its time and memory limits.
    pub limits: PluginLimits,
    /// Whether the config file or the API put it there.
    pub source: PluginSource,
}

/// A named plugin: which version and limits its name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: PluginName,
    /// The component's SHA-256, lowercase hex.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: usize,
    /// Whether the config file or the API put it there.
    pub source: PluginSource,
    /// How long one call may run, in milliseconds.
    pub timeout_ms: u64,
    /// How much memory one call may use, in bytes.
    pub memory_bytes: u64,
}

/// An uploader's limit that is not a valid duration or size, or is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{parameter}`: {reason}")]
pub struct InvalidLimit {
    /// `timeout` or `memory`, as the uploader spelled the parameter.
    pub parameter: &'static str,
    /// Why the value was rejected.
    pub reason: String,
}

/// The limits an upload asks for, written as in the config file (`"250ms"`,
/// `"64MiB"`); each one left out is the default. The config file's bounds
/// apply, and the upload bounds [`MAX_UPLOAD_TIMEOUT`] and [`MAX_UPLOAD_MEMORY`].
pub fn parse_limits(
    timeout: Option<&str>,
    memory: Option<&str>,
) -> Result<PluginLimits, InvalidLimit> {
    let defaults = PluginLimits::default();
    let timeout = timeout
        .map(|raw| {
            parse_duration(raw)
                .and_then(non_zero)
                .and_then(at_most_upload_timeout)
                .map_err(invalid("timeout"))
        })
        .transpose()?
        .unwrap_or(defaults.timeout);
    let memory_bytes = memory
        .map(|raw| {
            parse_size(raw)
                .and_then(plugin_memory)
                .and_then(at_most_upload_memory)
                .map_err(invalid("memory"))
        })
        .transpose()?
        .unwrap_or(defaults.memory_bytes);
    Ok(PluginLimits {
        timeout,
        memory_bytes,
    })
}

fn at_most_upload_timeout(timeout: Duration) -> Result<Duration, String> {
    if timeout > MAX_UPLOAD_TIMEOUT {
        return Err(format!(
            "an uploaded plugin's timeout is at most {}, found {}",
            humantime::format_duration(MAX_UPLOAD_TIMEOUT),
            humantime::format_duration(timeout)
        ));
    }
    Ok(timeout)
}

fn at_most_upload_memory(bytes: u64) -> Result<u64, String> {
    if bytes > MAX_UPLOAD_MEMORY {
        return Err(format!(
            "an uploaded plugin's memory is at most {}GiB, found {bytes} bytes",
            MAX_UPLOAD_MEMORY >> 30
        ));
    }
    Ok(bytes)
}

fn invalid(parameter: &'static str) -> impl Fn(String) -> InvalidLimit {
    move |reason| InvalidLimit { parameter, reason }
}

/// Whole milliseconds: durations come from [`parse_duration`], whose
/// smallest unit is the millisecond and whose total fits a `u64` of them.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The limits a stored upload runs with.
fn stored_limits(record: &PluginRecord) -> PluginLimits {
    PluginLimits {
        timeout: Duration::from_millis(record.timeout_ms),
        memory_bytes: record.memory_bytes,
    }
}

/// An uploaded plugin as stored: its record and component bytes.
pub struct StoredUpload {
    /// The plugin's stored record.
    pub record: PluginRecord,
    /// The component bytes.
    pub wasm: Vec<u8>,
}

/// Reads every upload the store keeps (compiled by [`PluginRegistry::load_stored`]).
pub async fn read_uploads(store: &dyn Store) -> Result<Vec<StoredUpload>, StoreError> {
    let mut uploads = Vec::new();
    for record in store.list_plugins().await? {
        if let Some(wasm) = store.plugin_blob(&record.sha256).await? {
            uploads.push(StoredUpload { record, wasm });
        }
    }
    Ok(uploads)
}

/// Why a plugin could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A config-declared plugin's file could not be read.
    #[error("plugin {name}: cannot read {path}: {source}")]
    Read {
        /// The plugin's name.
        name: PluginName,
        /// The file it is declared at.
        path: String,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// An uploaded or stored component was not accepted.
    #[error("plugin {name}: {source}")]
    Invalid {
        /// The plugin's name.
        name: PluginName,
        /// Why it was not accepted.
        source: PluginError,
    },
    /// A config-declared plugin's file was not accepted.
    #[error("plugin {name}: {path}: {source}")]
    InvalidFile {
        /// The plugin's name.
        name: PluginName,
        /// The file it is declared at.
        path: String,
        /// Why it was not accepted.
        source: PluginError,
    },
    /// An upload tried to replace a config-declared plugin.
    #[error("plugin {0} is declared in the config file; change it there")]
    ConfigManaged(PluginName),
    /// The compile task panicked or was cancelled.
    #[error("plugin {name}: compiling stopped: {reason}")]
    Aborted {
        /// The plugin's name.
        name: PluginName,
        /// What stopped it.
        reason: String,
    },
    /// Storing or reading the upload failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The plugins by name: loads the config's and the stored uploads, accepts new uploads.
pub struct PluginRegistry {
    runtime: Arc<PluginRuntime>,
    store: SharedStore,
    by_name: RwLock<HashMap<PluginName, Arc<NamedPlugin>>>,
    /// [`UPLOAD_COMPILES`] permits.
    compiles: Arc<Semaphore>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl PluginRegistry {
    /// An empty registry compiling with `runtime` and storing uploads in `store`.
    pub fn new(runtime: PluginRuntime, store: SharedStore) -> Self {
        PluginRegistry {
            runtime: Arc::new(runtime),
            store,
            by_name: Default::default(),
            compiles: Arc::new(Semaphore::new(UPLOAD_COMPILES)),
        }
    }

    /// The engine plugins are compiled and run with.
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Loads every config-declared plugin; returns every one that failed.
    pub fn load_config(&self, plugins: &BTreeMap<PluginName, PluginConfig>) -> Vec<RegistryError> {
        let mut errors = Vec::new();
        for (name, cfg) in plugins {
            match self.load_file(name, cfg) {
                Ok(named) => {
                    self.by_name.write().insert(name.clone(), Arc::new(named));
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    fn load_file(
        &self,
        name: &PluginName,
        cfg: &PluginConfig,
    ) -> Result<NamedPlugin, RegistryError> {
        let wasm = std::fs::read(&cfg.path).map_err(|source| RegistryError::Read {
            name: name.clone(),
            path: cfg.path.display().to_string(),
            source,
        })?;
        let loaded = self
            .runtime
            .load(&wasm)
            .map_err(|source| RegistryError::InvalidFile {
                name: name.clone(),
                path: cfg.path.display().to_string(),
                source,
            })?;
        let limits = PluginLimits {
            timeout: cfg.timeout,
            memory_bytes: cfg.memory,
        };
        Ok(NamedPlugin {
            name: name.clone(),
            loaded,
            limits,
            source: PluginSource::Config,
        })
    }

    /// Compiles the stored uploads (names the config does not declare);
    /// returns every one that failed.
    pub fn load_stored(&self, uploads: Vec<StoredUpload>) -> Vec<RegistryError> {
        let mut errors = Vec::new();
        for StoredUpload { record, wasm } in uploads {
            if self
                .get(&record.name)
                .is_some_and(|p| p.source == PluginSource::Config)
            {
                continue;
            }
            match self.runtime.load(&wasm) {
                Ok(loaded) => {
                    let named = NamedPlugin {
                        name: record.name.clone(),
                        loaded,
                        limits: stored_limits(&record),
                        source: PluginSource::Api,
                    };
                    self.by_name
                        .write()
                        .insert(record.name.clone(), Arc::new(named));
                }
                Err(source) => errors.push(RegistryError::Invalid {
                    name: record.name,
                    source,
                }),
            }
        }
        errors
    }

    /// The plugin a name resolves to now.
    pub fn get(&self, name: &PluginName) -> Option<Arc<NamedPlugin>> {
        self.by_name.read().get(name).cloned()
    }

    /// [`PluginRegistry::get`], and when the name is unknown here, an upload
    /// the store has under it (made through another node sharing the
    /// store), compiled and kept.
    pub async fn get_or_fetch(&self, name: &PluginName) -> Option<Arc<NamedPlugin>> {
        if let Some(p) = self.get(name) {
            return Some(p);
        }
        let record = match self.store.list_plugins().await {
            Ok(records) => records.into_iter().find(|r| &r.name == name)?,
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "reading uploaded plugins failed");
                return None;
            }
        };
        let wasm = self.store.plugin_blob(&record.sha256).await.ok()??;
        let upload = StoredUpload { record, wasm };
        // Compiled on this thread: once per plugin and node, on first use.
        let errors = self.load_stored(vec![upload]);
        for e in errors {
            tracing::error!(error = %e, "an uploaded plugin failed to load");
        }
        self.get(name)
    }

    /// Validates, stores and activates an uploaded plugin with its limits;
    /// `true` when the name is new. Nothing is stored unless the component
    /// compiles and exports the transformer world. Compiling takes a while,
    /// so it runs on a blocking thread, off the reactor, one upload at a
    /// time ([`UPLOAD_COMPILES`]).
    pub async fn put(
        &self,
        name: &PluginName,
        wasm: bytes::Bytes,
        limits: PluginLimits,
        now: Timestamp,
    ) -> Result<(PluginInfo, bool), RegistryError> {
        let existing = self.get(name);
        if existing
            .as_ref()
            .is_some_and(|p| p.source == PluginSource::Config)
        {
            return Err(RegistryError::ConfigManaged(name.clone()));
        }
        // Never closed, so acquiring only waits. The compile owns the permit:
        // a client that hangs up does not free it before the compile ends.
        let permit = self.compiles.clone().acquire_owned().await.ok();
        let runtime = self.runtime.clone();
        let bytes = wasm.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.load(&bytes)
        })
        .await
        .map_err(|e| RegistryError::Aborted {
            name: name.clone(),
            reason: e.to_string(),
        })?
        .map_err(|source| RegistryError::Invalid {
            name: name.clone(),
            source,
        })?;
        let record = PluginRecord {
            name: name.clone(),
            sha256: sha256_hex(&wasm),
            size: wasm.len(),
            updated_at: now,
            timeout_ms: millis(limits.timeout),
            memory_bytes: limits.memory_bytes,
        };
        self.store.put_plugin(&record, &wasm).await?;
        let named = NamedPlugin {
            name: name.clone(),
            loaded,
            limits,
            source: PluginSource::Api,
        };
        let info = info(&named);
        self.by_name.write().insert(name.clone(), Arc::new(named));
        Ok((info, existing.is_none()))
    }

    /// Every plugin, sorted by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        let map = self.by_name.read();
        let mut out: Vec<PluginInfo> = map.values().map(|p| info(p)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn info(p: &NamedPlugin) -> PluginInfo {
    PluginInfo {
        name: p.name.clone(),
        sha256: p.loaded.sha256.clone(),
        size: p.loaded.size,
        source: p.source,
        timeout_ms: millis(p.limits.timeout),
        memory_bytes: p.limits.memory_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::build_plugin;

    fn name(s: &str) -> PluginName {
        s.parse().unwrap()
    }

    fn registry(store: SharedStore) -> PluginRegistry {
        PluginRegistry::new(PluginRuntime::new(None).unwrap(), store)
    }

    #[test]
    fn upload_limits_are_parsed_like_the_config_and_default_when_left_out() {
        assert_eq!(parse_limits(None, None), Ok(PluginLimits::default()));
        assert_eq!(
            parse_limits(Some("1s250ms"), Some("64MiB")),
            Ok(PluginLimits {
                timeout: Duration::from_millis(1250),
                memory_bytes: 64 << 20,
            })
        );
        assert_eq!(
            parse_limits(None, Some("65536")),
            Ok(PluginLimits {
                memory_bytes: crate::config::MIN_PLUGIN_MEMORY,
                ..PluginLimits::default()
            })
        );
    }

    #[test]
    fn upload_limits_out_of_bounds_name_their_parameter() {
        let message = |t, m| parse_limits(t, m).unwrap_err().to_string();
        assert_eq!(
            message(Some("0ms"), None),
            "invalid `timeout`: must be longer than zero"
        );
        assert!(
            message(Some("5"), None).starts_with("invalid `timeout`: \"5\" has no unit"),
            "{}",
            message(Some("5"), None)
        );
        assert_eq!(
            message(None, Some("12")),
            "invalid `memory`: must be at least 64KiB (one Wasm page), found 12 bytes"
        );
        assert!(
            message(None, Some("lots")).starts_with("invalid `memory`: \"lots\" is not a size")
        );
        assert_eq!(
            parse_limits(Some("1s"), Some("12")).unwrap_err().parameter,
            "memory"
        );
    }

    #[test]
    fn upload_limits_past_the_upload_bounds_are_refused_and_the_bounds_accepted() {
        assert_eq!(
            parse_limits(Some("10s"), Some("1GiB")),
            Ok(PluginLimits {
                timeout: MAX_UPLOAD_TIMEOUT,
                memory_bytes: MAX_UPLOAD_MEMORY,
            })
        );
        assert_eq!(
            parse_limits(Some("10s1ms"), None).unwrap_err().to_string(),
            "invalid `timeout`: an uploaded plugin's timeout is at most 10s, found 10s 1ms"
        );
        assert_eq!(
            parse_limits(None, Some("1025MiB")).unwrap_err().to_string(),
            "invalid `memory`: an uploaded plugin's memory is at most 1GiB, found 1074790400 bytes"
        );
    }

    #[tokio::test]
    async fn uploads_compile_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = bytes::Bytes::from(std::fs::read(build_plugin("testkit")).unwrap());
        let registry = Arc::new(registry(
            crate::store::open(&Default::default(), dir.path(), &Default::default())
                .await
                .unwrap(),
        ));
        // Loaded once already, so an upload that did not wait would be done
        // in a moment: while the one permit is taken, it waits instead.
        let _loaded = registry.runtime().load(&wasm).unwrap();
        let held = registry.compiles.clone().acquire_owned().await.unwrap();
        let waiting = tokio::spawn({
            let registry = registry.clone();
            let wasm = wasm.clone();
            async move {
                registry
                    .put(&name("queued"), wasm, PluginLimits::default(), Timestamp(1))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished());
        assert!(registry.get(&name("queued")).is_none());
        drop(held);
        let (_, created) = waiting.await.unwrap().unwrap();
        assert!(created);
    }

    #[tokio::test]
    async fn uploaded_limits_are_listed_stored_and_reapplied_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = std::fs::read(build_plugin("testkit")).unwrap();
        let limits = PluginLimits {
            timeout: Duration::from_millis(250),
            memory_bytes: 64 << 20,
        };
        let store = crate::store::open(&Default::default(), dir.path(), &Default::default())
            .await
            .unwrap();
        let first = registry(store.clone());
        let (info, created) = first
            .put(&name("shaper"), wasm.into(), limits, Timestamp(1))
            .await
            .unwrap();
        assert!(created);
        assert_eq!((info.timeout_ms, info.memory_bytes), (250, 64 << 20));
        assert_eq!(first.get(&name("shaper")).unwrap().limits, limits);
        assert_eq!(first.list(), std::slice::from_ref(&info));
        store.durable().await.unwrap();
        drop((first, store));

        let store = crate::store::open(&Default::default(), dir.path(), &Default::default())
            .await
            .unwrap();
        let uploads = read_uploads(&*store).await.unwrap();
        let second = registry(store);
        assert!(second.load_stored(uploads).is_empty());
        assert_eq!(second.get(&name("shaper")).unwrap().limits, limits);
        assert_eq!(second.list(), [info]);
    }

    #[tokio::test]
    async fn a_declared_plugin_that_does_not_load_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("notes.wasm");
        std::fs::write(&wasm, "not a component").unwrap();
        let store = crate::store::open(
            &Default::default(),
            &dir.path().join("data"),
            &Default::default(),
        )
        .await
        .unwrap();
        let registry = PluginRegistry::new(PluginRuntime::new(None).unwrap(), store);
        let declared = BTreeMap::from([(
            "notes".parse::<PluginName>().unwrap(),
            PluginConfig {
                path: wasm.clone(),
                timeout: PluginLimits::DEFAULT.timeout,
                memory: PluginLimits::DEFAULT.memory_bytes,
            },
        )]);

        let errors = registry.load_config(&declared);

        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [format!(
                "plugin notes: {}: {}",
                wasm.display(),
                PluginError::NotWasm
            )]
        );
        assert!(registry.list().is_empty());
    }
}
