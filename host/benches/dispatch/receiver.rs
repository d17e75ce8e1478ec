//! The webhook receiver: a bare hyper HTTP/1.1 server on loopback with
//! keep-alive that answers every request 200 with an empty body and records
//! when each one fully arrived and its `webhook-id`.
//!
//! It can be paused: a request that arrives while paused is held unanswered
//! and never recorded; on resume it is answered 503. The server under test
//! sees a receiver that stopped answering, and the deliveries it held are
//! the ones the server still owes (and will send again after a restart).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub at: Instant,
    /// The `webhook-id` header (the event id); absent on raw posts.
    pub webhook_id: Option<Box<str>>,
}

struct State {
    paused: watch::Sender<bool>,
    count: AtomicU64,
    log: Mutex<Vec<Receipt>>,
    arrived: Notify,
}

pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let state = Arc::new(State {
            paused: watch::Sender::new(false),
            count: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Receiver { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_paused(&self, paused: bool) {
        self.state.paused.send_replace(paused);
    }

    /// Requests recorded so far.
    pub fn count(&self) -> u64 {
        self.state.count.load(Ordering::Acquire)
    }

    /// Takes every receipt recorded so far, leaving the log empty.
    pub fn take(&self) -> Vec<Receipt> {
        let mut log = self.state.log.lock().expect("receiver log");
        self.state.count.store(0, Ordering::Release);
        std::mem::take(&mut *log)
    }

    /// Waits until `n` requests are recorded or `deadline` passes; true when
    /// they all came.
    pub async fn wait_for(&self, n: u64, deadline: tokio::time::Instant) -> bool {
        loop {
            let arrived = self.state.arrived.notified();
            if self.count() >= n {
                return true;
            }
            // Notify only wakes waiters registered before the notification;
            // the periodic recheck covers the gap between check and wait.
            let tick =
                deadline.min(tokio::time::Instant::now() + std::time::Duration::from_millis(50));
            let _ = tokio::time::timeout_at(tick, arrived).await;
            if tokio::time::Instant::now() >= deadline {
                return self.count() >= n;
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            // A connection the server closes mid-request is not our business.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    body.collect().await?;
    let at = Instant::now();
    if *state.paused.borrow() {
        let mut paused = state.paused.subscribe();
        let _ = paused.wait_for(|p| !*p).await;
        let mut busy = Response::new(Full::new(Bytes::new()));
        *busy.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(busy);
    }
    let webhook_id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(Box::from);
    state
        .log
        .lock()
        .expect("receiver log")
        .push(Receipt { at, webhook_id });
    state.count.fetch_add(1, Ordering::Release);
    state.arrived.notify_waiters();
    Ok(Response::new(Full::new(Bytes::new())))
}
