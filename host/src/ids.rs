//! Typed identifiers.
//!
//! hookshape's own ids are a short prefix that says what they name (`evt_`,
//! `sub_`, `dlv_`, `att_`) followed by a ULID: 48 bits of milliseconds and 80
//! random bits in Crockford base32. They sort by creation time as plain byte
//! strings, so sled range scans and API cursors work on them directly. One
//! process-wide monotonic generator keeps ids made in the same millisecond in
//! creation order, which is what makes "ingest order" well defined.
//!
//! Tenants and config-declared subscription ids are names chosen by people;
//! they are validated here so nothing downstream has to.

use std::fmt;
use std::str::FromStr;

use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A malformed id or name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {why}")]
pub struct InvalidId {
    /// What was being parsed, e.g. `tenant`.
    pub what: &'static str,
    /// The rejected text.
    pub value: String,
    /// What a valid one looks like.
    pub why: &'static str,
}

fn next_ulid() -> ulid::Ulid {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut guard = GENERATOR.lock();
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    // The generator only fails when 2^80 ids are made in one millisecond.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// What every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, later than every id this process made before.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, next_ulid()))
            }

            /// The id as text, prefix included.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The ULID after the prefix: 16 bytes that sort as the id does,
            /// for structures that hold many ids.
            pub fn ulid(&self) -> ulid::Ulid {
                Self::parse_ulid(&self.0).expect("validated when the id was made")
            }

            /// The ULID of the id spelled `s`, without keeping the text;
            /// `None` when `s` is not such an id.
            pub fn parse_ulid(s: &str) -> Option<ulid::Ulid> {
                ulid::Ulid::from_string(s.strip_prefix($prefix)?).ok()
            }

            /// The id with this ULID, as [`Self::generate`] would spell it.
            pub fn from_ulid(ulid: ulid::Ulid) -> Self {
                Self(format!("{}{}", $prefix, ulid))
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let invalid = |why| InvalidId { what: $what, value: s.to_owned(), why };
                let rest = s.strip_prefix($prefix).ok_or_else(|| invalid(concat!("it must start with ", $prefix)))?;
                ulid::Ulid::from_string(rest).map_err(|_| invalid("the part after the prefix is not a ULID"))?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// An event stored by hookshape; also the `webhook-id` of its requests.
    EventId, "evt_", "event id"
);
prefixed_id!(
    /// One event's journey to one subscription.
    DeliveryId, "dlv_", "delivery id"
);
prefixed_id!(
    /// One try at a delivery.
    AttemptId, "att_", "attempt id"
);

macro_rules! named_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $valid:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidId { what: $what, value: s.to_owned(), why: $rule })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_slug(s: &str, max: usize, first: fn(u8) -> bool, rest: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= max && first(b[0]) && b[1..].iter().all(|&c| rest(c))
}

fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn lower_name_char(c: u8) -> bool {
    lower_alnum(c) || c == b'_' || c == b'-'
}

fn any_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

fn any_name_char(c: u8) -> bool {
    any_alnum(c) || matches!(c, b'_' | b'-' | b'.')
}

named_id!(
    /// A workspace; created implicitly by use.
    Tenant, "tenant", |s| is_slug(s, 64, lower_alnum, lower_name_char),
    "a tenant name is [a-z0-9][a-z0-9_-]{0,63}"
);
named_id!(
    /// A subscription: `sub_<ULID>` when made through the API, the admin's own
    /// name when declared in the config file.
    SubscriptionId, "subscription id", |s| is_slug(s, 64, any_alnum, any_name_char),
    "a subscription id is [A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
);
named_id!(
    /// A plugin's name, as in `[plugins.NAME]` and `PUT /v1/plugins/NAME`.
    PluginName, "plugin name", |s| is_slug(s, 64, lower_alnum, lower_name_char),
    "a plugin name is [a-z0-9][a-z0-9_-]{0,63}"
);

impl SubscriptionId {
    /// A new id for an API-created subscription: `sub_` and a ULID.
    pub fn generate() -> Self {
        Self(format!("sub_{}", next_ulid()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_sort_in_creation_order() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].as_str().starts_with("evt_"));
        assert_eq!(ids[0].as_str().len(), 4 + 26);
    }

    #[test]
    fn prefixed_ids_parse_only_with_their_prefix() {
        let id = DeliveryId::generate();
        assert_eq!(id.as_str().parse::<DeliveryId>().unwrap(), id);
        assert!(id.as_str().parse::<EventId>().is_err());
        assert!("dlv_notaulid".parse::<DeliveryId>().is_err());
    }

    #[test]
    fn an_id_is_its_ulid_spelled_with_its_prefix() {
        let ids: Vec<DeliveryId> = (0..100).map(|_| DeliveryId::generate()).collect();
        for id in &ids {
            assert_eq!(&DeliveryId::from_ulid(id.ulid()), id);
        }
        let ulids: Vec<_> = ids.iter().map(DeliveryId::ulid).collect();
        assert!(ulids.is_sorted(), "ULIDs sort as the ids do");
        let event = EventId::generate();
        assert_eq!(EventId::from_ulid(event.ulid()), event);
    }

    #[test]
    fn tenant_names_follow_the_contract() {
        assert!("acme".parse::<Tenant>().is_ok());
        assert!("a".repeat(64).parse::<Tenant>().is_ok());
        assert!("a".repeat(65).parse::<Tenant>().is_err());
        assert!("Acme".parse::<Tenant>().is_err());
        assert!("-acme".parse::<Tenant>().is_err());
        assert!("".parse::<Tenant>().is_err());
        assert!("ac/me".parse::<Tenant>().is_err());
    }

    #[test]
    fn config_subscription_ids_are_slugs() {
        assert!("mode-revenue-alert".parse::<SubscriptionId>().is_ok());
        assert!(
            SubscriptionId::generate()
                .as_str()
                .parse::<SubscriptionId>()
                .is_ok()
        );
        assert!("../x".parse::<SubscriptionId>().is_err());
        assert!("a b".parse::<SubscriptionId>().is_err());
    }
}
