//! A throwaway PostgreSQL cluster for the e2e suite and the dispatch
//! benchmark (each includes this file with `#[path]`): `initdb` in a
//! temporary directory, `pg_ctl start` on a free loopback port, stopped and
//! deleted when dropped; databases made in it with `psql`.
//!
//! PostgreSQL comes from the OS packages (`apt-get install postgresql`).
//! `initdb` refuses to run as root, so as root the cluster runs as the
//! `postgres` user the package creates.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where Debian's packages put the server binaries.
pub const PG_ROOT: &str = "/usr/lib/postgresql";

/// Settings for test data that may be lost: no fsync, room for many servers
/// at once.
pub const THROWAWAY: &[&str] = &["fsync=off", "full_page_writes=off", "max_connections=500"];

/// The newest installed PostgreSQL's binary directory, if any.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(PG_ROOT)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL program, from the newest installed version.
pub fn bin(program: &str) -> PathBuf {
    bin_dir().expect("PostgreSQL is installed").join(program)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A PostgreSQL program as the user that owns the cluster.
fn as_owner(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin(program));
        c
    } else {
        Command::new(bin(program))
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway cluster on 127.0.0.1, trusting local connections as
/// `postgres`; stopped (immediately) and deleted when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// A cluster with these server settings (`name=value`, e.g.
    /// [`THROWAWAY`]); `None` when PostgreSQL is not installed.
    pub fn start(settings: &[&str]) -> Option<Cluster> {
        bin_dir()?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(dir.path());
                    c
                },
                "chown the cluster directory",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = as_owner("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C"]);
        run(initdb, "initdb");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut options = format!("-h 127.0.0.1 -p {port} -k {}", dir.path().display());
        for setting in settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let mut start = as_owner("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-w", "-o", &options, "start"]);
        run(start, "pg_ctl start");
        Some(Cluster { dir, port })
    }

    /// `postgres://postgres@127.0.0.1:PORT`, to which a database name is appended.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The postmaster's process id, while the cluster runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pidfile = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?;
        pidfile.lines().next()?.trim().parse().ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = as_owner("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
    }
}

/// Creates the empty database `name` in the cluster at `cluster` (a
/// [`Cluster::url`]); returns its URL.
pub fn create_database(cluster: &str, name: &str) -> String {
    let out = Command::new(bin("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .arg(format!("{cluster}/postgres"))
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "creating database {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{cluster}/{name}")
}
