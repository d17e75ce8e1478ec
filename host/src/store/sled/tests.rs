//! The sled backend's own tests: records, queue, journal and index.

use super::journal::Slot;
use super::keys::*;
use super::queue::DueWork;
use super::records::*;
use super::subscriptions::CHANGE_CHUNK;
use super::*;
use crate::model::{AttemptOutcome, DeliveryState};
use crate::store::{Claimed, Cutoffs, PluginRecord, Receipt, Release, Swept};

fn nd(delivery: Delivery, ordered: bool) -> NewDelivery {
    NewDelivery { delivery, ordered }
}

fn tenant() -> Tenant {
    "acme".parse().unwrap()
}

fn sub(id: &str, events: &[&str], ordered: bool) -> Subscription {
    Subscription {
        tenant: tenant(),
        events: events.iter().map(|s| s.to_string()).collect(),
        ordered,
        ..Subscription::for_tests(id)
    }
}

fn event(source_id: Option<&str>) -> Event {
    Event {
        id: EventId::generate(),
        source_id: source_id.map(String::from),
        event_type: "project.published".into(),
        tenant: tenant(),
        timestamp: Timestamp(1000),
        content_type: "application/json".into(),
        payload: crate::model::Payload::from_value(&serde_json::json!({"a": 1})),
    }
}

fn delivery(e: &Event, s: &Subscription, due: u64) -> Delivery {
    Delivery {
        id: DeliveryId::generate(),
        tenant: tenant(),
        event_id: e.id.clone(),
        subscription_id: s.id.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: Some(Timestamp(due)),
        created_at: Timestamp(due),
    }
}

fn attempt_for(d: &Delivery, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        id: AttemptId::generate(),
        tenant: d.tenant.clone(),
        delivery_id: d.id.clone(),
        event_id: d.event_id.clone(),
        event_type: "project.published".into(),
        subscription_id: d.subscription_id.clone(),
        created_at: Timestamp(0),
        attempt: d.attempts + 1,
        outcome,
        status_code: Some(200),
        duration_ms: 1,
        request_headers: Default::default(),
        request_body: None,
        request_body_truncated: false,
        response_body: None,
        response_body_truncated: false,
        plugin_logs: vec![],
        plugin_sha256: None,
        error: None,
    }
}

/// The delivery as it stands, as an attempt would find it.
fn current(store: &SledStore, d: &Delivery) -> Option<Delivery> {
    let queued = Queued {
        id: d.id.clone(),
        event: Some(d.event_id.clone()),
    };
    store.attempt_inputs(&queued).unwrap().map(|(d, _)| d)
}

impl DueWork {
    fn ids(&self) -> Vec<DeliveryId> {
        self.ready.iter().map(|q| q.id.clone()).collect()
    }
}

fn finish(store: &SledStore, d: &Delivery, state: DeliveryState, ordered: bool, now: u64) {
    let mut after = d.clone();
    after.state = state;
    after.attempts += 1;
    after.next_attempt_at = (!state.is_final()).then_some(Timestamp(now + 5000));
    let result = AttemptResult {
        attempt: attempt_for(d, AttemptOutcome::Delivered),
        delivery: after,
        subscription: None,
        found: d.clone(),
    };
    store
        .finish_attempt(&result, ordered, Timestamp(now))
        .unwrap();
}

