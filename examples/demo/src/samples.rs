//! The sample events in `shared/samples/` beside the workspace, each routed to the tenant its file
//! name starts with (`analyst-studio-report-run-completed.json` goes to `analyst-studio`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use hookshape::ids::Tenant;
use serde_json::Value;

/// One sample file, shaped like an ingest request body.
#[derive(Debug)]
pub struct Sample {
    /// The file name without `.json`.
    pub name: String,
    pub tenant: Tenant,
    pub body: Value,
}

/// `shared/samples/`, a sibling of the workspace, relative to the workspace root (the demo's
/// working directory), so that the report shows no machine's own path.
pub fn samples_dir() -> PathBuf {
    Path::new("..").join("shared").join("samples")
}

/// The samples in file-name order (so a tenant's events go out in a stable order), each with
/// its tenant among `tenants`; files no tenant claims are returned apart, by name.
pub fn load(dir: &Path, tenants: &[Tenant]) -> anyhow::Result<(Vec<Sample>, Vec<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the samples in {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    files.sort();
    let mut samples = Vec::new();
    let mut unclaimed = Vec::new();
    for path in files {
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(tenant) = tenant_of(&name, tenants) else {
            unclaimed.push(name);
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let body = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        samples.push(Sample {
            name,
            tenant: tenant.clone(),
            body,
        });
    }
    Ok((samples, unclaimed))
}

/// The longest tenant `t` such that the name starts with `t-`.
fn tenant_of<'t>(name: &str, tenants: &'t [Tenant]) -> Option<&'t Tenant> {
    tenants
        .iter()
        .filter(|t| {
            name.strip_prefix(t.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|t| t.as_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(names: &[&str]) -> Vec<Tenant> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn the_longest_matching_tenant_wins() {
        let all = tenants(&["analyst", "analyst-studio", "atscale"]);
        let tenant = |name| tenant_of(name, &all).map(Tenant::as_str);
        assert_eq!(
            tenant("analyst-studio-report-run-completed"),
            Some("analyst-studio")
        );
        assert_eq!(tenant("analyst-report"), Some("analyst"));
        assert_eq!(tenant("atscale-project-published"), Some("atscale"));
        assert_eq!(tenant("atscaleish-x"), None);
        assert_eq!(tenant("alpana-comment-added"), None);
    }

    #[test]
    fn loads_json_files_in_name_order_and_sets_aside_the_unclaimed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        std::fs::write(dir.join("b-two.json"), r#"{"type": "t2", "payload": {}}"#).unwrap();
        std::fs::write(dir.join("b-one.json"), r#"{"type": "t1", "payload": {}}"#).unwrap();
        std::fs::write(dir.join("c-three.json"), r#"{"type": "t3", "payload": {}}"#).unwrap();
        std::fs::write(dir.join("b-notes.txt"), "not a sample").unwrap();
        let (samples, unclaimed) = load(dir, &tenants(&["b"])).unwrap();
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b-one", "b-two"]);
        assert_eq!(samples[0].body["type"], "t1");
        assert_eq!(unclaimed, ["c-three"]);
    }
}
