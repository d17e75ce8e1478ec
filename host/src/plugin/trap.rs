//! What a trapped plugin said before it trapped, read from its stderr: the
//! trap itself (`unreachable`, a panic in a language runtime) names the
//! runtime's line, not the author's mistake.
//!
//! - Rust: the panic hook prints `thread '...' panicked at src/lib.rs:10:5:`
//!   then the message lines.
//! - Python (componentize-py): an uncaught exception prints its traceback,
//!   then the runtime panics with "Python function threw an unexpected
//!   exception"; the traceback's last line (`ValueError: ...`) and innermost
//!   frame say what happened.
//! - JavaScript (componentize-js): a thrown `Error` cannot become the
//!   `string` error the world declares, so the runtime prints "expected a
//!   string, received [object]" and aborts; the error's message is lost, so
//!   the explanation says how to keep it.

use crate::model::LogLine;

/// The most useful explanation of a trap found in the call's stderr lines.
pub(super) fn explain(logs: &[LogLine]) -> Option<String> {
    let stderr: Vec<&str> = logs
        .iter()
        .filter(|l| l.level == "stderr")
        .map(|l| l.message.as_str())
        .collect();
    python_exception(&stderr)
        .or_else(|| javascript_throw(&stderr))
        .or_else(|| rust_panic(&stderr))
}

/// `panicked at src/lib.rs:10:5: message`.
fn rust_panic(stderr: &[&str]) -> Option<String> {
    let at = stderr.iter().rposition(|l| l.contains(" panicked at "))?;
    let location = stderr[at]
        .split_once(" panicked at ")
        .map(|(_, loc)| loc.trim_end_matches(':'))?;
    let message: Vec<&str> = stderr[at + 1..]
        .iter()
        .take_while(|l| !l.starts_with("note: "))
        .copied()
        .collect();
    Some(format!("panicked at {location}: {}", message.join("\n")))
}

/// `uncaught Python exception: ValueError: boom (File "app.py", line 6, in helper)`.
fn python_exception(stderr: &[&str]) -> Option<String> {
    let start = stderr
        .iter()
        .rposition(|l| *l == "Traceback (most recent call last):")?;
    let rest = &stderr[start + 1..];
    // Frames are indented; the first unindented line is the exception.
    let at = rest
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with(' '))?;
    let frame = rest[..at]
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with("File "))
        .map(|l| format!(" ({})", l.trim()));
    Some(format!(
        "uncaught Python exception: {}{}",
        rest[at],
        frame.unwrap_or_default()
    ))
}

fn javascript_throw(stderr: &[&str]) -> Option<String> {
    let line = stderr
        .iter()
        .find(|l| l.starts_with("expected a string, received "))?;
    Some(format!(
        "the JavaScript transform threw a value that is not a string ({line}): throw a \
         string, or build with the hookshape-plugin SDK, which turns a thrown Error into its \
         message"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stderr(lines: &[&str]) -> Vec<LogLine> {
        let mut logs = vec![LogLine {
            level: "info".into(),
            message: "starting".into(),
        }];
        logs.extend(lines.iter().map(|l| LogLine {
            level: "stderr".into(),
            message: (*l).into(),
        }));
        logs
    }

    #[test]
    fn rust_panics_give_their_location_and_message() {
        let logs = stderr(&[
            "",
            "thread '<unnamed>' panicked at src/lib.rs:83:27:",
            "index out of bounds",
            "note: run with `RUST_BACKTRACE=1` environment variable",
        ]);
        assert_eq!(
            explain(&logs).as_deref(),
            Some("panicked at src/lib.rs:83:27: index out of bounds")
        );
        assert_eq!(explain(&logs[..1]), None);
    }

    #[test]
    fn python_tracebacks_give_the_exception_and_innermost_frame() {
        // As componentize-py 0.25.1 prints them, then panics.
        let logs = stderr(&[
            "Traceback (most recent call last):",
            "  File \"/1/app.py\", line 3, in transform",
            "  File \"/1/app.py\", line 6, in helper",
            "ValueError: raw python boom",
            "",
            "thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:",
            "Python function threw an unexpected exception",
        ]);
        assert_eq!(
            explain(&logs).as_deref(),
            Some(
                "uncaught Python exception: ValueError: raw python boom \
                 (File \"/1/app.py\", line 6, in helper)"
            )
        );
    }

    #[test]
    fn javascript_errors_that_cannot_cross_say_how_to_keep_the_message() {
        let logs = stderr(&[
            "expected a string, received [object]",
            "Stack:",
            "  _utf8AllocateAndEncode@/tmp/x/sources/initializer.js:59:11",
            "Redirecting call to abort() to mozalloc_abort",
        ]);
        let message = explain(&logs).unwrap();
        assert!(
            message.starts_with("the JavaScript transform threw a value that is not a string"),
            "{message}"
        );
        assert!(message.contains("hookshape-plugin SDK"), "{message}");
    }
}