#[test]
fn opening_waits_for_the_previous_holder_of_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path(), &Options::default()).unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
    });
    let started = Instant::now();
    let second = SledStore::open(dir.path(), &Options::default());
    holder.join().unwrap();
    assert!(second.is_ok(), "{:?}", second.err());
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn event_deliveries_are_the_ingest_ones_then_the_resends() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let (s1, s2) = (sub("s1", &["*"], false), sub("s2", &["*"], true));
    store.put_subscription(&s1).unwrap();
    store.put_subscription(&s2).unwrap();
    // Staged (unordered only) and written at once (with an ordered one).
    let staged = event(None);
    let now = event(None);
    let staged_ds = [delivery(&staged, &s1, 1000), delivery(&staged, &s1, 1000)];
    let now_ds = [delivery(&now, &s2, 1000), delivery(&now, &s1, 1000)];
    store
        .ingest(&staged, &staged_ds.clone().map(|d| nd(d, false)))
        .unwrap();
    store
        .ingest(
            &now,
            &[nd(now_ds[0].clone(), true), nd(now_ds[1].clone(), false)],
        )
        .unwrap();
    store.durable().await.unwrap();
    assert!(
        store.inner.trees.event_deliveries.is_empty(),
        "ingest writes no index rows"
    );
    let resend = delivery(&staged, &s1, 2000);
    store.add_delivery(&resend, false).unwrap();
    let mut expected = staged_ds.to_vec();
    expected.push(resend);
    assert_eq!(store.event_deliveries(&staged.id).unwrap(), expected);
    assert_eq!(store.event_deliveries(&now.id).unwrap(), now_ds.to_vec());
    assert_eq!(store.get_event(&staged.id).unwrap(), Some(staged));

    // A fan-out too large for the record goes to the index.
    let wide = event(None);
    let wide_ds: Vec<_> = (0..=RECORD_DELIVERIES)
        .map(|_| nd(delivery(&wide, &s1, 1000), false))
        .collect();
    store.ingest(&wide, &wide_ds).unwrap();
    store.durable().await.unwrap();
    assert_eq!(
        store.inner.trees.event_deliveries.len(),
        RECORD_DELIVERIES + 2,
        "the resend and the wide fan-out"
    );
    let listed = store.event_deliveries(&wide.id).unwrap();
    assert_eq!(
        listed,
        wide_ds.into_iter().map(|n| n.delivery).collect::<Vec<_>>()
    );
    assert_eq!(store.get_event(&wide.id).unwrap(), Some(wide));
}

#[tokio::test]
async fn kept_deliveries_get_rows_once_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s1 = sub("s1", &["*"], false);
    store.put_subscription(&s1).unwrap();
    let e = event(None);
    let ds = [delivery(&e, &s1, 1000), delivery(&e, &s1, 1000)];
    store.ingest(&e, &ds.clone().map(|d| nd(d, false))).unwrap();
    store.durable().await.unwrap();
    let trees = &store.inner.trees;
    assert!(trees.deliveries.is_empty(), "kept in the event's record");
    let work = store.due(Timestamp(1000), 10, |_| false).unwrap();
    let expected: Vec<_> = ds
        .iter()
        .map(|d| Queued {
            id: d.id.clone(),
            event: Some(e.id.clone()),
        })
        .collect();
    assert_eq!(work.ready, expected);
    let (found, read) = store.attempt_inputs(&work.ready[0]).unwrap().unwrap();
    assert_eq!((&found, &read), (&ds[0], &e));
    assert_eq!(current(&store, &ds[1]).as_ref(), Some(&ds[1]));

    // The first attempt's end writes the row, through the batch.
    let mut after = found.clone();
    after.state = DeliveryState::Delivered;
    after.attempts = 1;
    after.next_attempt_at = None;
    let result = AttemptResult {
        attempt: attempt_for(&found, AttemptOutcome::Delivered),
        delivery: after.clone(),
        subscription: None,
        found,
    };
    store
        .record_attempt(&result, false, Timestamp(1000))
        .await
        .unwrap();
    assert_eq!(trees.deliveries.len(), 1);
    assert_eq!(current(&store, &ds[0]), Some(after.clone()));
    assert_eq!(
        store.event_deliveries(&e.id).unwrap(),
        vec![after.clone(), ds[1].clone()]
    );
    assert_eq!(
        store.due(Timestamp(1000), 10, |_| false).unwrap().ids(),
        vec![ds[1].id.clone()]
    );

    // Cancelling finds the other through its queue entry and event.
    assert_eq!(store.cancel_pending(&s1.tenant, &s1.id).unwrap(), 1);
    let cancelled = current(&store, &ds[1]).unwrap();
    assert_eq!(cancelled.state, DeliveryState::Cancelled);
    assert_eq!(cancelled.next_attempt_at, None);
    assert_eq!(store.queue_len(), 0);
    assert_eq!(
        store.event_deliveries(&e.id).unwrap(),
        vec![after, cancelled]
    );
}

