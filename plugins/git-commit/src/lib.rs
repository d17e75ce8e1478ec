//! `git-commit`: turns design-center project events into commit requests for a Git bridge, so
//! every published, snapshotted, restored, promoted or imported semantic-layer project lands in a
//! repository as one XML file, and a deleted one leaves it.
//!
//! # Events
//!
//! | event type | action |
//! | --- | --- |
//! | `project.published`, `snapshot.created`, `snapshot.restored`, `project.promoted`, `project.imported` | `upsert`: the payload must be the project XML (or a JSON string holding it) |
//! | `project.deleted` | `delete`: the project XML, or JSON `{"project_id" or "id": ..., "name"?: ...}` |
//! | anything else | skipped |
//!
//! The project's `id`, `name` and `version` are the root `<project>` element's attributes, else
//! its child elements of those names (any namespace; entities and CDATA resolved). `id` is required.
//!
//! # Request
//!
//! ```json
//! {"action": "upsert", "project_id": "5b7e1c2a-...",
//!  "path": "projects/sales-insights--5b7e1c2a-....xml",
//!  "content": "<?xml ...", "message": "project.published: Sales Insights v12 (5b7e1c2a-...)",
//!  "author": {"name": "hookshape", "email": "hookshape@localhost"}, "branch": "main",
//!  "event_id": "evt_...", "event_type": "project.published"}
//! ```
//!
//! `content` is the document byte for byte and is absent on `delete`. `path` is
//! `{directory}/{slug}--{file id}.xml`: the slug is the name lowercased, transliterated to ASCII,
//! with runs of anything but letters and digits turned into one `-`, at most 64 characters
//! (`project` when empty); the file id is the project id when it holds only `[A-Za-z0-9_-]`, else
//! its UTF-8 bytes in hex. The bridge keeps one file per `project_id` across renames.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `branch` | `"main"` | branch to commit to; must be a valid Git branch name |
//! | `author.name` | `"hookshape"` | commit author name |
//! | `author.email` | `"hookshape@localhost"` | commit author email |
//! | `directory` | `"projects"` | folder for project files, relative; `""` is the repository root |

mod path;
mod project;

use std::borrow::Cow;

use hookshape_plugin_sdk::{
    Error, Event, Outcome, Request, Subscription, Transform, export_transform, info,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::path::{Directory, check_author_field, check_branch};
use crate::project::{Project, json_kind};

/// The plugin.
pub struct GitCommit;

impl Transform for GitCommit {
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
        let settings = Settings::from_config(subscription.config()?)?;
        let Some(action) = Action::for_event_type(&event.event_type) else {
            return Ok(Outcome::skip(format!(
                "event type {} is not a design-center project event",
                event.event_type
            )));
        };
        let commit = CommitRequest::build(&event, action, &settings)?;
        info!(
            "{} {} on {} ({})",
            action.as_str(),
            commit.path,
            commit.branch,
            commit
                .content
                .as_ref()
                .map_or("no content".to_owned(), |c| format!("{} bytes", c.len()))
        );
        Ok(Request::json(&commit)?.into())
    }
}

export_transform!(GitCommit);

/// The plugin config as written by the admin.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    branch: String,
    author: Author,
    directory: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            branch: "main".to_owned(),
            author: Author::default(),
            directory: "projects".to_owned(),
        }
    }
}

/// The commit author.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct Author {
    name: String,
    email: String,
}

impl Default for Author {
    fn default() -> Self {
        Self {
            name: "hookshape".to_owned(),
            email: "hookshape@localhost".to_owned(),
        }
    }
}

/// The config once checked.
#[derive(Debug)]
struct Settings {
    branch: String,
    author: Author,
    directory: Directory,
}

impl Settings {
    fn from_config(config: Config) -> Result<Self, Error> {
        let invalid = |e: path::PathError| Error::msg(format!("invalid plugin config: {e}"));
        check_branch(&config.branch).map_err(invalid)?;
        check_author_field("name", &config.author.name).map_err(invalid)?;
        check_author_field("email", &config.author.email).map_err(invalid)?;
        Ok(Self {
            directory: Directory::parse(&config.directory).map_err(invalid)?,
            branch: config.branch,
            author: config.author,
        })
    }
}

/// What the bridge does with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Upsert,
    Delete,
}

