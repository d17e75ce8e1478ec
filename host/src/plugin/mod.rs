//! The WebAssembly plugin runtime: loading transform components and running them.
//!
//! One [`PluginRuntime`] owns one wasmtime `Engine` for the whole process,
//! tuned for many short calls: the pooling allocator keeps pre-reserved
//! slots for instances, memories, tables and fiber stacks; linear memories
//! start as copy-on-write mappings of each component's initial image; an
//! epoch ticker thread drives timeouts. [`PluginRuntime::load`] checks that
//! the bytes are a component of the `transformer` world
//! (`plugin-sdk/wit/world.wit`), compiles it (or maps an earlier compilation
//! from the disk cache) and pre-resolves its imports once.
//! [`PluginRuntime::transform`] then runs one call in a fresh `Store` with
//! nothing granted (see [`sandbox`]), under the plugin's timeout and one
//! memory budget for all its memories and tables, checks what it returned
//! against the output bounds ([`MAX_BODY_BYTES`], [`MAX_HEADERS`],
//! [`MAX_HEADER_VALUE_BYTES`]), and reports the outcome, the plugin's log
//! lines and the time taken.
//!
//! Calls run with wasmtime's async support directly on the caller's task
//! rather than on a blocking thread: there is no thread hop per call (the
//! budget for instantiate + call + drop is tens of microseconds), a plugin
//! that blocks inside a WASI call (a sleep, a poll) holds no thread and is
//! cancelled by the same timeout, and a plugin that computes for longer than
//! a couple of milliseconds yields to the executor at every epoch tick after
//! that, so it holds a worker for at most that long at a time.

mod cache;
mod sandbox;
#[doc(hidden)]
pub mod testing;
mod trap;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, Trap, UpdateDeadline,
};

use crate::headers::HeaderSet;
use crate::model::{Event, LogLine};
use cache::DiskCache;
use sandbox::{MemoryCapExceeded, PluginLog, Sandbox, TABLE_ELEMENTS};

mod bindings {
    wasmtime::component::bindgen!({
        world: "transformer",
        path: "../plugin-sdk/wit",
        exports: { default: async },
    });
}

use bindings::hookshape::plugin::types as wit;
use bindings::{Transformer, TransformerPre};

/// The pool's instance slots, and so the ceiling of [`running_limit`] on a
/// machine with many cores. It sizes every pool below; slots reserve address
/// space, not memory, so a ceiling far above a small machine's limit costs
/// nothing there.
const MAX_INSTANCES: u32 = 256;

/// The pool's per-component maxima (see [`engine_config`]). A Python plugin
/// (componentize-py: CPython, libc and its shims linked as separate modules)
/// starts 14 core instances, a JavaScript one (componentize-js) 3 and a
/// Rust one 3; 32 leaves a Python plugin room for native-extension modules.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 16;

/// How often the ticker thread advances the engine's epoch. Running code
/// checks its deadline only at ticks, so this is both the timeout's
/// precision and the longest a computing plugin holds an executor thread
/// before yielding. 1 ms keeps a 100 ms timeout within 1% and costs one
/// wake-up of one thread per millisecond.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How long a call runs before it starts yielding to the executor at each
/// epoch tick. A typical transform finishes in well under this: yielding it
/// midway would put it at the back of a busy run queue and multiply its
/// wall time for nothing, while a long computation still yields every tick.
const RUN_BEFORE_YIELDING: Duration = Duration::from_millis(2);

/// The largest linear memory any plugin can have: all a 32-bit memory can
/// address, so the per-plugin cap ([`PluginLimits::memory_bytes`]) is the
/// only limit that matters.
const MAX_MEMORY_BYTES: u64 = 4 << 30;

/// The largest body a plugin may ask hookshape to send: 16 times the
/// default `max_event_bytes`, room for any reshaped event, while a flood of
/// attempts cannot make the host hold and send arbitrary amounts.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The most extra headers a plugin may set, and the longest value: the
/// bounds a subscription's own headers have (`max_headers_per_subscription`
/// and its 8 KiB value), so a plugin cannot send what an admin could not
/// configure.
pub const MAX_HEADERS: usize = 64;
/// The longest header value a plugin may set, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 << 10;

/// What `transform` may run: resources and time for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall time for instantiate + call, after which the call is interrupted.
    pub timeout: Duration,
    /// The most bytes the call's linear memories and tables may take
    /// together; growing past it traps.
    pub memory_bytes: u64,
}