#[tokio::test]
async fn ingest_is_atomic_idempotent_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("s1", &["project.*"], false);
    store.put_subscription(&s).unwrap();
    let e = event(Some("src-1"));
    let d = delivery(&e, &s, 1000);
    let first = store.ingest(&e, &[nd(d.clone(), false)]).unwrap();
    assert_eq!(
        first,
        Ingested::New(Receipt {
            id: e.id.clone(),
            deliveries: 1
        })
    );
    let again = event(Some("src-1"));
    let second = store
        .ingest(&again, &[nd(delivery(&again, &s, 1000), false)])
        .unwrap();
    assert_eq!(
        second,
        Ingested::Duplicate(Receipt {
            id: e.id.clone(),
            deliveries: 1
        })
    );
    assert!(
        store.get_event(&again.id).unwrap().is_none(),
        "a duplicate stores nothing"
    );
    store.durable().await.unwrap();
    drop(store);

    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    assert_eq!(store.get_event(&e.id).unwrap(), Some(e.clone()));
    assert_eq!(store.event_deliveries(&e.id).unwrap(), vec![d.clone()]);
    assert_eq!(
        store.due(Timestamp(1000), 10, |_| false).unwrap().ids(),
        vec![d.id]
    );
    assert_eq!(
        store
            .matching_subscriptions(&tenant(), "project.published")
            .len(),
        1
    );
}

#[tokio::test]
async fn due_respects_time_limit_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("s1", &["*"], false);
    let e = event(None);
    let ds: Vec<Delivery> = [300, 100, 200, 900]
        .iter()
        .map(|&t| delivery(&e, &s, t))
        .collect();
    let with_flags: Vec<_> = ds.iter().map(|d| nd(d.clone(), false)).collect();
    store.ingest(&e, &with_flags).unwrap();
    store.durable().await.unwrap();
    let work = store.due(Timestamp(500), 10, |_| false).unwrap();
    assert_eq!(
        work.ids(),
        vec![ds[1].id.clone(), ds[2].id.clone(), ds[0].id.clone()]
    );
    assert_eq!(work.next_due, Some(Timestamp(900)));
    let work = store.due(Timestamp(500), 1, |id| id == &ds[1].id).unwrap();
    assert_eq!(work.ids(), vec![ds[2].id.clone()]);
    assert_eq!(work.next_due, Some(Timestamp(300)));
}

#[tokio::test]
async fn staged_ingests_are_invisible_until_durable_and_still_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("s1", &["*"], false);
    let e = event(Some("src-7"));
    let d = delivery(&e, &s, 100);
    let first = store.ingest(&e, &[nd(d.clone(), false)]).unwrap();
    let twin = event(Some("src-7"));
    let again = store
        .ingest(&twin, &[nd(delivery(&twin, &s, 100), false)])
        .unwrap();
    assert_eq!(
        again,
        Ingested::Duplicate(Receipt {
            id: e.id.clone(),
            deliveries: 1
        }),
        "a duplicate of a staged event is caught before it is committed"
    );
    assert_eq!(
        first,
        Ingested::New(Receipt {
            id: e.id.clone(),
            deliveries: 1
        })
    );
    let many: Vec<Event> = (0..50).map(|_| event(None)).collect();
    for m in &many {
        store.ingest(m, &[nd(delivery(m, &s, 200), false)]).unwrap();
    }
    store.durable().await.unwrap();
    assert_eq!(store.get_event(&e.id).unwrap(), Some(e.clone()));
    assert!(store.get_event(&twin.id).unwrap().is_none());
    assert_eq!(
        store
            .due(Timestamp(200), 100, |_| false)
            .unwrap()
            .ready
            .len(),
        51
    );
    drop(store);
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    assert_eq!(store.event_deliveries(&many[49].id).unwrap().len(), 1);
}

