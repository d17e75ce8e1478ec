//! Named plugins: the ones declared in `[plugins.NAME]` and the ones uploaded
//! with `PUT /v1/plugins/NAME`.
//!
//! Each name resolves to one compiled version at a time. Uploads are kept in
//! sled by sha256 and reloaded at start; replacing a plugin swaps the version
//! that new attempts resolve, while attempts already running finish on the
//! version they took. Config-declared names belong to the config file and
//! cannot be replaced through the API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::config::PluginConfig;
use crate::ids::PluginName;
use crate::plugin::{LoadedPlugin, PluginError, PluginLimits, PluginRuntime};
use crate::store::{PluginRecord, PluginSource, Store, StoreError};

/// A plugin name bound to a compiled version and its limits.
pub struct NamedPlugin {
    pub name: PluginName,
    pub loaded: Arc<LoadedPlugin>,
    pub limits: PluginLimits,
    pub source: PluginSource,
}

/// A plugin as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub name: PluginName,
    pub sha256: String,
    pub size: usize,
    pub source: PluginSource,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin {name}: cannot read {path}: {source}")]
    Read {
        name: PluginName,
        path: String,
        source: std::io::Error,
    },
    #[error("plugin {name}: {source}")]
    Invalid {
        name: PluginName,
        source: PluginError,
    },
    #[error("plugin {name}: {path}: {source}")]
    InvalidFile {
        name: PluginName,
        path: String,
        source: PluginError,
    },
    #[error("plugin {0} is declared in the config file; change it there")]
    ConfigManaged(PluginName),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct PluginRegistry {
    runtime: PluginRuntime,
    store: Store,
    by_name: RwLock<HashMap<PluginName, Arc<NamedPlugin>>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl PluginRegistry {
    pub fn new(runtime: PluginRuntime, store: Store) -> Self {
        PluginRegistry {
            runtime,
            store,
            by_name: Default::default(),
        }
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Loads every config-declared plugin; returns every one that failed.
    pub fn load_config(&self, plugins: &BTreeMap<PluginName, PluginConfig>) -> Vec<RegistryError> {
        let mut errors = Vec::new();
        for (name, cfg) in plugins {
            match self.load_file(name, cfg) {
                Ok(named) => {
                    self.write().insert(name.clone(), Arc::new(named));
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

    /// Loads the uploaded plugins kept in sled (names the config does not declare).
    pub fn load_stored(&self) -> Result<Vec<RegistryError>, StoreError> {
        let mut errors = Vec::new();
        for record in self.store.list_plugins()? {
            if self
                .get(&record.name)
                .is_some_and(|p| p.source == PluginSource::Config)
            {
                continue;
            }
            let Some(wasm) = self.store.plugin_blob(&record.sha256)? else {
                continue;
            };
            match self.runtime.load(&wasm) {
                Ok(loaded) => {
                    let named = NamedPlugin {
                        name: record.name.clone(),
                        loaded,
                        limits: PluginLimits::default(),
                        source: PluginSource::Api,
                    };
                    self.write().insert(record.name.clone(), Arc::new(named));
                }
                Err(source) => errors.push(RegistryError::Invalid {
                    name: record.name,
                    source,
                }),
            }
        }
        Ok(errors)
    }

    pub fn get(&self, name: &PluginName) -> Option<Arc<NamedPlugin>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PluginName, Arc<NamedPlugin>>> {
        self.by_name.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates, stores and activates an uploaded plugin; `true` when the
    /// name is new. Nothing is stored unless the component compiles and
    /// exports the transformer world.
    pub fn put(
        &self,
        name: &PluginName,
        wasm: &[u8],
        now: Timestamp,
    ) -> Result<(PluginInfo, bool), RegistryError> {
        let existing = self.get(name);
        if existing
            .as_ref()
            .is_some_and(|p| p.source == PluginSource::Config)
        {
            return Err(RegistryError::ConfigManaged(name.clone()));
        }
        let loaded = self
            .runtime
            .load(wasm)
            .map_err(|source| RegistryError::Invalid {
                name: name.clone(),
                source,
            })?;
        let record = PluginRecord {
            name: name.clone(),
            sha256: sha256_hex(wasm),
            size: wasm.len(),
            updated_at: now,
        };
        self.store.put_plugin(&record, wasm)?;
        let named = NamedPlugin {
            name: name.clone(),
            loaded,
            limits: PluginLimits::default(),
            source: PluginSource::Api,
        };
        let info = info(&named);
        self.write().insert(name.clone(), Arc::new(named));
        Ok((info, existing.is_none()))
    }

    pub fn list(&self) -> Vec<PluginInfo> {
        let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_plugin_that_does_not_load_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("notes.wasm");
        std::fs::write(&wasm, "not a component").unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let registry = PluginRegistry::new(PluginRuntime::new(None).unwrap(), store);
        let declared = BTreeMap::from([(
            "notes".parse::<PluginName>().unwrap(),
            PluginConfig {
                path: wasm.clone(),
                timeout: PluginConfig::DEFAULT_TIMEOUT,
                memory: PluginConfig::DEFAULT_MEMORY,
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
