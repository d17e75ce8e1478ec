//! Repository paths and Git identities: the file path `{directory}/{slug(name)}--{file_id(id)}.xml`
//! built only from characters that cannot leave the directory or confuse Git, and the checks on the
//! configured directory, branch and author.

use thiserror::Error;

/// Longest slug kept from a project name, in ASCII characters.
const MAX_SLUG_LEN: usize = 64;
/// The slug of a name with no ASCII letter or digit left after transliteration.
const FALLBACK_SLUG: &str = "project";
/// Longest file id, after hex encoding; keeps the file name well under the usual 255-byte limit.
const MAX_FILE_ID_LEN: usize = 128;
/// Longest configured directory, branch, author name or email.
const MAX_SETTING_LEN: usize = 200;

/// A configured directory, branch or author field that cannot be used, or a project id too long
/// for a file name.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("directory {0:?}: {1}")]
    Directory(String, &'static str),
    #[error("branch {0:?}: {1}")]
    Branch(String, &'static str),
    #[error("author.{field} {value:?}: {reason}")]
    Author {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("project id {0:?} is too long for a file name")]
    IdTooLong(String),
}

/// A project file's folder inside the repository, relative, without a trailing slash; empty for
/// the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory(String);

impl Directory {
    /// Accepts `/`-separated segments of `[A-Za-z0-9._-]` that do not start with a dot (so neither
    /// `..` nor `.git`), ignoring trailing slashes.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let fail = |reason| Err(PathError::Directory(raw.to_owned(), reason));
        if raw.starts_with('/') {
            return fail("must be relative to the repository root");
        }
        if raw.len() > MAX_SETTING_LEN {
            return fail("is too long");
        }
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Self(String::new()));
        }
        for segment in trimmed.split('/') {
            if segment.is_empty() {
                return fail("has an empty segment");
            }
            if segment.starts_with('.') {
                return fail("has a segment starting with a dot");
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return fail("may only hold ASCII letters, digits, '.', '_', '-' and '/'");
            }
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The repository path of a project's file.
    pub fn file_path(&self, name: Option<&str>, id: &str) -> Result<String, PathError> {
        let file = format!("{}--{}.xml", slug(name.unwrap_or_default()), file_id(id)?);
        Ok(if self.0.is_empty() {
            file
        } else {
            format!("{}/{file}", self.0)
        })
    }
}

/// Lowercase ASCII letters and digits joined by single dashes: other scripts are transliterated,
/// everything else separates words. At most 64 characters; `project` when nothing is left.
pub fn slug(name: &str) -> String {
    let mut slug = String::with_capacity(MAX_SLUG_LEN);
    // Control characters separate words like spaces do; transliteration alone would drop them
    // and glue the words around them together.
    let spaced: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    for c in deunicode::deunicode(&spaced).chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() > MAX_SLUG_LEN {
            break;
        }
    }
    slug.truncate(MAX_SLUG_LEN);
    match slug.trim_end_matches('-') {
        "" => FALLBACK_SLUG.to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

/// The id as is when it holds only `[A-Za-z0-9_-]`, else its UTF-8 bytes in lowercase hex.
pub fn file_id(id: &str) -> Result<String, PathError> {
    let safe = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    let encoded = if safe {
        id.to_owned()
    } else {
        id.bytes().map(|b| format!("{b:02x}")).collect()
    };
    if encoded.len() > MAX_FILE_ID_LEN {
        return Err(PathError::IdTooLong(id.to_owned()));
    }
    Ok(encoded)
}

/// Checks a branch name against the rules of `git check-ref-format --branch`.
pub fn check_branch(branch: &str) -> Result<(), PathError> {
    let fail = |reason| Err(PathError::Branch(branch.to_owned(), reason));
    if branch.is_empty() {
        return fail("is empty");
    }
    if branch.len() > MAX_SETTING_LEN {
        return fail("is too long");
    }
    if branch
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return fail("holds a space, a control character or one of ~ ^ : ? * [ \\");
    }
    if branch.starts_with('-') || branch == "@" {
        return fail("is not a valid branch name");
    }
    if branch.contains("..") || branch.contains("@{") || branch.contains("//") {
        return fail("holds '..', '@{' or '//'");
    }
    if branch.starts_with('/') || branch.ends_with('/') || branch.ends_with('.') {
        return fail("starts or ends with '/', or ends with '.'");
    }
    if branch
        .split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        return fail("has a part starting with '.' or ending with '.lock'");
    }
    Ok(())
}