#[test]
fn index_changes_touch_only_the_changed_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    for k in 0..2000 {
        store
            .put_subscription(&sub(&format!("s{k}"), &[&format!("t.{k}")], false))
            .unwrap();
    }
    let ids = |t: &str| -> Vec<String> {
        store
            .matching_subscriptions(&tenant(), t)
            .iter()
            .map(|s| s.id.to_string())
            .collect()
    };
    assert_eq!(ids("t.1999"), ["s1999"]);
    store
        .put_subscription(&sub("s5", &["t.other", "u.*"], false))
        .unwrap();
    assert!(ids("t.5").is_empty(), "the old event type is forgotten");
    assert_eq!(ids("t.other"), ["s5"]);
    assert_eq!(ids("u.7"), ["s5"]);
    assert_eq!(ids("t.7"), ["s7"]);
    let mut off = sub("s7", &["t.7"], false);
    off.enabled = false;
    store.put_subscription(&off).unwrap();
    assert!(ids("t.7").is_empty());
}

#[test]
fn ordered_subscriptions_queue_one_head_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("ordered", &["*"], true);
    store.put_subscription(&s).unwrap();
    let mut ds = Vec::new();
    for _ in 0..3 {
        let e = event(None);
        let d = delivery(&e, &s, 100);
        store.ingest(&e, &[nd(d.clone(), true)]).unwrap();
        ds.push(d);
    }
    assert_eq!(
        store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
        vec![ds[0].id.clone()]
    );
    // A retry keeps the head; nothing else is released.
    finish(&store, &ds[0], DeliveryState::Pending, true, 100);
    assert!(
        store
            .due(Timestamp(200), 10, |_| false)
            .unwrap()
            .ready
            .is_empty()
    );
    finish(&store, &ds[0], DeliveryState::Failed, true, 200);
    assert_eq!(
        store.due(Timestamp(200), 10, |_| false).unwrap().ids(),
        vec![ds[1].id.clone()]
    );
    finish(&store, &ds[1], DeliveryState::Delivered, true, 300);
    assert_eq!(
        store.due(Timestamp(300), 10, |_| false).unwrap().ids(),
        vec![ds[2].id.clone()]
    );
}

#[tokio::test]
async fn cancelling_an_unordered_subscription_finds_its_deliveries_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let (s1, s2) = (sub("s1", &["*"], false), sub("s2", &["*"], false));
    store.put_subscription(&s1).unwrap();
    store.put_subscription(&s2).unwrap();
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    // More than one change's worth, some retrying later, one done.
    for n in 0..(CHANGE_CHUNK as u64 + 20) {
        let e = event(None);
        let (d1, d2) = (delivery(&e, &s1, 100 + n), delivery(&e, &s2, 100));
        store
            .ingest(&e, &[nd(d1.clone(), false), nd(d2.clone(), false)])
            .unwrap();
        mine.push(d1);
        theirs.push(d2);
    }
    store.durable().await.unwrap();
    assert_eq!(
        store.inner.trees.sub_pending.len(),
        0,
        "unordered: queue only"
    );
    finish(&store, &mine[0], DeliveryState::Delivered, false, 100);
    finish(&store, &mine[1], DeliveryState::Pending, false, 100);
    let cancelled = store.cancel_pending(&tenant(), &s1.id).unwrap();
    assert_eq!(cancelled, mine.len() - 1);
    let state = |d: &Delivery| current(&store, d).unwrap().state;
    assert_eq!(state(&mine[0]), DeliveryState::Delivered);
    assert!(
        mine[1..]
            .iter()
            .all(|d| state(d) == DeliveryState::Cancelled)
    );
    assert!(theirs.iter().all(|d| state(d) == DeliveryState::Pending));
    let due = store
        .due(Timestamp(u64::MAX), 1000, |_| false)
        .unwrap()
        .ids();
    let expected: Vec<_> = theirs.iter().map(|d| d.id.clone()).collect();
    assert_eq!(due, expected);
}