impl PluginLimits {
    /// The contract's defaults, for a plugin that names no limits: 100 ms
    /// and 32 MiB.
    pub const DEFAULT: PluginLimits = PluginLimits {
        timeout: Duration::from_millis(100),
        memory_bytes: 32 << 20,
    };
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits::DEFAULT
    }
}

/// A component that was not accepted as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary: it does not start with the `\\0asm` header")]
    NotWasm,
    /// A core module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component: build the plugin for the \
         wasm32-wasip2 target (a cdylib built for wasm32-wasip2 is a component)"
    )]
    CoreModule,
    /// The component does not validate or compile.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// It imports something the host does not provide.
    #[error(
        "the component imports something hookshape does not provide (plugins get WASI 0.2 \
         and hookshape:plugin/host only): {0}"
    )]
    UnsupportedImport(String),
    /// It imports `wasi:http`, as componentize-js builds do by default.
    #[error(
        "the component imports wasi:http, which hookshape does not give plugins: build a \
         JavaScript plugin with `componentize-js --disable http fetch-event` (the \
         hookshape-plugin JS SDK's build does); plugins cannot make requests, they return the \
         one hookshape sends"
    )]
    ImportsHttp,
    /// It does not export the `transformer` world.
    #[error(
        "the component does not implement the hookshape `transformer` world (it must export \
         `transform: func(event, subscription) -> result<outcome, string>`): {0}"
    )]
    WrongWorld(String),
    /// wasmtime could not be set up.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// The on-disk compile cache is unusable.
    #[error("cannot use the plugin cache directory {path}: {source}")]
    CacheDir {
        /// The cache directory.
        path: String,
        /// What went wrong with it.
        source: std::io::Error,
    },
}

/// A compiled, validated plugin, ready to instantiate.
pub struct LoadedPlugin {
    /// Hex SHA-256 of the component bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// True when the native code came from the disk cache instead of a compile.
    pub from_cache: bool,
    /// How long compiling (or mapping the cached code) and linking took.
    pub load_duration: Duration,
    pre: TransformerPre<Sandbox>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("from_cache", &self.from_cache)
            .field("load_duration", &self.load_duration)
            .finish_non_exhaustive()
    }
}

/// What one transform call gets to see.
#[derive(Debug, Clone, Copy)]
pub struct TransformInput<'a> {
    /// The event to transform.
    pub event: &'a Event,
    /// The subscription's id.
    pub subscription_id: &'a str,
    /// The subscription's URL.
    pub url: &'a str,
    /// The subscription's `plugin_config` as JSON text (`{}` when unset).
    pub config_json: &'a str,
}

/// What the plugin decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this request.
    Deliver(PluginRequest),
    /// Send nothing, for this reason.
    Skip(String),
}

/// The request a plugin asked for; its headers and content type are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRequest {
    /// The body to send.
    pub body: Vec<u8>,
    /// `None`: send `application/json`.
    pub content_type: Option<String>,
    /// Extra headers, sent after the subscription's.
    pub headers: HeaderSet,
}

/// Why a transform produced nothing to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The plugin returned an error.
    #[error("plugin error: {0}")]
    Plugin(String),
    /// The call ran past its time limit.
    #[error("plugin exceeded its {}ms timeout", .0.as_millis())]
    Timeout(Duration),
    /// The plugin tried to grow its memory past the limit (bytes).
    #[error("plugin exceeded its {} memory limit", format_bytes(*.0))]
    MemoryLimit(u64),
    /// The plugin trapped; a panic's message when there was one.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin set a reserved or malformed header or content type.
    #[error("plugin set an invalid header: {0}")]
    InvalidHeader(String),
    /// The plugin's request is larger than hookshape sends.
    #[error("plugin output too large: {0}")]
    OutputTooLarge(String),
}

/// Everything one transform call produced.
#[derive(Debug)]
pub struct TransformReport {
    /// What the plugin decided, or why it decided nothing.
    pub result: Result<Outcome, TransformError>,
    /// The `log` import's lines and whatever the plugin printed, in order.
    pub logs: Vec<LogLine>,
    /// Instantiate + call + teardown, excluding any wait for a free slot.
    pub duration: Duration,
}

/// The process's plugin engine. Cheap to share behind an `Arc`.
pub struct PluginRuntime {
    engine: wasmtime::Engine,
    linker: Linker<Sandbox>,
    disk: Option<DiskCache>,
    /// Plugins alive somewhere in the process, by sha256: loading the same
    /// bytes again shares the compiled code instead of compiling it again.
    loaded: Mutex<HashMap<String, Weak<LoadedPlugin>>>,
    /// Transforms running at once ([`running_limit`]); a burst waits for
    /// a permit instead of failing to instantiate.
    slots: Semaphore,
}

