//! The one error type a transform returns.
//!
//! The host only ever sees the message: an `Err` from a transform fails the
//! attempt as `transform_failed` with this text, so the message is written
//! for the person reading the attempt log.

use std::fmt;

/// Why a transform failed, as a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    /// The message the host records on the attempt.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message, consumed.
    pub(crate) fn into_message(self) -> String {
        self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::msg(e.to_string())
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::msg(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::msg(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_keep_the_message() {
        assert_eq!(Error::from("bad").message(), "bad");
        assert_eq!(Error::from(String::from("worse")).to_string(), "worse");
        let json_err = serde_json::from_str::<u32>("x").unwrap_err();
        assert!(Error::from(json_err).message().contains("expected value"));
    }
}