#[tokio::test]
async fn turning_ordering_off_releases_the_waiting_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let mut s = sub("s1", &["*"], true);
    store.put_subscription(&s).unwrap();
    let ds: Vec<_> = (0..3)
        .map(|_| {
            let e = event(None);
            let d = delivery(&e, &s, 100);
            store.ingest(&e, &[nd(d.clone(), true)]).unwrap();
            d
        })
        .collect();
    let ids = |n: usize| ds[..n].iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
        ids(1)
    );
    s.ordered = false;
    store.put_subscription(&s).unwrap();
    store.durable().await.unwrap();
    assert_eq!(
        store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
        ids(3)
    );
    assert_eq!(store.inner.trees.sub_pending.len(), 0);
    finish(&store, &ds[1], DeliveryState::Delivered, false, 100);
    assert_eq!(
        store.due(Timestamp(100), 10, |_| false).unwrap().ids(),
        vec![ds[0].id.clone(), ds[2].id.clone()]
    );
}

#[tokio::test]
async fn cancelling_clears_the_queue_and_keeps_late_attempts_from_reviving() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("s1", &["*"], false);
    store.put_subscription(&s).unwrap();
    let e = event(None);
    let d = delivery(&e, &s, 100);
    store.ingest(&e, &[nd(d.clone(), false)]).unwrap();
    store.durable().await.unwrap();
    assert_eq!(store.cancel_pending(&tenant(), &s.id).unwrap(), 1);
    assert!(
        store
            .due(Timestamp(100), 10, |_| false)
            .unwrap()
            .ready
            .is_empty()
    );
    finish(&store, &d, DeliveryState::Pending, false, 150);
    let after = current(&store, &d).unwrap();
    assert_eq!(after.state, DeliveryState::Cancelled);
    assert!(
        store
            .due(Timestamp(u64::MAX), 10, |_| false)
            .unwrap()
            .ready
            .is_empty()
    );
    assert_eq!(
        store
            .list_attempts(&tenant(), &s.id, 10, None)
            .unwrap()
            .attempts
            .len(),
        1
    );
}

#[tokio::test]
async fn attempts_page_newest_first_with_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("s1", &["*"], false);
    let e = event(None);
    let d = delivery(&e, &s, 100);
    store.ingest(&e, &[nd(d.clone(), false)]).unwrap();
    store.durable().await.unwrap();
    for _ in 0..5 {
        finish(&store, &d, DeliveryState::Pending, false, 100);
    }
    let page1 = store.list_attempts(&tenant(), &s.id, 2, None).unwrap();
    assert_eq!(page1.attempts.len(), 2);
    assert!(page1.attempts[0].id > page1.attempts[1].id);
    let page2 = store
        .list_attempts(&tenant(), &s.id, 2, page1.next.as_ref())
        .unwrap();
    let page3 = store
        .list_attempts(&tenant(), &s.id, 2, page2.next.as_ref())
        .unwrap();
    assert_eq!(page3.attempts.len(), 1);
    assert_eq!(page3.next, None);
    assert!(page2.attempts[0].id < page1.attempts[1].id);
}

