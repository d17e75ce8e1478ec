//! The suite on PostgreSQL: [`postgres_suite`] starts a throwaway cluster
//! ([`Cluster`], shared with the benchmark) and runs this same test binary
//! again with [`POSTGRES_ENV`] set so that every other test runs once more,
//! each server on a fresh database of its own. Without PostgreSQL the
//! postgres run says so and passes, and the sled run stands.

use std::process::{Command, Stdio};

use crate::harness::POSTGRES_ENV;
use crate::pg_cluster::{Cluster, PG_ROOT, THROWAWAY};

/// Every other e2e test, again, on PostgreSQL: this binary re-run with
/// [`POSTGRES_ENV`] set (and this module's tests skipped), its output
/// streamed, its success asserted.
#[test]
fn postgres_suite() {
    if crate::harness::postgres_cluster().is_some() {
        return;
    }
    let Some(cluster) = Cluster::start(THROWAWAY) else {
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
