//! `hookshape plugin new`: writes a plugin project that tests, builds and
//! dry-runs as generated, from the templates in `plugin-sdk/templates/`
//! (compiled into the binary).

use std::path::{Path, PathBuf};

/// A plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with `hookshape-plugin-sdk`, built for `wasm32-wasip2`.
    Rust,
    /// Python with `hookshape_plugin`, built with componentize-py.
    Python,
    /// JavaScript with `hookshape-plugin`, built with componentize-js.
    Js,
}

/// Why no project was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a package name in every language.
    #[error(
        "invalid plugin name {0:?}: use lowercase letters, digits and '-', starting with a letter"
    )]
    Name(String),
    /// Something is already there.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The SDK directory of the source tree this binary was built from: the
/// default for `--sdk`.
pub fn default_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate lives inside the workspace")
        .join("plugin-sdk")
}

/// Each language's files: path in the project, template text.
fn templates(lang: Lang) -> &'static [(&'static str, &'static str)] {
    macro_rules! files {
        ($lang:literal: $($path:literal),+) => {
            &[$(($path, include_str!(concat!("../../plugin-sdk/templates/", $lang, "/", $path)))),+]
        };
    }
    match lang {
        Lang::Rust => files!("rust": "Cargo.toml", "src/lib.rs", "README.md", "event.json"),
        Lang::Python => {
            files!("python": "app.py", "tests/test_app.py", "pyproject.toml", "README.md", "event.json")
        }
        Lang::Js => {
            files!("js": "plugin.js", "test/plugin.test.js", "package.json", "README.md", "event.json")
        }
    }
}

/// Writes the project `dir/name`, its SDK dependency pointing at `sdk`
/// (the repository's `plugin-sdk`); returns the project directory.
pub fn create(dir: &Path, name: &str, lang: Lang, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(ScaffoldError::Name(name.to_owned()));
    }
    let project = dir.join(name);
    if project.exists() {
        return Err(ScaffoldError::Exists(project));
    }
    let sdk = std::path::absolute(sdk).unwrap_or_else(|_| sdk.to_path_buf());
    let sdk = sdk.display().to_string();
    let crate_name = name.replace('-', "_");
    for (path, template) in templates(lang) {
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk);
        let file = project.join(path);
        let written = std::fs::create_dir_all(file.parent().expect("a file in the project"))
            .and_then(|()| std::fs::write(&file, text));
        written.map_err(|source| ScaffoldError::Write { path: file, source })?;
    }
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_every_language() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "My", "1st", "a_b", "a-", "a/b", ".."] {
            assert!(
                matches!(
                    create(dir.path(), bad, Lang::Rust, Path::new("/sdk")),
                    Err(ScaffoldError::Name(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn projects_are_written_with_the_sdk_path_and_never_over_anything() {
        let dir = tempfile::tempdir().unwrap();
        let project = create(
            dir.path(),
            "chat-digest",
            Lang::Js,
            Path::new("/opt/hookshape/plugin-sdk"),
        )
        .unwrap();
        let package = std::fs::read_to_string(project.join("package.json")).unwrap();
        assert!(package.contains(r#""name": "chat-digest""#), "{package}");
        assert!(
            package.contains("file:/opt/hookshape/plugin-sdk/js"),
            "{package}"
        );
        assert!(package.contains("-o chat_digest.wasm"), "{package}");
        assert!(!package.contains("{{"), "{package}");
        assert!(project.join("test/plugin.test.js").is_file());
        assert!(matches!(
            create(dir.path(), "chat-digest", Lang::Python, Path::new("/sdk")),
            Err(ScaffoldError::Exists(_))
        ));
    }
}
