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

/// The toolchain of a plugin written in another language than Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// componentize-py, with `plugin-sdk/python` installed; the module is `app.py`.
    Python,
    /// node with `plugin-sdk/js`'s dependencies installed (`npm ci`); the module is `plugin.js`.
    JavaScript,
}

impl Toolchain {
    /// What is missing for this toolchain, if anything.
    pub fn missing(self) -> Option<String> {
        let probe = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        match self {
            Toolchain::Python if !probe("componentize-py", &["--version"]) => {
                Some("componentize-py (pip install componentize-py==0.25.1)".into())
            }
            Toolchain::Python if !probe("python3", &["-c", "import hookshape_plugin"]) => {
                Some("the Python SDK (pip install ./plugin-sdk/python)".into())
            }
            Toolchain::JavaScript if !probe("node", &["--version"]) => Some("node".into()),
            Toolchain::JavaScript
                if !js_sdk_dir()
                    .join("node_modules/@bytecodealliance/componentize-js")
                    .is_dir() =>
            {
                Some("the JavaScript SDK's dependencies (npm ci in plugin-sdk/js)".into())
            }
            _ => None,
        }
    }

    /// True when a test that needs this toolchain can run. When it is
    /// missing, says so on stderr, and panics when the `CI` environment
    /// variable is set: CI installs every toolchain, so a missing one is a
    /// broken CI setup, not a reason to skip.
    pub fn available(self) -> bool {
        let Some(missing) = self.missing() else {
            return true;
        };
        assert!(
            std::env::var_os("CI").is_none(),
            "{self:?} plugins cannot be built: {missing} is not installed"
        );
        eprintln!("skipped: {self:?} plugins cannot be built: {missing} is not installed");
        false
    }

    /// Builds the plugin project in `dir` into `out` (a `.wasm` path).
    /// Panics with the tool's output when the build fails.
    pub fn build(self, dir: &Path, out: &Path) {
        let mut command = match self {
            Toolchain::Python => {
                let mut c = Command::new("componentize-py");
                c.args(["componentize", "app", "-o"]).arg(out);
                c
            }
            Toolchain::JavaScript => {
                let mut c = Command::new("node");
                c.arg(js_sdk_dir().join("build.js"))
                    .args(["plugin.js", "-o"])
                    .arg(out);
                c
            }
        };
        let output = command
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the {self:?} build in {}: {e}", dir.display()));
        assert!(
            output.status.success() && out.is_file(),
            "the {self:?} build in {} failed:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn js_sdk_dir() -> PathBuf {
    workspace_dir().join("plugin-sdk").join("js")
}

/// Builds `plugins/<name>` with `toolchain` into `target/plugins/<name>.wasm`
/// at most once per test process; `None` (after saying why) when the
/// toolchain is missing outside CI.
pub fn build_foreign_plugin(name: &str, toolchain: Toolchain) -> Option<PathBuf> {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    if !toolchain.available() {
        return None;
    }
    let mut built = BUILT.lock();
    if let Some(path) = built.get(name) {
        return Some(path.clone());
    }
    let out_dir = workspace_dir().join("target").join("plugins");
    std::fs::create_dir_all(&out_dir).expect("creating target/plugins");
    let out = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
    toolchain.build(&workspace_dir().join("plugins").join(name), &out);
    built.insert(name.to_owned(), out.clone());
    Some(out)
}
