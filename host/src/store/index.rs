//! The in-memory subscription index: what ingest matches events against
//! and attempts run with, without a read per event (both backends keep one).

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{SubscriptionId, Tenant};
use crate::model::Subscription;

/// Enabled subscriptions by tenant and event type, so matching an event costs
/// a hash lookup plus the tenant's wildcard patterns, not a scan of them all.
/// Adding, changing or removing one subscription touches only its own
/// entries, so declaring thousands at start is linear.
#[derive(Default)]
pub(crate) struct SubscriptionIndex {
    tenants: HashMap<Tenant, TenantIndex>,
}

#[derive(Default)]
struct TenantIndex {
    all: HashMap<SubscriptionId, Arc<Subscription>>,
    exact: HashMap<String, Vec<Arc<Subscription>>>,
    patterns: Vec<Arc<Subscription>>,
}

impl TenantIndex {
    fn insert(&mut self, sub: Arc<Subscription>) {
        self.remove(&sub.id);
        if sub.enabled {
            if sub.events.iter().any(|p| p.ends_with('*')) {
                self.patterns.push(sub.clone());
            }
            for exact in sub.events.iter().filter(|p| !p.ends_with('*')) {
                let list = self.exact.entry(exact.clone()).or_default();
                if !list.iter().any(|s| s.id == sub.id) {
                    list.push(sub.clone());
                }
            }
        }
        self.all.insert(sub.id.clone(), sub);
    }

    fn remove(&mut self, id: &SubscriptionId) {
        let Some(old) = self.all.remove(id) else {
            return;
        };
        self.patterns.retain(|s| &s.id != id);
        for exact in old.events.iter().filter(|p| !p.ends_with('*')) {
            if let Some(list) = self.exact.get_mut(exact) {
                list.retain(|s| &s.id != id);
                if list.is_empty() {
                    self.exact.remove(exact);
                }
            }
        }
    }
}

impl SubscriptionIndex {
    pub(crate) fn rebuild(&mut self, subs: Vec<Subscription>) {
        self.tenants.clear();
        for s in subs {
            self.put(s);
        }
    }

    pub(crate) fn put(&mut self, sub: Subscription) {
        self.tenants
            .entry(sub.tenant.clone())
            .or_default()
            .insert(Arc::new(sub));
    }

    pub(crate) fn remove(&mut self, tenant: &Tenant, id: &SubscriptionId) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.remove(id);
        }
    }

    pub(crate) fn get(&self, tenant: &Tenant, id: &SubscriptionId) -> Option<Arc<Subscription>> {
        self.tenants.get(tenant)?.all.get(id).cloned()
    }

    pub(crate) fn matching(&self, tenant: &Tenant, event_type: &str) -> Vec<Arc<Subscription>> {
        let Some(t) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<Subscription>> = t.exact.get(event_type).cloned().unwrap_or_default();
        for sub in t.patterns.iter().filter(|s| s.matches(event_type)) {
            if !out.iter().any(|s| s.id == sub.id) {
                out.push(sub.clone());
            }
        }
        out
    }
}
