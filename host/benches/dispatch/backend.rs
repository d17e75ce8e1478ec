//! The store the servers run on: sled (the default, one node, a data
//! directory each) or PostgreSQL (`--backend postgres`, `--nodes N`): one
//! throwaway cluster for the whole run, a fresh database per scenario, and
//! the cluster's CPU time, read like the server's, for CPU per delivery.
//!
//! The cluster keeps PostgreSQL's durability on (`fsync`, and
//! `synchronous_commit` on for `--sync full`, off for `--sync os`), so an
//! acknowledged event is as durable as on sled with the same `--sync`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::pg_cluster::{self, Cluster};

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sled,
    Postgres,
}

impl Kind {
    pub fn parse(arg: &str) -> Option<Kind> {
        match arg {
            "sled" => Some(Kind::Sled),
            "postgres" => Some(Kind::Postgres),
            _ => None,
        }
    }
}

/// `--sync`: `storage.sync` on sled, `synchronous_commit` on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    Full,
    Os,
}

impl Sync {
    pub fn parse(arg: &str) -> Option<Sync> {
        match arg {
            "full" => Some(Sync::Full),
            "os" => Some(Sync::Os),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sync::Full => "full",
            Sync::Os => "os",
        }
    }

    fn synchronous_commit(self) -> &'static str {
        match self {
            Sync::Full => "synchronous_commit=on",
            Sync::Os => "synchronous_commit=off",
        }
    }
}

/// The run's backend, its cluster started once.
pub enum Backend {
    Sled(Sync),
    Postgres {
        cluster: Cluster,
        nodes: usize,
        sync: Sync,
        /// Databases made so far, for the next one's name.
        databases: AtomicUsize,
    },
}

impl Backend {
    /// Starts the cluster for PostgreSQL; refuses several nodes on sled.
    pub fn start(kind: Kind, nodes: usize, sync: Sync) -> Result<Backend, String> {
        match kind {
            Kind::Sled if nodes == 1 => Ok(Backend::Sled(sync)),
            Kind::Sled => Err(format!(
                "--nodes {nodes} needs --backend postgres: sled is one process's directory"
            )),
            Kind::Postgres => {
                // Each node opens up to 17 connections; 100 is the default.
                let connections = format!("max_connections={}", (20 + 17 * nodes).max(100));
                let settings = [sync.synchronous_commit(), connections.as_str()];
                let cluster = Cluster::start(&settings).ok_or_else(|| {
                    format!(
                        "--backend postgres needs PostgreSQL installed (no {}/*/bin/initdb): apt-get install postgresql",
                        pg_cluster::PG_ROOT
                    )
                })?;
                Ok(Backend::Postgres {
                    cluster,
                    nodes,
                    sync,
                    databases: AtomicUsize::new(0),
                })
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres { .. })
    }

    /// Server nodes per scenario.
    pub fn nodes(&self) -> usize {
        match self {
            Backend::Sled(_) => 1,
            Backend::Postgres { nodes, .. } => *nodes,
        }
    }

    /// The `[storage]` keys of one scenario's config; on PostgreSQL a fresh
    /// database of its own.
    pub fn storage_keys(&self) -> String {
        match self {
            Backend::Sled(sync) => format!("sync = \"{}\"\n", sync.name()),
            Backend::Postgres {
                cluster, databases, ..
            } => {
                let name = format!("bench_{}", databases.fetch_add(1, Ordering::Relaxed));
                let url = pg_cluster::create_database(&cluster.url(), &name);
                format!("backend = \"postgres\"\nurl = {url:?}\n")
            }
        }
    }

    /// The database's CPU time so far (every process of the cluster);
    /// `None` on sled.
    pub fn db_cpu_time(&self) -> Option<Duration> {
        match self {
            Backend::Sled(_) => None,
            Backend::Postgres { cluster, .. } => crate::cpu::of_family(cluster.postmaster_pid()?),
        }
    }

    /// For the table's heading.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sled(sync) => format!("sled, storage.sync = {}", sync.name()),
            Backend::Postgres { nodes, sync, .. } => format!(
                "PostgreSQL with {}, {nodes} node{}",
                sync.synchronous_commit().replace('=', " = "),
                if *nodes == 1 { "" } else { "s" }
            ),
        }
    }
}
