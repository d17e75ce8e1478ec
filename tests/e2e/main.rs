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
mod core;
mod crash;
mod faults;
mod harness;
mod hostile;
mod languages;
mod limits;
mod operational;
mod plugins;
mod secrets;
mod storage;
