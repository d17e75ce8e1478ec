//! End-to-end tests of the `hookshape` binary.
//!
//! Every test starts the real server as a child process on an ephemeral
//! loopback port with its own temporary data directory, drives it through the
//! HTTP API of the contract (`../shared/CONTRACT.md`, beside the repository)
//! and watches what a real HTTP receiver gets. Nothing here reaches into the
//! server's internals, and nothing leaves 127.0.0.1. Shared helpers live in
//! [`harness`]; the server's connection limits are in [`limits`].

mod bridges;
mod cli;
mod console;
mod core;
mod crash;
mod cross_tenant;
mod dry_run;
mod faults;
mod first_start;
mod harness;
mod hostile;
mod hostile_api;
mod languages;
mod limits;
mod multinode;
mod openapi;
mod operational;
// Shared with the benchmark, which alone reads the postmaster's pid.
#[allow(dead_code)]
#[path = "../support/pg_cluster.rs"]
mod pg_cluster;
mod plugins;
mod postgres;
mod recover;
mod secrets;
mod ssrf;
mod storage;
mod tenants;