#[tokio::test]
async fn a_change_left_in_the_journal_is_applied_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let kept = sub("kept", &["*"], false);
    let key = key2(kept.tenant.as_str(), kept.id.as_str());
    {
        let store = SledStore::open(dir.path(), &Options::default()).unwrap();
        let trees = &*store.inner.trees;
        // Two changes journaled, neither applied (a crash in between):
        // the second one's removal must win over the first's insert.
        trees
            .journal
            .record_only(trees, |c| {
                c.insert(Slot::Subscriptions, key.as_slice(), encode(&kept));
                c.insert(
                    Slot::Subscriptions,
                    b"acme\0gone".as_slice(),
                    b"{}".as_slice(),
                );
                c.insert(
                    Slot::Queue,
                    queue_key(Timestamp(5), &DeliveryId::generate()),
                    b"x".as_slice(),
                );
            })
            .unwrap();
        trees
            .journal
            .record_only(trees, |c| {
                c.remove(Slot::Subscriptions, b"acme\0gone".as_slice())
            })
            .unwrap();
        assert_eq!(store.queue_len(), 0);
        store.durable().await.unwrap();
    }
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    assert_eq!(
        store.get_subscription(&tenant(), &kept.id).unwrap(),
        Some(kept.clone())
    );
    assert!(
        store
            .inner
            .trees
            .subscriptions
            .get(b"acme\0gone")
            .unwrap()
            .is_none()
    );
    assert_eq!(store.queue_len(), 1);
    // Read into the index too, as anything stored before the start is.
    assert!(store.current_subscription(&tenant(), &kept.id).is_some());
    // Dropped once a flush covers what they wrote; new changes go on.
    assert_eq!(store.inner.trees.journal.len(), 2);
    store.durable().await.unwrap();
    assert_eq!(store.inner.trees.journal.len(), 0);
    store.put_subscription(&sub("next", &["*"], false)).unwrap();
    store.durable().await.unwrap();
    assert_eq!(store.inner.trees.journal.len(), 0);
    assert_eq!(store.list_subscriptions(&tenant()).unwrap().len(), 2);
}

#[test]
fn a_change_reads_its_own_writes_and_a_failed_one_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let trees = &*store.inner.trees;
    trees.events.insert(b"before", b"old".as_slice()).unwrap();
    trees
        .write(|c| {
            assert_eq!(c.get(Slot::Events, b"before")?.unwrap(), b"old");
            c.insert(Slot::Events, b"before".as_slice(), b"new".as_slice());
            assert_eq!(c.get(Slot::Events, b"before")?.unwrap(), b"new");
            c.remove(Slot::Events, b"before".as_slice());
            assert!(c.get(Slot::Events, b"before")?.is_none());
            // Same key, another tree: untouched.
            assert!(c.get(Slot::Deliveries, b"before")?.is_none());
            c.insert(Slot::Events, b"after".as_slice(), b"1".as_slice());
            Ok(())
        })
        .unwrap();
    assert!(trees.events.get(b"before").unwrap().is_none());
    assert_eq!(trees.events.get(b"after").unwrap().unwrap(), b"1");
    let failed: Result<()> = trees.write(|c| {
        c.insert(Slot::Events, b"never".as_slice(), b"1".as_slice());
        Err(StoreError::Journal("the change gives up".into()))
    });
    assert!(failed.is_err());
    assert!(trees.events.get(b"never").unwrap().is_none());
    assert_eq!(trees.journal.len(), 1);
}

#[test]
fn index_matches_exact_and_patterns_and_ignores_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    store
        .put_subscription(&sub("a", &["project.published"], false))
        .unwrap();
    store
        .put_subscription(&sub("b", &["project.*", "project.published"], false))
        .unwrap();
    store.put_subscription(&sub("c", &["*"], false)).unwrap();
    let mut off = sub("d", &["*"], false);
    off.enabled = false;
    store.put_subscription(&off).unwrap();
    let ids = |t: &str| {
        let mut v: Vec<String> = store
            .matching_subscriptions(&tenant(), t)
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids("project.published"), ["a", "b", "c"]);
    assert_eq!(ids("project.deleted"), ["b", "c"]);
    assert_eq!(ids("other"), ["c"]);
    store
        .delete_subscription(&tenant(), &"c".parse().unwrap())
        .unwrap();
    assert_eq!(ids("other"), Vec::<String>::new());
}

