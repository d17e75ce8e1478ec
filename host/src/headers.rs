//! The custom headers a subscription or a plugin adds to an outgoing request.
//!
//! [`HeaderSet`] is the one place their rules live: every name a valid HTTP
//! header name that hookshape does not set itself, names distinct ignoring
//! case, every value a valid HTTP header value. A set is checked entry by
//! entry as it is built or deserialized, so holding one means it is valid:
//! the API, the config file, plugin output and request building all take it
//! without checking again.
//!
//! [`stored_value`] decides what a stored attempt keeps of a header sent.

use std::collections::BTreeMap;
use std::fmt;

use http::{HeaderName, HeaderValue};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Why a header cannot be in a [`HeaderSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not a token (RFC 9110): empty, or with spaces, colons or the like.
    #[error("{0:?} is not a valid header name")]
    InvalidName(String),
    /// `webhook-*`, `content-length`, `host` or `transfer-encoding`.
    #[error("{0:?} is reserved for hookshape")]
    Reserved(String),
    /// Another name in the set differs from it only in case.
    #[error("header {first:?} is already set (header names ignore case)")]
    Duplicate {
        /// The name as the set already holds it.
        first: String,
    },
    /// The value holds a control character such as a line break.
    #[error("the value of {0:?} is not a valid header value")]
    InvalidValue(String),
}

/// Headers that neither a subscription nor a plugin may set: hookshape owns
/// the signature headers and the transport framing.
pub fn is_reserved(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-")
        || matches!(
            name.as_str(),
            "content-length" | "host" | "transfer-encoding"
        )
}

/// Valid, unreserved headers with names distinct ignoring case.
///
/// Names keep the case they were given in (the API shows `X-Team` as it was
/// posted) and serialize as a JSON object of names to values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HeaderSet(BTreeMap<String, String>);

impl HeaderSet {
    /// An empty set.
    pub fn new() -> Self {
        HeaderSet::default()
    }

    /// How many headers the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds a header, or says why it cannot be added (the set is unchanged then).
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), HeaderError> {
        let (name, value) = (name.into(), value.into());
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(HeaderError::InvalidName(name));
        }
        if is_reserved(&name) {
            return Err(HeaderError::Reserved(name));
        }
        if let Some(first) = self.0.keys().find(|n| n.eq_ignore_ascii_case(&name)) {
            return Err(HeaderError::Duplicate {
                first: first.clone(),
            });
        }
        if HeaderValue::from_str(&value).is_err() {
            return Err(HeaderError::InvalidValue(name));
        }
        self.0.insert(name, value);
        Ok(())
    }

    /// A set of these headers, or the first one's problem.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self, HeaderError>
    where
        N: Into<String>,
        V: Into<String>,
    {
        let mut set = HeaderSet::new();
        for (name, value) in pairs {
            set.insert(name, value)?;
        }
        Ok(set)
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The headers as `http` types, for a request.
    pub fn to_http(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.0.iter().map(|(n, v)| {
            (
                HeaderName::from_bytes(n.as_bytes()).expect("checked when inserted"),
                HeaderValue::from_str(v).expect("checked when inserted"),
            )
        })
    }
}

impl TryFrom<BTreeMap<String, String>> for HeaderSet {
    type Error = HeaderError;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, HeaderError> {
        HeaderSet::from_pairs(map)
    }
}

/// A JSON object of names to string values, each entry checked as it is read.
impl<'de> Deserialize<'de> for HeaderSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = HeaderSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<HeaderSet, A::Error> {
                let mut set = HeaderSet::new();
                while let Some((name, value)) = entries.next_entry::<String, String>()? {
                    set.insert(name, value).map_err(serde::de::Error::custom)?;
                }
                Ok(set)
            }
        }

        d.deserialize_map(SetVisitor)
    }
}

/// Name parts that mark a header's value as a credential.
const SENSITIVE_PARTS: &[&str] = &["token", "secret", "key", "password", "auth"];

/// What a stored attempt keeps of a sent header's value: `[redacted]` for
/// `cookie` and any name containing `token`, `secret`, `key`, `password` or
/// `auth` (so `authorization` and `proxy-authorization` too), in any case;
/// the value itself otherwise.
pub fn stored_value(name: &str, value: &HeaderValue) -> String {
    let name = name.to_ascii_lowercase();
    if name == "cookie" || SENSITIVE_PARTS.iter().any(|part| name.contains(part)) {
        "[redacted]".to_owned()
    } else {
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_headers_are_kept_as_given() {
        let set = HeaderSet::from_pairs([("X-Team", "data"), ("x-trace", "a b\tc")]).unwrap();
        let kept: Vec<(&str, &str)> = set.0.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(kept, [("X-Team", "data"), ("x-trace", "a b\tc")]);
        let http: Vec<_> = set.to_http().collect();
        assert_eq!(http[0].0, "x-team");
        assert_eq!(http[0].1, "data");
    }

    #[test]
    fn reserved_names_are_refused_in_any_case() {
        for name in [
            "Webhook-Signature",
            "webhook-id",
            "content-length",
            "HOST",
            "Transfer-Encoding",
        ] {
            assert_eq!(
                HeaderSet::new().insert(name, "x"),
                Err(HeaderError::Reserved(name.to_owned()))
            );
        }
        assert!(!is_reserved("x-team"));
        assert!(!is_reserved("content-type"));
        assert_eq!(
            HeaderError::Reserved("host".into()).to_string(),
            r#""host" is reserved for hookshape"#
        );
    }

    #[test]
    fn invalid_names_and_values_are_refused() {
        for name in ["bad name", "", "x:y", "é"] {
            assert_eq!(
                HeaderSet::new().insert(name, "v"),
                Err(HeaderError::InvalidName(name.to_owned())),
                "{name:?}"
            );
        }
        for value in ["line\nbreak", "a\r\nb", "nul\0"] {
            assert_eq!(
                HeaderSet::new().insert("x-a", value),
                Err(HeaderError::InvalidValue("x-a".to_owned())),
                "{value:?}"
            );
        }
    }

    #[test]
    fn names_differing_only_in_case_are_refused() {
        let mut set = HeaderSet::new();
        set.insert("X-Team", "a").unwrap();
        assert_eq!(
            set.insert("x-team", "b"),
            Err(HeaderError::Duplicate {
                first: "X-Team".to_owned()
            })
        );
        assert_eq!(set.0.len(), 1, "a refused header is not added");
    }

    #[test]
    fn serde_round_trips_as_a_json_object() {
        let json = r#"{"X-Team":"data","x-trace":"1"}"#;
        let set: HeaderSet = serde_json::from_str(json).unwrap();
        assert_eq!(set.0.len(), 2);
        assert_eq!(serde_json::to_string(&set).unwrap(), json);
        assert_eq!(serde_json::to_string(&HeaderSet::new()).unwrap(), "{}");
    }

    #[test]
    fn deserializing_checks_every_entry() {
        let err = |json: &str| serde_json::from_str::<HeaderSet>(json).unwrap_err();
        assert!(
            err(r#"{"Host": "x"}"#).to_string().contains("reserved"),
            "{}",
            err(r#"{"Host": "x"}"#)
        );
        assert!(
            err(r#"{"x-a": "1", "X-A": "2"}"#)
                .to_string()
                .contains("ignore case")
        );
        assert!(err(r#"{"x-a": 1}"#).to_string().contains("invalid type"));
        assert!(
            err(r#"["x-a"]"#)
                .to_string()
                .contains("an object of header")
        );
    }

    #[test]
    fn stored_values_of_credentials_are_redacted() {
        let v = HeaderValue::from_static("abc");
        for name in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-Api-Key",
            "x-auth-token",
            "X-Client-SECRET",
            "db-password",
        ] {
            assert_eq!(stored_value(name, &v), "[redacted]", "{name}");
        }
        for name in [
            "content-type",
            "x-team",
            "webhook-signature",
            "set-cookie-ish",
        ] {
            assert_eq!(stored_value(name, &v), "abc", "{name}");
        }
    }
}
