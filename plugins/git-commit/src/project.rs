//! Reading a project's identity (id, name, version) from a design-center project XML document or
//! from a JSON deletion notice.

use roxmltree::{Document, Node, ParsingOptions};
use serde_json::Value;
use thiserror::Error;

/// Why a document names no usable project.
#[derive(Debug, Error)]
pub enum ProjectError {
    #[error("malformed project XML: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("the XML root element is <{0}>, expected <project>")]
    NotAProject(String),
    #[error("the project XML has no id (neither an `id` attribute nor an <id> element)")]
    MissingXmlId,
    #[error("the JSON payload has no project id (a string or number `project_id` or `id`)")]
    MissingJsonId,
    #[error("the JSON payload must be an object, found {0}")]
    NotAnObject(&'static str),
}

/// The identity of one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: Option<String>,
    pub version: Option<String>,
}

impl Project {
    /// Reads the root `<project>` (in any namespace) of an XML document. Each field is the
    /// root's attribute of that name, else the text of its child element of that local name;
    /// entities and CDATA are resolved by the parser.
    pub fn from_xml(xml: &str) -> Result<Self, ProjectError> {
        // Design-center exports may carry an internal DTD; roxmltree bounds entity expansion and
        // resolves no external entities.
        let options = ParsingOptions {
            allow_dtd: true,
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(xml, options)?;
        let root = doc.root_element();
        if root.tag_name().name() != "project" {
            return Err(ProjectError::NotAProject(root.tag_name().name().to_owned()));
        }
        let field = |name| {
            root.attribute(name)
                .map(str::to_owned)
                .or_else(|| child_text(root, name))
                .and_then(non_blank)
        };
        Ok(Self {
            id: field("id").ok_or(ProjectError::MissingXmlId)?,
            name: field("name"),
            version: field("version"),
        })
    }

    /// Reads a deletion notice: `{"project_id" or "id": string or number, "name": string?}`.
    pub fn from_json(value: &Value) -> Result<Self, ProjectError> {
        let Value::Object(object) = value else {
            return Err(ProjectError::NotAnObject(json_kind(value)));
        };
        let id = ["project_id", "id"]
            .iter()
            .find_map(|key| match object.get(*key) {
                Some(Value::String(s)) => non_blank(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .ok_or(ProjectError::MissingJsonId)?;
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .and_then(|s| non_blank(s.to_owned()));
        Ok(Self {
            id,
            name,
            version: None,
        })
    }
}

/// The text of the first child element with this local name, CDATA included.
fn child_text(parent: Node<'_, '_>, name: &str) -> Option<String> {
    let element = parent
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == name)?;
    Some(
        element
            .descendants()
            .filter_map(|n| n.is_text().then(|| n.text()).flatten())
            .collect(),
    )
}

fn non_blank(s: String) -> Option<String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        None
    } else if trimmed.len() == s.len() {
        Some(s)
    } else {
        Some(trimmed.to_owned())
    }
}

/// A JSON value's kind, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UUID: &str = "5b7e1c2a-91f4-4d0b-a3c6-0e2f8d9a4b11";

    #[test]
    fn reads_attributes_of_a_namespaced_root() {
        let xml = format!(
            r#"<?xml version="1.0"?><p:project xmlns:p="urn:x" id="{UUID}" name="Sales Insights" version="12"/>"#
        );
        assert_eq!(
            Project::from_xml(&xml).unwrap(),
            Project {
                id: UUID.into(),
                name: Some("Sales Insights".into()),
                version: Some("12".into()),
            }
        );
    }

    #[test]
    fn reads_child_elements_when_attributes_are_absent() {
        let xml = "<project xmlns=\"urn:x\">\n  <id> p-1 </id>\n  <name>Finance</name>\n  \
                   <properties><name>not this one</name></properties>\n  <version>3</version>\n</project>";
        let project = Project::from_xml(xml).unwrap();
        assert_eq!(project.id, "p-1");
        assert_eq!(project.name.as_deref(), Some("Finance"));
        assert_eq!(project.version.as_deref(), Some("3"));
    }

    #[test]
    fn resolves_entities_and_cdata() {
        let xml = r#"<!DOCTYPE project [<!ENTITY co "Acme &amp; Co">]>
<project id="p&#x2D;1"><name>&co; <![CDATA[R&D <draft>]]></name><version>&#49;&#50;</version></project>"#;
        let project = Project::from_xml(xml).unwrap();
        assert_eq!(project.id, "p-1");
        assert_eq!(project.name.as_deref(), Some("Acme & Co R&D <draft>"));
        assert_eq!(project.version.as_deref(), Some("12"));
    }

    #[test]
    fn attribute_entities_are_decoded() {
        let project =
            Project::from_xml(r#"<project id="x" name="Sales &amp; Ops &lt;EU&gt;"/>"#).unwrap();
        assert_eq!(project.name.as_deref(), Some("Sales & Ops <EU>"));
        assert_eq!(project.version, None);
    }

    #[test]
    fn malformed_xml_reports_its_position() {
        let err = Project::from_xml("<project id=\"x\">\n  <name>oops</nme>\n</project>")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("malformed project XML: "), "{err}");
        assert!(err.contains("2:"), "{err}");
        let err = Project::from_xml("").unwrap_err().to_string();
        assert!(err.starts_with("malformed project XML"), "{err}");
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut dtd = String::from("<!ENTITY l0 \"lol\">");
        for i in 1..10 {
            let refs = format!("&l{};", i - 1).repeat(10);
            dtd.push_str(&format!("<!ENTITY l{i} \"{refs}\">"));
        }
        let xml = format!("<!DOCTYPE project [{dtd}]><project id=\"x\" name=\"&l9;\"/>");
        assert!(Project::from_xml(&xml).is_err());
    }

    #[test]
    fn requires_a_project_root_with_an_id() {
        let err = Project::from_xml("<model id=\"x\"/>").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the XML root element is <model>, expected <project>"
        );
        assert!(matches!(
            Project::from_xml("<project name=\"n\"><id>  </id></project>"),
            Err(ProjectError::MissingXmlId)
        ));
    }

    #[test]
    fn reads_json_deletion_notices() {
        let project =
            Project::from_json(&json!({"project_id": UUID, "name": "Sales Insights"})).unwrap();
        assert_eq!(project.id, UUID);
        assert_eq!(project.name.as_deref(), Some("Sales Insights"));
        assert_eq!(Project::from_json(&json!({"id": 42})).unwrap().id, "42");
        assert!(matches!(
            Project::from_json(&json!({"name": "x"})),
            Err(ProjectError::MissingJsonId)
        ));
        assert_eq!(
            Project::from_json(&json!([1])).unwrap_err().to_string(),
            "the JSON payload must be an object, found an array"
        );
    }
}