#[tokio::test]
async fn a_claimed_delivery_is_handed_out_once_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("s", &["*"], false);
    store.put_subscription(&s).unwrap();
    let e = event(None);
    let d = delivery(&e, &s, 100);
    store.ingest(&e, &[nd(d.clone(), false)]).unwrap();
    store.durable().await.unwrap();

    let first = store.claim_due(Timestamp(100), 10, 10).unwrap();
    assert_eq!(
        first.ready.iter().map(|q| &q.id).collect::<Vec<_>>(),
        [&d.id]
    );
    assert_eq!(
        store.claim_due(Timestamp(100), 10, 10).unwrap(),
        Claimed::default()
    );
    // Unrecorded: it is handed out again.
    store.release(&d.id, Release::Unrecorded);
    let again = store.claim_due(Timestamp(100), 10, 10).unwrap();
    assert_eq!(
        again.ready.iter().map(|q| &q.id).collect::<Vec<_>>(),
        [&d.id]
    );
    // Done without a record (nothing to do): not handed out again.
    store.release(&d.id, Release::Done);
    assert!(
        store
            .claim_due(Timestamp(100), 10, 10)
            .unwrap()
            .ready
            .is_empty()
    );
}

#[tokio::test]
async fn a_sweep_deletes_settled_old_events_old_attempts_and_orphan_blobs_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let s = sub("s", &["*"], false);
    store.put_subscription(&s).unwrap();
    let old_settled = event(Some("src-a"));
    let old_pending = event(None);
    let young = Event {
        timestamp: Timestamp(5000),
        ..event(None)
    };
    let mut ds = Vec::new();
    for e in [&old_settled, &old_pending, &young] {
        let d = delivery(e, &s, 100);
        store.ingest(e, &[nd(d.clone(), false)]).unwrap();
        ds.push(d);
    }
    store.durable().await.unwrap();
    finish(&store, &ds[0], DeliveryState::Delivered, false, 100);
    finish(&store, &ds[2], DeliveryState::Delivered, false, 100);
    let record = |sha: &str| PluginRecord {
        name: "shaper".parse().unwrap(),
        sha256: sha.into(),
        size: 1,
        updated_at: Timestamp(0),
        timeout_ms: 100,
        memory_bytes: 1 << 20,
    };
    store.put_plugin(&record("aa"), b"a").unwrap();
    store.put_plugin(&record("bb"), b"b").unwrap();

    let cutoffs = Cutoffs {
        events_before: Timestamp(2000),
        attempts_before: Timestamp(1),
    };
    let (mut total, mut calls) = (Swept::default(), 0);
    while !total.done {
        total += store.sweep(&cutoffs, 1).unwrap();
        calls += 1;
        assert!(calls < 50, "a sweep ends");
    }
    assert!(
        calls > 3,
        "a budget of 1 splits the sweep into chunks ({calls})"
    );
    assert_eq!(
        (
            total.events,
            total.deliveries,
            total.attempts,
            total.plugin_blobs
        ),
        (1, 1, 2, 1)
    );
    assert_eq!(store.get_event(&old_settled.id).unwrap(), None);
    assert!(store.event_deliveries(&old_settled.id).unwrap().is_empty());
    assert!(
        store.get_event(&old_pending.id).unwrap().is_some(),
        "pending stays"
    );
    assert!(store.get_event(&young.id).unwrap().is_some(), "young stays");
    let attempts = store.list_attempts(&tenant(), &s.id, 10, None).unwrap();
    assert!(attempts.attempts.is_empty());
    assert_eq!(store.plugin_blob("aa").unwrap(), None);
    assert_eq!(store.plugin_blob("bb").unwrap(), Some(b"b".to_vec()));
    // The source id went with its event: the same id is new again.
    let again = event(Some("src-a"));
    let ingested = store.ingest(&again, &[]).unwrap();
    assert!(matches!(ingested, Ingested::New(_)), "{ingested:?}");
    // A second sweep finds nothing more.
    let mut second = Swept::default();
    while !second.done {
        second += store.sweep(&cutoffs, 100).unwrap();
    }
    assert_eq!(
        (second.events, second.attempts, second.plugin_blobs),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn one_subscription_gets_at_most_its_share_of_claims_and_the_rest_follow_releases() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let (slow, fast) = (sub("slow", &["*"], false), sub("fast", &["*"], false));
    store.put_subscription(&slow).unwrap();
    store.put_subscription(&fast).unwrap();
    let mut slow_ds = Vec::new();
    for due in [100, 101, 102] {
        let e = event(None);
        let d = delivery(&e, &slow, due);
        store.ingest(&e, &[nd(d.clone(), false)]).unwrap();
        slow_ds.push(d);
    }
    let e = event(None);
    let fast_d = delivery(&e, &fast, 103);
    store.ingest(&e, &[nd(fast_d.clone(), false)]).unwrap();
    store.durable().await.unwrap();
    let ids = |c: Claimed| c.ready.into_iter().map(|q| q.id).collect::<Vec<_>>();

    // One each: the slow subscription's others wait, the fast one is not held up.
    let first = ids(store.claim_due(Timestamp(200), 10, 1).unwrap());
    assert_eq!(first, [slow_ds[0].id.clone(), fast_d.id.clone()]);
    assert!(ids(store.claim_due(Timestamp(200), 10, 1).unwrap()).is_empty());
    // The slow one's attempt ends: its next delivery is handed out, though
    // the scan had passed it.
    finish(&store, &slow_ds[0], DeliveryState::Delivered, false, 200);
    store.release(&slow_ds[0].id, Release::Done);
    assert_eq!(
        ids(store.claim_due(Timestamp(200), 10, 1).unwrap()),
        [slow_ds[1].id.clone()]
    );
}

