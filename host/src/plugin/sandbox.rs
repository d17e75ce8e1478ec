//! The per-call sandbox: what one plugin instance can see and how much it may take.
//!
//! [`Sandbox`] is the data of each call's fresh `Store`: a WASI context that
//! grants nothing (no preopens, no environment, no arguments, no sockets, no
//! name lookups, closed stdin), the call's memory budget, and the call's log.
//! Log lines from the `log` import and from stdout/stderr go to one bounded
//! [`PluginLog`], in the order the plugin produced them, so a panic message
//! printed to stderr sits right after the log lines that led to it.
//!
//! Host memory a plugin can make the host spend outside its budget is
//! bounded too: random bytes per call ([`RANDOM_BYTES`]), entries in the
//! resource table ([`RESOURCES`]) and log text ([`LOG_BYTES`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::hookshape::plugin::{host, types};
use crate::model::LogLine;

/// Total log text kept per call (the same budget as a kept body): a plugin
/// that logs in a loop must not grow the host's memory, which its own memory
/// cap does not cover.
pub(super) const LOG_BYTES: usize = crate::model::KEPT_BODY_BYTES;

/// The table elements a plugin may grow a table to (a function table of a
/// large Rust program is a few thousand entries).
pub(super) const TABLE_ELEMENTS: usize = 20_000;

/// What one table element costs the budget: a function reference is a
/// pointer.
const TABLE_ELEMENT_BYTES: usize = 8;

/// The most bytes one `wasi:random` call may ask for. The host fills a
/// buffer of that size before copying it into the guest, outside the
/// budget; a plugin needs a few dozen bytes for a seed or an id, and
/// wasmtime-wasi's own default (64 MiB) times every concurrent call would be
/// gigabytes. Asking for more traps.
pub(super) const RANDOM_BYTES: u64 = 64 << 10;

/// Entries the call's resource table may hold (streams, pollables, ...).
/// A transform uses a handful; each entry is host memory outside the
/// budget, and wasmtime's default allows a million. Past it the WASI call
/// that would add one traps.
pub(super) const RESOURCES: usize = 10_000;

/// Store data for one transform call.
pub(super) struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryBudget,
    log: PluginLog,
}

impl Sandbox {
    pub(super) fn new(memory_bytes: u64, log: PluginLog) -> Sandbox {
        let wasi = WasiCtxBuilder::new()
            .stdout(CapturedOutput::new(log.clone(), Stream::Stdout))
            .stderr(CapturedOutput::new(log.clone(), Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(RANDOM_BYTES)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(RESOURCES);
        Sandbox {
            wasi,
            table,
            limiter: MemoryBudget::new(memory_bytes),
            log,
        }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for Sandbox {}

impl host::Host for Sandbox {
    fn log(&mut self, level: host::Level, message: String) {
        let level = match level {
            host::Level::Trace => "trace",
            host::Level::Debug => "debug",
            host::Level::Info => "info",
            host::Level::Warn => "warn",
            host::Level::Error => "error",
        };
        self.log.lock().push(level, message);
    }
}

/// The call's memories and tables would take more than its budget.
#[derive(Debug, thiserror::Error)]
#[error("memories and tables would take {wanted} bytes, past the call's {cap}-byte budget")]
pub(super) struct MemoryCapExceeded {
    pub(super) wanted: usize,
    pub(super) cap: usize,
}

/// One budget for every linear memory and table of the call's instance
/// together (a component may have several of each), in bytes: the
/// plugin's `memory` limit. Unlike `wasmtime::StoreLimits`, going past it
/// traps with a typed error ([`MemoryCapExceeded`]), so the report can tell
/// the limit from any other trap; a refused grow would otherwise surface as
/// the guest's own out-of-memory abort, indistinguishable from a bug.
///
/// Nothing shrinks in Wasm, so the count only grows. A grow this allows but
/// wasmtime then fails (which the pool's limits make unreachable in
/// practice) stays counted: erring on the side of less.
pub(super) struct MemoryBudget {
    cap: usize,
    used: usize,
}

impl MemoryBudget {
    pub(super) fn new(memory_bytes: u64) -> MemoryBudget {
        MemoryBudget {
            cap: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            used: 0,
        }
    }

    fn take(&mut self, bytes: usize) -> wasmtime::Result<bool> {
        let wanted = self.used.saturating_add(bytes);
        if wanted > self.cap {
            return Err(MemoryCapExceeded {
                wanted,
                cap: self.cap,
            }
            .into());
        }
        self.used = wanted;
        Ok(true)
    }
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Past the memory's own declared maximum: `memory.grow` fails as
            // the Wasm spec says; that is the program's business, not ours.
            return Ok(false);
        }
        self.take(desired.saturating_sub(current))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_ELEMENTS || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.take(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }
}

/// One call's log lines, shared by the `log` import and the stdout/stderr
/// streams.
#[derive(Clone, Default)]
pub(super) struct PluginLog(Arc<Mutex<LogBuffer>>);

impl PluginLog {
    pub(super) fn lock(&self) -> MutexGuard<'_, LogBuffer> {
        self.0.lock()
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn level(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Default)]
pub(super) struct LogBuffer {
    lines: Vec<LogLine>,
    bytes: usize,
    dropped: usize,
    /// Text printed to stdout and stderr since their last newline.
    partial: [Vec<u8>; 2],
}

impl LogBuffer {
    /// Keeps the line if it fits in [`LOG_BYTES`], else counts it as dropped.
    fn push(&mut self, level: &str, message: String) {
        if self.bytes + message.len() > LOG_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine {
            level: level.to_owned(),
            message,
        });
    }

    /// Appends printed text; each complete line becomes a log line.
    fn print(&mut self, stream: Stream, bytes: &[u8]) {
        let mut partial = std::mem::take(&mut self.partial[stream as usize]);
        partial.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = partial[start..].iter().position(|&b| b == b'\n') {
            self.push_printed(stream, &partial[start..start + end]);
            start += end + 1;
        }
        partial.drain(..start);
        while partial.len() >= LOG_BYTES {
            // A line that never ends: cut it rather than buffer it all.
            self.push_printed(stream, &partial[..LOG_BYTES]);
            partial.drain(..LOG_BYTES);
        }
        self.partial[stream as usize] = partial;
    }

    fn push_printed(&mut self, stream: Stream, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.push(stream.level(), String::from_utf8_lossy(line).into_owned());
    }

    /// The call's lines: unterminated printed text becomes a last line, and a
    /// final warning says how many lines did not fit.
    pub(super) fn take_lines(&mut self) -> Vec<LogLine> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let partial = std::mem::take(&mut self.partial[stream as usize]);
            if !partial.is_empty() {
                self.push_printed(stream, &partial);
            }
        }
        let mut lines = std::mem::take(&mut self.lines);
        if self.dropped > 0 {
            lines.push(LogLine {
                level: "warn".to_owned(),
                message: format!(
                    "{} more log lines dropped: a call keeps at most {} KiB of logs",
                    self.dropped,
                    LOG_BYTES / 1024
                ),
            });
        }
        lines
    }
}

