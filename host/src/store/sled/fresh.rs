//! Just-ingested events kept in memory for their deliveries' first
//! attempts, so an attempt does not read and decode what was written a
//! moment before. Bounded: past [`FRESH_CAPACITY`] deliveries the oldest
//! go, and their attempts read the store as any other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::ids::DeliveryId;
use crate::model::{Delivery, Event};

/// The most deliveries whose ingest copy and event are kept.
pub(super) const FRESH_CAPACITY: usize = 4096;

/// Deliveries as ingested, with their events, oldest first.
#[derive(Default)]
pub(super) struct Fresh {
    kept: HashMap<DeliveryId, (Delivery, Arc<Event>)>,
    /// Insertion order; ids already taken are skipped when evicting.
    order: VecDeque<DeliveryId>,
}

impl Fresh {
    /// Keeps the ingest copy of `delivery` and its event, evicting the
    /// oldest past the capacity.
    pub(super) fn keep(&mut self, delivery: Delivery, event: Arc<Event>) {
        while self.kept.len() >= FRESH_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.kept.remove(&old);
                }
                None => break,
            }
        }
        // Taken ids stay in `order` until evicted; keep it bounded too.
        if self.order.len() >= 2 * FRESH_CAPACITY {
            let kept = &self.kept;
            self.order.retain(|id| kept.contains_key(id));
        }
        self.order.push_back(delivery.id.clone());
        self.kept.insert(delivery.id.clone(), (delivery, event));
    }

    /// Takes what was kept for delivery `id`, if anything.
    pub(super) fn take(&mut self, id: &DeliveryId) -> Option<(Delivery, Arc<Event>)> {
        self.kept.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::ids::EventId;
    use crate::model::DeliveryState;

    fn kept(fresh: &mut Fresh, event: &Arc<Event>) -> DeliveryId {
        let d = Delivery {
            id: DeliveryId::generate(),
            tenant: event.tenant.clone(),
            event_id: event.id.clone(),
            subscription_id: "s".parse().unwrap(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Some(Timestamp(1)),
            created_at: Timestamp(1),
        };
        let id = d.id.clone();
        fresh.keep(d, event.clone());
        id
    }

    #[test]
    fn taken_once_and_the_oldest_evicted_past_the_capacity() {
        let event = Arc::new(Event {
            id: EventId::generate(),
            source_id: None,
            event_type: "t".into(),
            tenant: "acme".parse().unwrap(),
            timestamp: Timestamp(1),
            content_type: "application/json".into(),
            payload: crate::model::Payload::from_value(&serde_json::json!({})),
        });
        let mut fresh = Fresh::default();
        let first = kept(&mut fresh, &event);
        let second = kept(&mut fresh, &event);
        assert!(fresh.take(&second).is_some());
        assert!(fresh.take(&second).is_none(), "taken once");
        for _ in 0..3 * FRESH_CAPACITY {
            kept(&mut fresh, &event);
        }
        assert!(fresh.take(&first).is_none(), "evicted");
        assert!(fresh.kept.len() <= FRESH_CAPACITY);
        assert!(fresh.order.len() <= 2 * FRESH_CAPACITY);
    }
}