#[tokio::test]
async fn the_store_size_follows_writes_and_deletes_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    let live = |store: &SledStore| store.inner.trees.journal.live_bytes();
    let recount = |store: &SledStore| super::usage::count(&store.inner.trees).unwrap();
    assert_eq!(live(&store), 0, "a new store holds nothing");
    let s = sub("s", &["*"], false);
    store.put_subscription(&s).unwrap();
    let big = Event {
        payload: crate::model::Payload::from_value(&serde_json::json!({"xml": "x".repeat(50_000)})),
        ..event(None)
    };
    let d = delivery(&big, &s, 100);
    store.ingest(&big, &[nd(d.clone(), false)]).unwrap();
    store.durable().await.unwrap();
    finish(&store, &d, DeliveryState::Delivered, false, 100);
    let full = live(&store);
    assert!(full > 50_000, "{full}");
    assert_eq!(full, recount(&store), "the count is exact while running");

    let cutoffs = Cutoffs {
        events_before: Timestamp(2000),
        attempts_before: Timestamp(u64::MAX),
    };
    while !store.sweep(&cutoffs, 100).unwrap().done {}
    let swept = live(&store);
    assert!(
        swept < 5_000,
        "the sweep freed the event: {swept} of {full}"
    );
    assert_eq!(swept, recount(&store));
    store.durable().await.unwrap();
    drop(store);

    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    assert_eq!(live(&store), swept, "the saved count is read back");
    // A store without a saved count (written before it existed) is counted.
    store.inner.trees.meta.clear().unwrap();
    store.inner.trees.meta.flush().unwrap();
    drop(store);
    let store = SledStore::open(dir.path(), &Options::default()).unwrap();
    assert_eq!(live(&store), swept);
}
