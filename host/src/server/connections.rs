//! Serving the API's TCP connections within the `[server]` limits: at most
//! `max_connections` at once (the others wait in the listen backlog), a
//! deadline for each request header, kept-alive connections closed when
//! idle, and a stop that lets in-flight requests finish.
//!
//! hyper's own `header_read_timeout` starts as soon as a connection waits for
//! its next request, so on a kept-alive connection it is also the idle limit.
//! The contract sets the two apart, so each connection keeps its [`Phase`]
//! here and a watchdog drops it once the phase's deadline passes. A request,
//! once its header is in, is bounded by the router's 408 layer instead
//! (`api::connection`).

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::config::ServerConfig;

/// How long a connection may sit in each phase without a request running.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header_read: Duration,
    idle: Duration,
}

/// Accepts and serves connections until `stop` turns true (or its sender is
/// gone), then waits for the open ones to finish their requests and close.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let timeouts = Timeouts {
        header_read: config.header_read_timeout,
        idle: config.idle_timeout,
    };
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, slot) = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let watcher = graceful.watcher();
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            timeouts,
            watcher,
            slot,
        ));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits for a free slot, then for a connection to fill it. Until a slot is
/// free nothing is accepted, so new clients wait in the kernel's backlog.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, OwnedSemaphorePermit) {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return (stream, slot),
            // The client gave up before it was accepted: nothing to serve.
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Out of file descriptors and the like: retrying at once
                // would spin, so give other connections time to close.
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection's requests, in turn, until the client closes it,
/// a timeout drops it, or a graceful stop ends it after its current request.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    timeouts: Timeouts,
    watcher: Watcher,
    _slot: OwnedSemaphorePermit,
) {
    let clock = Arc::new(PhaseClock::new());
    let io = TokioIo::new(Tracked {
        stream,
        clock: Arc::clone(&clock),
    });
    let api = TowerToHyperService::new(router);
    let requests = Arc::clone(&clock);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let running = requests.request_started();
        let answer = hyper::service::Service::call(&api, request);
        async move {
            let answer = answer.await;
            drop(running);
            answer
        }
    });
    let connection = http1::Builder::new()
        // Replaced by the watchdog below; see the module's documentation.
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut connection = pin!(watcher.watch(connection));
    loop {
        let deadline = clock.deadline(timeouts);
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            tracing::debug!("dropping a connection past its header or idle timeout");
            return;
        }
        let changed = clock.changed.notified();
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "a connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline) => {}
            () = changed => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Receiving a request header, since the connection opened or since the
    /// first byte after the previous answer.
    Header(Instant),
    /// A request is being read or answered; `server.request_timeout` bounds it.
    Request,
    /// Kept alive with nothing to do, since the last byte of an answer went out.
    Idle(Instant),
}

/// A connection's [`Phase`], moved on by its socket and its service.
struct PhaseClock {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when the deadline may have come closer.
    changed: Notify,
}

impl PhaseClock {
    fn new() -> Self {
        PhaseClock {
            phase: Mutex::new(Phase::Header(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        match *self.phase.lock() {
            Phase::Header(since) => Some(since + timeouts.header_read),
            Phase::Request => None,
            Phase::Idle(since) => Some(since + timeouts.idle),
        }
    }

    /// The header is in and the router has the request, until the guard drops.
    fn request_started(self: &Arc<Self>) -> RequestRunning {
        *self.phase.lock() = Phase::Request;
        RequestRunning(Arc::clone(self))
    }

    /// Bytes arrived: on an idle connection, the next header has begun.
    fn received(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Header(Instant::now());
            self.changed.notify_one();
        }
    }

    /// Bytes of an answer went out: a slow reader is idle only once it stops
    /// taking them.
    fn sent(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Idle(Instant::now());
        }
    }
}

/// Marks a connection idle again when its request's answer is ready (or
/// the request was dropped).
struct RequestRunning(Arc<PhaseClock>);

impl Drop for RequestRunning {
    fn drop(&mut self) {
        *self.0.phase.lock() = Phase::Idle(Instant::now());
        self.0.changed.notify_one();
    }
}

/// A socket that reports its traffic to the connection's [`PhaseClock`].
struct Tracked {
    stream: TcpStream,
    clock: Arc<PhaseClock>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.received();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        self.note_sent(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, data);
        self.note_sent(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Tracked {
    fn note_sent(&self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.clock.sent();
        }
    }
}