impl Action {
    fn for_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            "project.published" | "snapshot.created" | "snapshot.restored" | "project.promoted"
            | "project.imported" => Some(Self::Upsert),
            "project.deleted" => Some(Self::Delete),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Upsert => "upsert",
            Self::Delete => "delete",
        }
    }
}

/// The payload as a document: the XML text, or a JSON value that is not a string.
enum Document<'a> {
    Xml(Cow<'a, str>),
    Json(Value),
}

impl<'a> Document<'a> {
    /// XML content types carry the document itself; a JSON payload that is a string is taken as
    /// the document too, since sources that only speak JSON send XML that way.
    fn of(event: &'a Event) -> Result<Self, Error> {
        if event.is_json() {
            return Ok(match event.json_value()? {
                Value::String(xml) => Self::Xml(xml.into()),
                other => Self::Json(other),
            });
        }
        Ok(Self::Xml(event.text()?.into()))
    }
}

/// The body POSTed to the Git bridge.
#[derive(Debug, Serialize)]
struct CommitRequest<'a> {
    action: Action,
    project_id: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Cow<'a, str>>,
    message: String,
    author: &'a Author,
    branch: &'a str,
    event_id: &'a str,
    event_type: &'a str,
}

impl<'a> CommitRequest<'a> {
    fn build(event: &'a Event, action: Action, settings: &'a Settings) -> Result<Self, Error> {
        let document = Document::of(event)?;
        let project = match (&document, action) {
            (Document::Xml(xml), Action::Delete) if xml.trim().is_empty() => {
                return Err(Error::msg(
                    "project.deleted carries no payload: send the project XML or JSON {\"project_id\": ...}",
                ));
            }
            (Document::Xml(xml), _) => Project::from_xml(xml),
            (Document::Json(value), Action::Delete) => Project::from_json(value),
            (Document::Json(value), Action::Upsert) => {
                return Err(Error::msg(format!(
                    "{} needs the project XML document, but the JSON payload is {}",
                    event.event_type,
                    json_kind(value),
                )));
            }
        }
        .map_err(|e| Error::msg(e.to_string()))?;
        let path = settings
            .directory
            .file_path(project.name.as_deref(), &project.id)
            .map_err(|e| Error::msg(e.to_string()))?;
        let content = match (action, document) {
            (Action::Upsert, Document::Xml(xml)) => Some(xml),
            _ => None,
        };
        Ok(Self {
            action,
            message: commit_message(&event.event_type, &project),
            project_id: project.id,
            path,
            content,
            author: &settings.author,
            branch: &settings.branch,
            event_id: &event.id,
            event_type: &event.event_type,
        })
    }
}

