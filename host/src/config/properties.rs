//! Property tests (fuzzing in plain `cargo test`) of the config reader: any
//! text, and any document built from the real sections, keys and odd
//! values, is read without a panic, and every problem names a line of the
//! text.

use std::path::Path;

use proptest::prelude::*;

use super::Config;

const SECTIONS: &[&str] = &[
    "[server]",
    "[storage]",
    "[retention]",
    "[auth]",
    "[[auth.tokens]]",
    "[delivery]",
    "[plugins.p]",
    "[plugins.\"Bad Name\"]",
    "[[subscriptions]]",
    "[subscriptions.plugin_config]",
    "[unknown]",
];
const KEYS: &[&str] = &[
    "listen",
    "max_event_bytes",
    "max_connections",
    "header_read_timeout",
    "path",
    "sync",
    "max_size",
    "events",
    "open",
    "token",
    "role",
    "tenants",
    "timeout",
    "retry_schedule",
    "allow_private_targets",
    "memory",
    "id",
    "tenant",
    "url",
    "plugin",
    "secret",
    "headers",
    "enabled",
    "ordered",
    "nope",
];
const VALUES: &[&str] = &[
    "\"127.0.0.1:0\"",
    "\"0.0.0.0:80\"",
    "\"5s\"",
    "\"-1s\"",
    "\"32MiB\"",
    "\"99999999999GiB\"",
    "0",
    "-1",
    "18446744073709551616",
    "1e400",
    "true",
    "\"\"",
    "\"env:UNSET\"",
    "[]",
    "[\"*\"]",
    "[\"5s\", \"x\"]",
    "{}",
    "{ \"X-A\" = \"b\" }",
    "\"http://10.0.0.1/\"",
    "\"https://ok.example/\"",
    "\"whsec_\"",
    "\"admin\"",
    "1979-05-27T07:32:00Z",
    "'''x'''",
];

/// A document of real section headers and `key = value` lines.
fn document() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        prop::sample::select(SECTIONS).prop_map(str::to_owned),
        (prop::sample::select(KEYS), prop::sample::select(VALUES))
            .prop_map(|(k, v)| format!("{k} = {v}")),
        "\\PC{0,20}",
    ];
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

fn check_every_error_names_a_line(text: &str) -> Result<(), TestCaseError> {
    let lines = text.split('\n').count().max(1);
    if let Err(errors) = Config::parse(text, Path::new("fuzz.toml"), &|_| None) {
        prop_assert!(!errors.0.is_empty());
        for e in &errors.0 {
            let line = e.line;
            prop_assert!(
                line.is_some_and(|l| (1..=lines).contains(&l)),
                "no line in 1..={lines} for {e:?} in:\n{text}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_read_without_panicking_and_errors_name_a_line(text in "\\PC{0,200}") {
        check_every_error_names_a_line(&text)?;
    }

    #[test]
    fn config_shaped_documents_are_read_without_panicking_and_errors_name_a_line(
        text in document()
    ) {
        check_every_error_names_a_line(&text)?;
    }
}
