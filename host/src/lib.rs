//! hookshape: a self-hosted webhook dispatcher with per-subscription
//! WebAssembly transforms.
//!
//! Data flows one way: [`api`] -> [`app`] -> [`store`] -> [`delivery`] ->
//! [`plugin`] -> [`http_client`] -> [`store`]. [`config`] reads the admin's
//! TOML, [`clock`] is the one source of time, [`metrics`] the Prometheus
//! counters. Standard Webhooks signing lives in the `hookshape-signing` crate
//! and the stop signal in `hookshape-shutdown`, which the examples share
//! without pulling in wasmtime or sled.

pub mod admin_token;
pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod headers;
pub mod http_client;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod plugin;
pub mod registry;
pub mod scaffold;
pub mod server;
pub mod services;
pub mod store;
