//! The suite on PostgreSQL: a throwaway cluster ([`Cluster`]: `initdb` in a
//! temporary directory, `pg_ctl start` on a free loopback port, stopped when
//! dropped), and [`postgres_suite`], which runs this same test binary again
//! with [`POSTGRES_ENV`] set so that every other test runs once more, each
//! server on a fresh database of its own.
//!
//! PostgreSQL comes from the OS packages (`apt-get install postgresql`);
//! without it the postgres run says so and passes, and the sled run stands.
//! `initdb` refuses to run as root, so as root the cluster runs as the
//! `postgres` user the package creates.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::harness::POSTGRES_ENV;

/// Where Debian's packages put the server binaries.
const PG_ROOT: &str = "/usr/lib/postgresql";

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
    /// `None` when PostgreSQL is not installed.
    pub fn start() -> Option<Cluster> {
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
        // Throwaway data: no fsync; room for many servers at once.
        let options = format!(
            "-h 127.0.0.1 -p {port} -k {} -c fsync=off -c full_page_writes=off -c max_connections=500",
            dir.path().display()
        );
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

/// Every other e2e test, again, on PostgreSQL: this binary re-run with
/// [`POSTGRES_ENV`] set (and this module's tests skipped), its output
/// streamed, its success asserted.
#[test]
fn postgres_suite() {
    if crate::harness::postgres_cluster().is_some() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        eprintln!(
            "PostgreSQL is not installed (no {PG_ROOT}/*/bin/initdb): the e2e suite's postgres run is skipped; install it with `apt-get install postgresql`"
        );
        return;
    };
    let started = std::time::Instant::now();
    let status = Command::new(std::env::current_exe().expect("the test binary"))
        .env(POSTGRES_ENV, cluster.url())
        .args(["--skip", "postgres::"])
        .stdin(Stdio::null())
        .status()
        .expect("re-running the e2e tests");
    eprintln!(
        "the e2e suite on PostgreSQL took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(status.success(), "the e2e suite failed on PostgreSQL");
}
