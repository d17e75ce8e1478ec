//! Sends this test process a real SIGTERM, then a SIGINT, and checks that
//! each one resolves a waiting [`hookshape_shutdown::signal`]. One test, so
//! no other test in this binary sees the signals.
#![cfg(unix)]

use std::future::Future;
use std::process::Command;
use std::time::Duration;

/// Signals this process with `kill -NAME`, through the shell's builtin.
fn raise(name: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{name} {}", std::process::id())])
        .status()
        .expect("sh runs");
    assert!(status.success(), "kill -{name}: {status}");
}

/// Polls `stop` until its handlers are installed, checks that it does not
/// resolve by itself, then raises `name` and expects it to resolve.
async fn resolves_on(name: &str, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut stop)
            .await
            .is_err(),
        "resolved before any signal"
    );
    raise(name);
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .unwrap_or_else(|_| panic!("SIG{name} did not resolve the signal future"));
}

#[tokio::test]
async fn sigterm_and_sigint_each_resolve_the_signal() {
    resolves_on("TERM", hookshape_shutdown::signal()).await;
    resolves_on("INT", hookshape_shutdown::signal()).await;
}