/// The guest's stdout or stderr: every write lands in the call's log, never
/// blocks, and never fails (text past the log budget is counted, not kept),
/// so printing cannot make a plugin trap.
#[derive(Clone)]
struct CapturedOutput {
    log: PluginLog,
    stream: Stream,
}

impl CapturedOutput {
    fn new(log: PluginLog, stream: Stream) -> CapturedOutput {
        CapturedOutput { log, stream }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        self.log.lock().print(self.stream, bytes);
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // WASI's largest single write is 4 KiB; any permit at least that big works.
        Ok(LOG_BYTES)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels_and_messages(lines: &[LogLine]) -> Vec<(&str, &str)> {
        lines
            .iter()
            .map(|l| (l.level.as_str(), l.message.as_str()))
            .collect()
    }

    #[test]
    fn printed_text_becomes_lines_in_order_with_imported_ones() {
        let log = PluginLog::default();
        let out = CapturedOutput::new(log.clone(), Stream::Stdout);
        let err = CapturedOutput::new(log.clone(), Stream::Stderr);
        out.write_bytes(b"one\r\ntw");
        log.lock().push("info", "from the import".into());
        out.write_bytes(b"o\nthree");
        err.write_bytes(b"oops\n");
        let lines = log.lock().take_lines();
        assert_eq!(
            levels_and_messages(&lines),
            vec![
                ("stdout", "one"),
                ("info", "from the import"),
                ("stdout", "two"),
                ("stderr", "oops"),
                ("stdout", "three"),
            ]
        );
    }

    #[test]
    fn the_log_budget_drops_and_counts_extra_lines() {
        let log = PluginLog::default();
        let line = "x".repeat(1000);
        for _ in 0..100 {
            log.lock().push("debug", line.clone());
        }
        let lines = log.lock().take_lines();
        let kept = LOG_BYTES / 1000;
        assert_eq!(lines.len(), kept + 1);
        let last = lines.last().unwrap();
        assert_eq!(last.level, "warn");
        assert!(
            last.message
                .starts_with(&format!("{} more log lines dropped", 100 - kept)),
            "{}",
            last.message
        );
    }

    #[test]
    fn an_endless_line_is_cut_instead_of_buffered() {
        let log = PluginLog::default();
        let out = CapturedOutput::new(log.clone(), Stream::Stdout);
        let chunk = vec![b'y'; 4096];
        for _ in 0..(LOG_BYTES / 4096 + 2) {
            out.write_bytes(&chunk);
        }
        let lines = log.lock().take_lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].message.len(), LOG_BYTES);
        assert!(lines[1].message.starts_with("1 more log lines dropped"));
    }

    #[test]
    fn the_budget_counts_every_memory_and_table_together() {
        let mut budget = MemoryBudget::new(1 << 20);
        // Two memories of half the budget each fit; a third byte does not.
        assert!(budget.memory_growing(0, 1 << 19, None).unwrap());
        assert!(budget.memory_growing(0, 1 << 19, None).unwrap());
        let err = budget.memory_growing(0, 1, None).unwrap_err();
        let exceeded = err.downcast_ref::<MemoryCapExceeded>().unwrap();
        assert_eq!((exceeded.wanted, exceeded.cap), ((1 << 20) + 1, 1 << 20));

        let mut budget = MemoryBudget::new(1 << 20);
        assert!(budget.memory_growing(0, 1 << 19, None).unwrap());
        // Growing counts the difference, not the new size again.
        assert!(
            budget
                .memory_growing(1 << 19, (1 << 20) - 1024, None)
                .unwrap()
        );
        // A table's elements are charged at pointer size.
        assert!(budget.table_growing(0, 128, None).unwrap());
        assert!(budget.table_growing(128, 129, None).is_err());
    }

    #[test]
    fn refusals_by_declared_maximums_do_not_count() {
        let mut budget = MemoryBudget::new(1 << 20);
        assert!(!budget.memory_growing(0, 1 << 19, Some(1 << 18)).unwrap());
        assert!(!budget.table_growing(0, 64, Some(32)).unwrap());
        assert!(!budget.table_growing(0, TABLE_ELEMENTS + 1, None).unwrap());
        assert!(budget.memory_growing(0, 1 << 20, None).unwrap());
    }
}
