//! Builds the workspace's plugins from source for tests.
//!
//! Unit tests here and the end-to-end tests in `tests/e2e/` both need real
//! components. [`build_plugin`] compiles `plugins/<name>` for `wasm32-wasip2`
//! with its own target directory (`target/plugins`, so it never fights the
//! host build over `target/debug`), at most once per test process, and hands
//! back the `.wasm` path. It only shells out to cargo, so it is always
//! compiled, and integration tests can call it through the library.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use parking_lot::Mutex;

/// The workspace root (the host crate's parent directory).
pub fn workspace_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate lives inside the workspace")
}

/// Builds `plugins/<name>` (package `name`) for `wasm32-wasip2` in release
/// mode and returns the component's path. Panics with cargo's output when
/// the build fails: it is for tests.
pub fn build_plugin(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    // Held across the build: concurrent tests asking for the same plugin wait
    // for one build instead of racing cargo's lock.
    let mut built = BUILT.lock();
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let target_dir = workspace_dir().join("target").join("plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_dir())
        .env("CARGO_TARGET_DIR", &target_dir)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--release",
            "-p",
            name,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build plugin {name}: {e}"));
    assert!(
        output.status.success(),
        "building plugin {name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        wasm.is_file(),
        "cargo built plugin {name} but {} is missing",
        wasm.display()
    );
    built.insert(name.to_owned(), wasm.clone());
    wasm
}