impl PluginRuntime {
    /// The engine, its epoch ticker, and the disk cache in `cache_dir` (no
    /// disk cache when `None`: every start compiles).
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, PluginError> {
        let engine = wasmtime::Engine::new(&engine_config())
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        spawn_epoch_ticker(&engine).map_err(|e| PluginError::Engine(e.to_string()))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| Transformer::add_to_linker::<_, HasSelf<Sandbox>>(&mut linker, |s| s))
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;

        let disk = cache_dir
            .map(|dir| {
                DiskCache::open(dir, &engine).map_err(|source| PluginError::CacheDir {
                    path: dir.display().to_string(),
                    source,
                })
            })
            .transpose()?;
        Ok(PluginRuntime {
            engine,
            linker,
            disk,
            loaded: Mutex::new(HashMap::new()),
            slots: Semaphore::new(running_limit()),
        })
    }

    /// Validates and compiles a component (or maps its cached compilation).
    ///
    /// This blocks for as long as a compile takes (up to a few hundred
    /// milliseconds for a typical plugin); call it off the async reactor.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<LoadedPlugin>, PluginError> {
        let started = Instant::now();
        let sha256 = hex::encode(Sha256::digest(wasm));
        if let Some(plugin) = self.loaded.lock().get(&sha256).and_then(Weak::upgrade) {
            return Ok(plugin);
        }
        check_component_header(wasm)?;

        let cached = self
            .disk
            .as_ref()
            .and_then(|disk| disk.load(&self.engine, &sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, wasm)
                    .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
                if let Some(disk) = &self.disk
                    && let Err(e) = disk.store(&component, &sha256)
                {
                    tracing::warn!(
                        path = %disk.entry_path(&sha256).display(),
                        error = %e,
                        "cannot save compiled plugin; the next start compiles it again"
                    );
                }
                component
            }
        };

        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            if imports_http(&component, &self.engine) {
                PluginError::ImportsHttp
            } else {
                PluginError::UnsupportedImport(format!("{e:#}"))
            }
        })?;
        let pre =
            TransformerPre::new(pre).map_err(|e| PluginError::WrongWorld(format!("{e:#}")))?;

        let plugin = Arc::new(LoadedPlugin {
            sha256,
            size: wasm.len(),
            from_cache,
            load_duration: started.elapsed(),
            pre,
        });
        tracing::info!(
            sha256 = %plugin.sha256,
            size = plugin.size,
            from_cache,
            duration_ms = plugin.load_duration.as_secs_f64() * 1000.0,
            "{}",
            if from_cache { "plugin loaded from the compile cache" } else { "plugin compiled" }
        );
        let mut loaded = self.loaded.lock();
        loaded.retain(|_, p| p.strong_count() > 0);
        loaded.insert(plugin.sha256.clone(), Arc::downgrade(&plugin));
        Ok(plugin)
    }

    /// Runs the plugin once on a fresh instance. Never fails as a call:
    /// every way the plugin can go wrong is in the report's `result`.
    #[tracing::instrument(
        skip_all,
        fields(event_id = %input.event.id, subscription_id = %input.subscription_id)
    )]
    pub async fn transform(
        &self,
        plugin: &LoadedPlugin,
        limits: PluginLimits,
        input: TransformInput<'_>,
    ) -> TransformReport {
        // The semaphore is never closed, so acquiring only waits.
        let _slot = self.slots.acquire().await.ok();
        let started = Instant::now();
        let log = PluginLog::default();
        let result = self.run(plugin, limits, input, log.clone()).await;
        let logs = log.lock().take_lines();
        let result = result.map_err(|error| match error {
            TransformError::Trap(trap) => {
                TransformError::Trap(trap::explain(&logs).unwrap_or(trap))
            }
            other => other,
        });
        TransformReport {
            result,
            logs,
            duration: started.elapsed(),
        }
    }

    /// Instantiates the plugin once under `limits` and drops it, calling
    /// nothing: a memory cap below the component's starting image (12.4 MiB
    /// for a Python plugin) fails here, when a config is checked, rather than
    /// at the first delivery.
    pub async fn instantiate_once(
        &self,
        plugin: &LoadedPlugin,
        limits: PluginLimits,
    ) -> Result<(), TransformError> {
        let _slot = self.slots.acquire().await.ok();
        let (mut store, deadline) = self.store(limits, PluginLog::default());
        let instantiate = plugin.pre.instantiate_async(&mut store);
        match tokio::time::timeout_at((deadline + EPOCH_TICK).into(), instantiate).await {
            Err(_elapsed) => Err(TransformError::Timeout(limits.timeout)),
            Ok(Err(error)) => Err(classify_trap(&error, limits)),
            Ok(Ok(_instance)) => Ok(()),
        }
    }

    /// A fresh store for one call under `limits`, and the call's deadline.
    fn store(&self, limits: PluginLimits, log: PluginLog) -> (wasmtime::Store<Sandbox>, Instant) {
        let memory_bytes = limits.memory_bytes.min(MAX_MEMORY_BYTES);
        let mut store = wasmtime::Store::new(&self.engine, Sandbox::new(memory_bytes, log));
        store.limiter(|sandbox| &mut sandbox.limiter);
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let yield_from = started + RUN_BEFORE_YIELDING;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let now = Instant::now();
            Ok(if now >= deadline {
                UpdateDeadline::Interrupt
            } else if now >= yield_from {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        (store, deadline)
    }

    async fn run(
        &self,
        plugin: &LoadedPlugin,
        limits: PluginLimits,
        input: TransformInput<'_>,
        log: PluginLog,
    ) -> Result<Outcome, TransformError> {
        let (mut store, deadline) = self.store(limits, log);
        let (event, subscription) = wit_input(&input);
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .call_transform(&mut store, &event, &subscription)
                .await
        };
        // The epoch callback interrupts running code; this also bounds time
        // spent blocked inside a host call, where no epoch check happens.
        let finished = tokio::time::timeout_at((deadline + EPOCH_TICK).into(), call).await;
        match finished {
            Err(_elapsed) => Err(TransformError::Timeout(limits.timeout)),
            Ok(Err(error)) => Err(classify_trap(&error, limits)),
            Ok(Ok(Err(message))) => Err(TransformError::Plugin(message)),
            Ok(Ok(Ok(outcome))) => check_outcome(outcome),
        }
    }
}