/// `{event type}: {name} v{version} ({id})`, on one line.
fn commit_message(event_type: &str, project: &Project) -> String {
    let one_line = |s: &str| {
        s.split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut message = format!("{event_type}: ");
    if let Some(name) = project
        .name
        .as_deref()
        .map(one_line)
        .filter(|n| !n.is_empty())
    {
        message.push_str(&name);
        message.push(' ');
    }
    if let Some(version) = project
        .version
        .as_deref()
        .map(one_line)
        .filter(|v| !v.is_empty())
    {
        message.push_str(&format!("v{version} "));
    }
    message.push_str(&format!("({})", one_line(&project.id)));
    message
}

#[cfg(test)]
mod tests {
    use hookshape_plugin_sdk::testing::{self, delivered_json, event, failed, sample_event};
    use serde_json::json;

    use super::*;

    const UUID: &str = "5b7e1c2a-91f4-4d0b-a3c6-0e2f8d9a4b11";
    const PUBLISHED: &str =
        include_str!("../../../../shared/samples/atscale-project-published.json");
    const SNAPSHOT: &str = include_str!("../../../../shared/samples/atscale-snapshot-created.json");

    fn run(event: Event, config: Value) -> Result<Outcome, Error> {
        testing::run::<GitCommit>(event, config)
    }

    fn xml_named(name: &str) -> String {
        format!(r#"<project id="{UUID}" name="{name}" version="1"/>"#)
    }

    #[test]
    fn published_sample_becomes_an_upsert_with_the_exact_document() {
        let event = sample_event(PUBLISHED);
        let xml = String::from_utf8(event.payload.clone()).unwrap();
        let body = delivered_json(run(event, json!({})));
        assert_eq!(
            body,
            json!({
                "action": "upsert",
                "project_id": UUID,
                "path": format!("projects/sales-insights--{UUID}.xml"),
                "content": xml,
                "message": format!("project.published: Sales Insights v12 ({UUID})"),
                "author": {"name": "hookshape", "email": "hookshape@localhost"},
                "branch": "main",
                "event_id": "evt_01JD8Z",
                "event_type": "project.published",
            })
        );
    }

    #[test]
    fn keys_are_sent_in_the_documented_order() {
        let request = testing::delivered(run(sample_event(PUBLISHED), json!({})));
        let text = String::from_utf8(request.body).unwrap();
        let positions: Vec<usize> = [
            "\"action\"",
            "\"project_id\"",
            "\"path\"",
            "\"content\"",
            "\"message\"",
            "\"author\"",
            "\"branch\"",
            "\"event_id\"",
            "\"event_type\"",
        ]
        .iter()
        .map(|key| text.find(key).unwrap())
        .collect();
        assert!(positions.is_sorted(), "{text}");
    }

    #[test]
    fn snapshot_sample_uses_config_and_its_own_version() {
        let config = json!({
            "branch": "semantic/prod",
            "author": {"name": "Design Center"},
            "directory": "bi/projects/",
        });
        let body = delivered_json(run(sample_event(SNAPSHOT), config));
        assert_eq!(body["action"], "upsert");
        assert_eq!(
            body["path"],
            format!("bi/projects/sales-insights--{UUID}.xml")
        );
        assert_eq!(
            body["message"],
            format!("snapshot.created: Sales Insights v13 ({UUID})")
        );
        assert_eq!(
            body["author"],
            json!({"name": "Design Center", "email": "hookshape@localhost"})
        );
        assert_eq!(body["branch"], "semantic/prod");
        assert!(
            body["content"]
                .as_str()
                .unwrap()
                .contains("snapshot before Q4 changes")
        );
    }

    #[test]
    fn every_project_event_type_upserts() {
        for event_type in [
            "project.published",
            "snapshot.created",
            "snapshot.restored",
            "project.promoted",
            "project.imported",
        ] {
            let body = delivered_json(run(
                event(event_type, "application/xml", xml_named("X")),
                json!({}),
            ));
            assert_eq!(body["action"], "upsert", "{event_type}");
            assert_eq!(body["event_type"], event_type);
        }
    }

    #[test]
    fn other_event_types_are_skipped() {
        let outcome = run(
            event("aggregate_batch.failed", "application/json", "{}"),
            json!({}),
        );
        assert_eq!(
            outcome,
            Ok(Outcome::skip(
                "event type aggregate_batch.failed is not a design-center project event"
            ))
        );
    }

    #[test]
    fn hostile_names_and_ids_give_safe_paths() {
        for name in [
            "../../etc/passwd",
            "/abs",
            "tab&#9;nl&#10;del&#127;cr&#13;",
            "Продажи 数据 Ünïcödé",
            "",
            "..\\..\\windows",
        ] {
            let body = delivered_json(run(
                event("project.published", "application/xml", xml_named(name)),
                json!({}),
            ));
            let path = body["path"].as_str().unwrap();
            let file = path.strip_prefix("projects/").unwrap();
            assert!(
                !file.contains('/') && !file.contains(".."),
                "{name:?}: {path}"
            );
            assert!(
                file.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{name:?}: {path}"
            );
            assert!(file.ends_with(&format!("--{UUID}.xml")), "{path}");
        }
        let body = delivered_json(run(
            event(
                "project.published",
                "application/xml",
                r#"<project id="../../etc/passwd" name=""/>"#,
            ),
            json!({}),
        ));
        assert_eq!(
            body["path"],
            "projects/project--2e2e2f2e2e2f6574632f706173737764.xml"
        );
        assert_eq!(body["project_id"], "../../etc/passwd");
    }

    #[test]
    fn names_are_kept_on_one_line_in_the_message() {
        let body = delivered_json(run(
            event(
                "project.published",
                "application/xml",
                "<project id=\"p1\"><name>\n  Sales\n  Insights </name></project>",
            ),
            json!({}),
        ));
        assert_eq!(body["message"], "project.published: Sales Insights (p1)");
    }

    #[test]
    fn entities_and_cdata_are_resolved_but_content_is_untouched() {
        let xml = "<!DOCTYPE project [<!ENTITY team \"Ops &amp; Finance\">]>\n\
                   <project xmlns=\"urn:sl\"><id>p-9</id><name>&team; <![CDATA[<EU>]]></name>\
                   <version>2</version></project>";
        let body = delivered_json(run(
            event("project.imported", "application/xml", xml),
            json!({}),
        ));
        assert_eq!(body["path"], "projects/ops-finance-eu--p-9.xml");
        assert_eq!(
            body["message"],
            "project.imported: Ops & Finance <EU> v2 (p-9)"
        );
        assert_eq!(body["content"], xml);
    }

    #[test]
    fn malformed_xml_is_an_error_with_its_position() {
        let message = failed(run(
            event(
                "project.published",
                "application/xml",
                "<project id=\"x\">\n<name>a</nam>\n</project>",
            ),
            json!({}),
        ));
        assert!(message.starts_with("malformed project XML: "), "{message}");
        assert!(message.contains("2:"), "{message}");
    }

    #[test]
    fn upsert_needs_an_xml_document() {
        let message = failed(run(
            event("project.published", "application/json", r#"{"id": "p1"}"#),
            json!({}),
        ));
        assert_eq!(
            message,
            "project.published needs the project XML document, but the JSON payload is an object"
        );
        let mut bad = event("project.published", "application/xml", "");
        bad.payload = vec![b'<', 0xff];
        assert!(failed(run(bad, json!({}))).contains("not UTF-8"));
    }

    #[test]
    fn xml_sent_as_a_json_string_is_accepted() {
        let xml = xml_named("Finance");
        let body = delivered_json(run(
            event(
                "project.promoted",
                "application/json",
                serde_json::to_vec(&xml).unwrap(),
            ),
            json!({}),
        ));
        assert_eq!(body["content"], xml);
        assert_eq!(body["path"], format!("projects/finance--{UUID}.xml"));
    }

    #[test]
    fn deletes_accept_json_or_xml_and_carry_no_content() {
        let body = delivered_json(run(
            event(
                "project.deleted",
                "application/json",
                json!({"project_id": UUID, "name": "Sales Insights"}).to_string(),
            ),
            json!({}),
        ));
        assert_eq!(body["action"], "delete");
        assert_eq!(body["project_id"], UUID);
        assert_eq!(body["path"], format!("projects/sales-insights--{UUID}.xml"));
        assert_eq!(
            body["message"],
            format!("project.deleted: Sales Insights ({UUID})")
        );
        assert!(body.get("content").is_none(), "{body}");

        let body = delivered_json(run(
            event("project.deleted", "application/json", r#"{"id": "p-7"}"#),
            json!({}),
        ));
        assert_eq!(body["path"], "projects/project--p-7.xml");
        assert_eq!(body["message"], "project.deleted: (p-7)");

        let body = delivered_json(run(
            event("project.deleted", "application/xml", xml_named("Old")),
            json!({}),
        ));
        assert_eq!(body["action"], "delete");
        assert!(body.get("content").is_none());
    }

    #[test]
    fn deletes_without_an_id_fail() {
        assert!(
            failed(run(
                event("project.deleted", "application/xml", " "),
                json!({})
            ))
            .starts_with("project.deleted carries no payload")
        );
        assert_eq!(
            failed(run(
                event("project.deleted", "application/json", r#"{"name": "x"}"#),
                json!({})
            )),
            "the JSON payload has no project id (a string or number `project_id` or `id`)"
        );
    }

    #[test]
    fn bad_config_is_an_error_naming_the_field() {
        let published = || sample_event(PUBLISHED);
        assert_eq!(
            failed(run(published(), json!({"directory": "../outside"}))),
            "invalid plugin config: directory \"../outside\": has a segment starting with a dot"
        );
        assert!(
            failed(run(published(), json!({"branch": "a..b"})))
                .starts_with("invalid plugin config: branch \"a..b\"")
        );
        assert!(
            failed(run(published(), json!({"author": {"email": "a b"}})))
                .starts_with("invalid plugin config: author.email")
        );
        let unknown = failed(run(published(), json!({"brnch": "main"})));
        assert!(unknown.contains("unknown field `brnch`"), "{unknown}");
        // Checked before the event type, so a broken subscription shows up on any event.
        assert!(
            run(
                event("other", "application/json", "{}"),
                json!({"branch": ""})
            )
            .is_err()
        );
    }
}