/// Checks an author name or email for what a Git identity line cannot hold.
pub fn check_author_field(field: &'static str, value: &str) -> Result<(), PathError> {
    let fail = |reason| {
        Err(PathError::Author {
            field,
            value: value.to_owned(),
            reason,
        })
    };
    if value.trim().is_empty() {
        return fail("is empty");
    }
    if value.len() > MAX_SETTING_LEN {
        return fail("is too long");
    }
    if value
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
    {
        return fail("holds a control character, '<' or '>'");
    }
    if field == "email" && value.chars().any(char::is_whitespace) {
        return fail("holds whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "5b7e1c2a-91f4-4d0b-a3c6-0e2f8d9a4b11";

    fn assert_safe(path: &str) {
        assert!(!path.starts_with('/'), "{path}");
        assert!(!path.contains(".."), "{path}");
        assert!(!path.contains('\\'), "{path}");
        assert!(!path.chars().any(char::is_control), "{path}");
        assert!(
            path.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
            "{path}"
        );
    }

    #[test]
    fn slug_lowercases_and_collapses_separators() {
        assert_eq!(slug("Sales Insights"), "sales-insights");
        assert_eq!(slug("  Q4 -- Forecast!!  (draft) "), "q4-forecast-draft");
        assert_eq!(slug("R&D_2026.v2"), "r-d-2026-v2");
    }

    #[test]
    fn slug_transliterates_unicode() {
        assert_eq!(slug("Ventas Año Fiscal"), "ventas-ano-fiscal");
        assert_eq!(slug("Übersicht Größe"), "ubersicht-grosse");
        assert!(slug("Продажи").chars().all(|c| c.is_ascii_lowercase()));
    }

    #[test]
    fn slug_of_hostile_names_stays_a_single_safe_segment() {
        for name in [
            "../../etc/passwd",
            "/abs/path",
            "a\\b\\..\\c",
            "tab\there\nnewline\0nul\u{1b}[31m",
            ".git",
            "..",
        ] {
            let s = slug(name);
            assert!(!s.is_empty(), "{name:?}");
            assert!(!s.starts_with('-') && !s.ends_with('-'), "{name:?} -> {s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name:?} -> {s}"
            );
        }
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("/abs/path"), "abs-path");
        assert_eq!(slug("tab\tnl\ndel\u{7f}cr\rend"), "tab-nl-del-cr-end");
    }

    #[test]
    fn slug_falls_back_when_nothing_is_left() {
        assert_eq!(slug(""), "project");
        assert_eq!(slug("   "), "project");
        assert_eq!(slug("../.."), "project");
        assert_eq!(slug("\u{0}\u{7f}"), "project");
    }

    #[test]
    fn slug_is_cut_at_64_without_a_trailing_dash() {
        let long = "word ".repeat(40);
        let s = slug(&long);
        assert!(s.len() <= 64, "{}", s.len());
        assert!(!s.ends_with('-'));
        assert_eq!(slug(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn file_id_keeps_safe_ids_and_hex_encodes_the_rest() {
        assert_eq!(file_id(UUID).unwrap(), UUID);
        assert_eq!(file_id("proj_42").unwrap(), "proj_42");
        assert_eq!(file_id("../x").unwrap(), "2e2e2f78");
        assert_eq!(file_id("a b").unwrap(), "612062");
        assert_eq!(file_id("é").unwrap(), "c3a9");
        assert_eq!(
            file_id(&"z".repeat(200)).unwrap_err(),
            PathError::IdTooLong("z".repeat(200))
        );
    }

    #[test]
    fn file_path_joins_directory_slug_and_id() {
        let dir = Directory::parse("projects").unwrap();
        assert_eq!(
            dir.file_path(Some("Sales Insights"), UUID).unwrap(),
            format!("projects/sales-insights--{UUID}.xml")
        );
        assert_eq!(
            dir.file_path(None, "p1").unwrap(),
            "projects/project--p1.xml"
        );
        let root = Directory::parse("").unwrap();
        assert_eq!(root.file_path(Some("X"), "p1").unwrap(), "x--p1.xml");
        let nested = Directory::parse("bi/semantic-layer/").unwrap();
        assert_eq!(
            nested.file_path(Some("X"), "p1").unwrap(),
            "bi/semantic-layer/x--p1.xml"
        );
    }

    #[test]
    fn file_paths_from_hostile_values_are_safe() {
        let dir = Directory::parse("projects").unwrap();
        for (name, id) in [
            ("../../etc/passwd", "../../etc/passwd"),
            ("/abs", "/abs"),
            ("ctl\u{0}\u{1f}\r\n", "id\u{0}\n"),
            ("Ünïcödé 数据", "ïd"),
            ("", "C:\\Windows"),
        ] {
            let path = dir.file_path(Some(name), id).unwrap();
            assert_safe(&path);
            assert!(path.starts_with("projects/"), "{path}");
            assert_eq!(path.matches('/').count(), 1, "{path}");
        }
    }

    #[test]
    fn directory_rejects_escapes_and_odd_characters() {
        for bad in [
            "/etc", "../up", "a/../b", "a/./b", ".git", "a//b", "a\\b", "sp ace", "tab\t", "ü",
        ] {
            assert!(Directory::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Directory::parse(&"a".repeat(201)).is_err());
        assert_eq!(
            Directory::parse("..").unwrap_err().to_string(),
            "directory \"..\": has a segment starting with a dot"
        );
        assert!(Directory::parse("projects/v2.1_x-y").is_ok());
    }

    #[test]
    fn branch_follows_git_ref_rules() {
        for good in ["main", "feature/semantic-layer", "release-2026.11", "a@b"] {
            assert_eq!(check_branch(good), Ok(()), "{good}");
        }
        for bad in [
            "", "-x", "@", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "/a", "a/",
            "a.", "a//b", "a/.b", "x.lock", "a@{1}", "a\nb",
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn author_fields_must_fit_a_git_identity() {
        assert_eq!(check_author_field("name", "Maria López"), Ok(()));
        assert_eq!(check_author_field("email", "hookshape@localhost"), Ok(()));
        assert!(check_author_field("name", "  ").is_err());
        assert!(check_author_field("name", "Eve <eve@x>").is_err());
        assert!(check_author_field("name", "line\nbreak").is_err());
        assert!(check_author_field("email", "a b@c").is_err());
        assert_eq!(
            check_author_field("email", "").unwrap_err().to_string(),
            "author.email \"\": is empty"
        );
    }
}
