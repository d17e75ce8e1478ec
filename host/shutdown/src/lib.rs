//! The stop signal that `hookshape serve` and the example receivers wait for:
//! the first SIGINT (Ctrl-C) or SIGTERM. A crate of its own so that the
//! examples can share it without building the dispatcher (wasmtime, sled).

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM received after it is
/// first polled.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; Ctrl-C still works");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
