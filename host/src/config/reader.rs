//! A reader over toml's spanned document tree that turns every problem it
//! meets into a [`ConfigError`] with a line and a dotted key, and carries on,
//! so one pass reports everything wrong with a file. serde's derive stops at
//! the first error, which is why the config is read by hand from
//! [`DeTable`] rather than deserialized.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// A value in the document with the byte range it came from.
pub(super) type Node<'i> = Spanned<DeValue<'i>>;

/// Collects the problems found in one file.
pub(super) struct Reader<'a> {
    file: &'a Path,
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

/// A table being read, with its dotted path and where it starts.
pub(super) struct Section<'t, 'i> {
    table: &'t DeTable<'i>,
    path: String,
    span: Range<usize>,
}

impl<'t, 'i> Section<'t, 'i> {
    /// The whole document.
    pub fn root(table: &'t Spanned<DeTable<'i>>) -> Self {
        Section {
            table: table.get_ref(),
            path: String::new(),
            span: table.span(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'t Node<'i>> {
        self.table.get(key)
    }

    /// The dotted path of one of this table's keys.
    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn entries(
        &self,
    ) -> impl Iterator<Item = (&'t Spanned<toml::de::DeString<'i>>, &'t Node<'i>)> {
        self.table.iter()
    }
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a Path, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Reader {
            file,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// Records a problem at the line holding byte `span.start`.
    pub fn error(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let line = span.map(|s| self.line_of(s.start));
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// Every problem recorded, in file order.
    pub fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| e.line);
        self.errors
    }

    /// Reports every key of `section` that is not in `known`.
    pub fn deny_unknown(&mut self, section: &Section<'_, '_>, known: &[&str]) {
        for (key, _) in section.entries() {
            if !known.contains(&key.get_ref().as_ref()) {
                let expected = known.join(", ");
                self.error(
                    Some(key.span()),
                    &section.path(key.get_ref()),
                    format!("unknown key; expected one of: {expected}"),
                );
            }
        }
    }

    /// Opens `node` as a table with the given keys, reporting anything else.
    pub fn table<'t, 'i>(
        &mut self,
        node: &'t Node<'i>,
        path: String,
        known: &[&str],
    ) -> Option<Section<'t, 'i>> {
        let section = self.open(node, path)?;
        self.deny_unknown(&section, known);
        Some(section)
    }

    /// Opens `section.key`, when present, as a table with the given keys.
    pub fn subtable<'t, 'i>(
        &mut self,
        section: &Section<'t, 'i>,
        key: &str,
        known: &[&str],
    ) -> Option<Section<'t, 'i>> {
        self.table(section.get(key)?, section.path(key), known)
    }

    /// Opens `section.key`, when present, as a table whose keys are names
    /// chosen by the admin (`[plugins.NAME]`).
    pub fn map<'t, 'i>(&mut self, section: &Section<'t, 'i>, key: &str) -> Option<Section<'t, 'i>> {
        self.open(section.get(key)?, section.path(key))
    }

    fn open<'t, 'i>(&mut self, node: &'t Node<'i>, path: String) -> Option<Section<'t, 'i>> {
        let DeValue::Table(table) = node.get_ref() else {
            self.error(
                Some(node.span()),
                &path,
                expected("a table", node.get_ref()),
            );
            return None;
        };
        Some(Section {
            table,
            path,
            span: node.span(),
        })
    }

    /// Opens `section.key`, when present, as an array of tables with the
    /// given keys; `[[key]]` is how the file is expected to spell it.
    pub fn array_of_tables<'t, 'i>(
        &mut self,
        section: &Section<'t, 'i>,
        key: &str,
        known: &[&str],
    ) -> Vec<Section<'t, 'i>> {
        let Some(node) = section.get(key) else {
            return Vec::new();
        };
        let path = section.path(key);
        let DeValue::Array(items) = node.get_ref() else {
            self.error(
                Some(node.span()),
                &path,
                format!(
                    "{}; write each entry as [[{path}]]",
                    expected("an array of tables", node.get_ref())
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.table(item, format!("{path}[{i}]"), known))
            .collect()
    }

    /// Reads `section.key` with `convert`, reporting a failure at the value.
    /// `None` when the key is absent or its value was reported.
    pub fn optional<T>(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        convert: impl FnOnce(&DeValue<'_>) -> Result<T, String>,
    ) -> Option<T> {
        let node = section.get(key)?;
        convert(node.get_ref())
            .map_err(|message| self.error(Some(node.span()), &section.path(key), message))
            .ok()
    }

    /// Like [`Reader::optional`], and reports the key when it is absent.
    pub fn required<T>(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        convert: impl FnOnce(&DeValue<'_>) -> Result<T, String>,
    ) -> Option<T> {
        if section.get(key).is_none() {
            self.error(
                Some(section.span.clone()),
                &section.path(key),
                "missing; this key is required",
            );
            return None;
        }
        self.optional(section, key, convert)
    }

    /// Reads `section.key` as an array, converting each element and reporting
    /// each failure at its element (`key[i]`). `None` when the key is absent
    /// (reported when `required`) or anything in it was reported.
    pub fn list<T>(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        required: bool,
        mut convert: impl FnMut(&DeValue<'_>) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let path = section.path(key);
        let Some(node) = section.get(key) else {
            if required {
                self.error(
                    Some(section.span.clone()),
                    &path,
                    "missing; this key is required",
                );
            }
            return None;
        };
        let DeValue::Array(items) = node.get_ref() else {
            self.error(
                Some(node.span()),
                &path,
                expected("an array", node.get_ref()),
            );
            return None;
        };
        let mut values = Vec::with_capacity(items.len());
        let mut all_good = true;
        for (i, item) in items.iter().enumerate() {
            match convert(item.get_ref()) {
                Ok(value) => values.push(value),
                Err(message) => {
                    all_good = false;
                    self.error(Some(item.span()), &format!("{path}[{i}]"), message);
                }
            }
        }
        all_good.then_some(values)
    }
}

/// `prefix.key`, quoting `key` the way TOML would when it is not a bare key.
pub(super) fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// "expected WHAT, found an integer".
pub(super) fn expected(what: &str, found: &DeValue<'_>) -> String {
    let found = match found {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    };
    format!("expected {what}, found {found}")
}

pub(super) fn string<'v>(value: &'v DeValue<'_>) -> Result<&'v str, String> {
    value.as_str().ok_or_else(|| expected("a string", value))
}

pub(super) fn boolean(value: &DeValue<'_>) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| expected("true or false", value))
}

/// A non-negative integer.
pub(super) fn unsigned(value: &DeValue<'_>) -> Result<u64, String> {
    let DeValue::Integer(int) = value else {
        return Err(expected("a whole number", value));
    };
    if int.as_str().starts_with('-') {
        return Err(format!("must not be negative, found {int}"));
    }
    u64::from_str_radix(int.as_str(), int.radix()).map_err(|_| format!("{int} is too large"))
}

/// A string in the units of [`super::parse_duration`].
pub(super) fn duration(value: &DeValue<'_>) -> Result<std::time::Duration, String> {
    super::parse_duration(string(value).map_err(|_| expected(r#"a duration such as "5s""#, value))?)
}

/// A byte count, or a string in the units of [`super::parse_size`].
pub(super) fn size(value: &DeValue<'_>) -> Result<u64, String> {
    match value {
        DeValue::Integer(_) => unsigned(value),
        DeValue::String(s) => super::parse_size(s),
        _ => Err(expected(
            r#"a size such as "32MiB" or a number of bytes"#,
            value,
        )),
    }
}