/// How many transforms run at once: twice the cores, never more than the
/// pool holds. Transforms only compute, so more calls in flight than cores
/// add no throughput; they interleave at epoch yields, each holding its own
/// pool slot with the pages it dirtied. In the dispatch benchmark (scenario 4
/// with the Python port, 2 cores) 256 at once cost 9.8 ms of CPU and 712 MiB
/// per delivery against 1.8 ms for one call alone: every call faulted its
/// image into a cold slot. Waiting for a permit is not part of a call's
/// timeout, which starts when the call does.
fn running_limit() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cores).min(MAX_INSTANCES as usize)
}

/// The one engine configuration. Every pool number derives from
/// [`MAX_INSTANCES`]; the pool only reserves address space up front, and
/// physical memory is committed as instances touch it.
fn engine_config() -> wasmtime::Config {
    let mut pool = PoolingAllocationConfig::new();
    pool
        // One component instance per concurrent transform.
        .total_component_instances(MAX_INSTANCES)
        // Every total is MAX_INSTANCES times the per-component maximum, so a
        // slot permit always means the pool can instantiate: a component
        // with many memories or tables cannot starve other plugins' calls.
        //
        // Core instances reserve nothing: in wasmtime 48 the total is a
        // counter of live instances (no slot, no address space), so sizing it
        // for every call being a Python plugin costs no memory.
        .total_core_instances(MAX_INSTANCES * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        // One linear memory per plugin in practice; 4 allows a few composed
        // components (the call's memory budget covers them all together).
        // Each memory slot reserves `memory_reservation + memory_guard_size`
        // of address space: 1024 x 4 GiB = 4 TiB, well inside x86-64's
        // 128 TiB user space.
        .total_memories(MAX_INSTANCES * MEMORIES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_memory_size(MAX_MEMORY_BYTES as usize)
        // Tables are small (8 bytes per element, 160 KiB of address space
        // per slot); the adapter shims each bring one besides the plugin's
        // own function table.
        .total_tables(MAX_INSTANCES * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .table_elements(TABLE_ELEMENTS)
        // One fiber stack per call in flight: async calls run on a fiber.
        .total_stacks(MAX_INSTANCES)
        // When a slot is reused, reset up to 1 MiB of dirtied pages with
        // memset instead of unmapping them (no page faults on the next call);
        // PAGEMAP_SCAN (Linux 6.7+) finds exactly the dirty pages so clean
        // ones cost nothing. A Rust plugin dirties its stack and a small heap.
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);

    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        // Shared memories could outlive a call and are not needed by transforms.
        .wasm_threads(false)
        // No GC heap: it would be memory outside the call's budget, and no
        // plugin toolchain we support (Rust, wasip2) emits GC types, typed
        // function references or exceptions. A component that uses them is
        // refused when it is loaded.
        .gc_support(false)
        .wasm_gc(false)
        .wasm_function_references(false)
        .wasm_exceptions(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Linear memories start as copy-on-write mappings of the compiled
        // initial image: instantiation copies nothing.
        .memory_init_cow(true)
        // 4 GiB of reservation plus a 32 MiB guard lets compiled code skip
        // bounds checks on 32-bit memories.
        .memory_reservation(MAX_MEMORY_BYTES)
        .memory_guard_size(32 << 20)
        .epoch_interruption(true);
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is gone.
fn spawn_epoch_ticker(engine: &wasmtime::Engine) -> std::io::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("hookshape-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}

/// True when the component imports any `wasi:http` interface.
fn imports_http(component: &Component, engine: &wasmtime::Engine) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/"))
}

/// Tells garbage and core modules apart from components before compiling,
/// so the error says what to fix.
fn check_component_header(wasm: &[u8]) -> Result<(), PluginError> {
    // The magic, a 2-byte version, then a 2-byte layer: 0 for core modules,
    // 1 for components.
    match wasm.get(..8) {
        Some(header) if header.starts_with(b"\0asm") => {
            match u16::from_le_bytes([header[6], header[7]]) {
                0 => Err(PluginError::CoreModule),
                _ => Ok(()),
            }
        }
        _ => Err(PluginError::NotWasm),
    }
}

fn wit_input(input: &TransformInput<'_>) -> (wit::Event, wit::Subscription) {
    let event = input.event;
    (
        wit::Event {
            id: event.id.as_str().to_owned(),
            tenant: event.tenant.as_str().to_owned(),
            event_type: event.event_type.clone(),
            timestamp: event.timestamp.to_string(),
            content_type: event.content_type.clone(),
            payload: event.payload_bytes(),
        },
        wit::Subscription {
            id: input.subscription_id.to_owned(),
            url: input.url.to_owned(),
            config: input.config_json.to_owned(),
        },
    )
}

fn classify_trap(error: &wasmtime::Error, limits: PluginLimits) -> TransformError {
    if error.downcast_ref::<MemoryCapExceeded>().is_some() {
        return TransformError::MemoryLimit(limits.memory_bytes);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => TransformError::Timeout(limits.timeout),
        Some(trap) => TransformError::Trap(trap.to_string()),
        None => TransformError::Trap(format!("{error:#}")),
    }
}

/// Refuses requests hookshape will not send: too large, or with headers
/// hookshape owns or cannot send.
fn check_outcome(outcome: wit::Outcome) -> Result<Outcome, TransformError> {
    let request = match outcome {
        wit::Outcome::Skip(reason) => return Ok(Outcome::Skip(reason)),
        wit::Outcome::Deliver(request) => request,
    };
    if request.body.len() > MAX_BODY_BYTES {
        return Err(TransformError::OutputTooLarge(format!(
            "the body has {} bytes, more than the {} hookshape sends",
            request.body.len(),
            format_bytes(MAX_BODY_BYTES as u64)
        )));
    }
    if request.headers.len() > MAX_HEADERS {
        return Err(TransformError::OutputTooLarge(format!(
            "{} headers are more than the {MAX_HEADERS} hookshape sends",
            request.headers.len()
        )));
    }
    if let Some((name, _)) = request
        .headers
        .iter()
        .find(|(_, value)| value.len() > MAX_HEADER_VALUE_BYTES)
    {
        return Err(TransformError::OutputTooLarge(format!(
            "the value of {name:?} is longer than {}",
            format_bytes(MAX_HEADER_VALUE_BYTES as u64)
        )));
    }
    if let Some(content_type) = &request.content_type
        && http::HeaderValue::from_str(content_type).is_err()
    {
        return Err(TransformError::InvalidHeader(format!(
            "content type {content_type:?} is not a valid header value"
        )));
    }
    let headers = HeaderSet::from_pairs(request.headers)
        .map_err(|e| TransformError::InvalidHeader(e.to_string()))?;
    Ok(Outcome::Deliver(PluginRequest {
        body: request.body,
        content_type: request.content_type,
        headers,
    }))
}

fn format_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
