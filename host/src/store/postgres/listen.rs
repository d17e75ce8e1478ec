//! `LISTEN` for queued work: a dedicated session that wakes this node's
//! dispatcher when any node ingests, so idle nodes start at once instead of
//! polling. It reconnects after a lost connection, and wakes the dispatcher
//! then too, for whatever was queued while it was away.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::{self, AsyncMessage, NoTls};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::WORK_CHANNEL;

/// Wait before reconnecting a lost session.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

/// The dispatcher to wake, once it is known.
#[derive(Default)]
pub(super) struct WakeSlot(Mutex<Option<Arc<Notify>>>);

impl WakeSlot {
    pub(super) fn set(&self, dispatcher: Arc<Notify>) {
        *self.0.lock() = Some(dispatcher);
    }

    pub(super) fn wake(&self) {
        if let Some(d) = &*self.0.lock() {
            d.notify_one();
        }
    }
}

/// Starts the listening session; it runs until aborted.
pub(super) fn spawn(config: tokio_postgres::Config, wake: Arc<WakeSlot>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&config, &wake).await {
                tracing::warn!(error = %e, "the LISTEN session to the database ended; reconnecting");
            }
            tokio::time::sleep(RECONNECT_WAIT).await;
        }
    })
}

/// One session: `LISTEN`, then wake on every notification until it ends.
async fn listen(
    config: &tokio_postgres::Config,
    wake: &WakeSlot,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let (notified_tx, mut notified) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let ended = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    let _ = notified_tx.send(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        };
        let _ = ended_tx.send(ended);
    });
    client
        .batch_execute(&format!("LISTEN {WORK_CHANNEL}"))
        .await?;
    wake.wake();
    let forward = async {
        while notified.recv().await.is_some() {
            wake.wake();
        }
    };
    tokio::select! {
        () = forward => Ok(()),
        ended = ended => ended.unwrap_or(Ok(())),
    }
}
