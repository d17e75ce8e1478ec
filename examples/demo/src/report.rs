//! The demo's printed report: what was sent to which tenant, how every delivery ended, and what
//! each receiver made of it (the bridge's Git history and files, the Slack messages, the Zapier
//! fields), then the skipped attempts with their reasons.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use receivers::record::Received;
use receivers::slack::SlackMessage;
use receivers::zapier::Catch;
use serde_json::Value;

use crate::api::Api;

/// Lines of each committed file shown.
const FILE_HEAD_LINES: usize = 6;
/// Longest field value shown, in characters.
const MAX_VALUE_CHARS: usize = 90;

/// One sample as published, with its event once every delivery settled.
pub struct Published {
    pub sample: String,
    pub tenant: String,
    /// `true` when the dispatcher had the source id already.
    pub duplicate: bool,
    pub event: Value,
}

pub fn heading(title: &str) {
    println!(
        "\n== {title} {}",
        "=".repeat(70usize.saturating_sub(title.len()))
    );
}

/// One line per sample and one per delivery.
pub fn deliveries(published: &[Published]) {
    heading("Events and deliveries");
    for p in published {
        let event = &p.event;
        println!(
            "{:<15} {:<28} {:<12} {}{}",
            p.tenant,
            text(&event["type"]),
            text(&event["source_id"]),
            text(&event["id"]),
            if p.duplicate { "  (duplicate)" } else { "" }
        );
        let deliveries = event["deliveries"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if deliveries.is_empty() {
            println!(
                "    no subscription matches {} ({})",
                text(&event["type"]),
                p.sample
            );
        }
        for d in deliveries {
            println!(
                "    -> {:<22} {:<10} {} attempt(s)",
                text(&d["subscription_id"]),
                text(&d["state"]),
                d["attempts"]
            );
        }
    }
}

/// The bridge's commits, newest first, and the head of every file it holds.
pub fn git(repo: &Path) -> anyhow::Result<()> {
    heading(&format!("git-bridge repository ({})", repo.display()));
    let log = git_output(
        repo,
        &[
            "log",
            "--format=%h %s%n        by %an <%ae>",
            "--name-status",
        ],
    )?;
    for line in log.lines().filter(|l| !l.is_empty()) {
        println!("  {line}");
    }
    for file in git_output(repo, &["ls-files"])?.lines() {
        let content = std::fs::read_to_string(repo.join(file))
            .with_context(|| format!("reading {file} from the bridge's work tree"))?;
        println!("\n  {file} (first {FILE_HEAD_LINES} lines):");
        for line in content.lines().take(FILE_HEAD_LINES) {
            println!("  | {line}");
        }
    }
    Ok(())
}

fn git_output(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .context("running git")?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Each message as Slack would post it.
pub fn slack(messages: &[Received<SlackMessage>]) {
    heading("Slack messages received");
    if messages.is_empty() {
        println!("  none");
    }
    for m in messages {
        let message = &m.detail.message;
        let by = message
            .get("username")
            .map(|u| format!(" as {}", text(u)))
            .unwrap_or_default();
        println!("  {}{by}:", m.path);
        println!(
            "    {}",
            message.get("text").map_or("", |t| t.as_str().unwrap_or(""))
        );
    }
}

/// Each caught item's fields, as a Zap's next steps see them.
pub fn zapier(catches: &[Received<Catch>]) {
    heading("Zapier hooks caught");
    if catches.is_empty() {
        println!("  none");
    }
    for c in catches {
        println!("  {} ({} fields):", c.path, c.detail.fields.len());
        for (key, value) in &c.detail.fields {
            println!("    {key:<28} {}", shorten(&value.to_string()));
        }
    }
}

/// The skipped attempts of every subscription that got a delivery, with the plugin's reason.
pub async fn skipped(api: &Api, published: &[Published]) -> anyhow::Result<()> {
    heading("Skipped attempts");
    let subscriptions: BTreeSet<(String, String)> = published
        .iter()
        .flat_map(|p| {
            p.event["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| (p.tenant.clone(), text(&d["subscription_id"]).to_owned()))
        })
        .collect();
    let mut any = false;
    for (tenant, sub) in subscriptions {
        let page = api
            .get(&format!(
                "/v1/tenants/{tenant}/subscriptions/{sub}/attempts?limit=100"
            ))
            .await?;
        for attempt in page["data"].as_array().into_iter().flatten() {
            if attempt["outcome"] == "skipped" {
                any = true;
                println!(
                    "  {sub} skipped {} ({}): {}",
                    text(&attempt["event_type"]),
                    text(&attempt["event_id"]),
                    text(&attempt["error"])
                );
            }
        }
    }
    if !any {
        println!("  none");
    }
    Ok(())
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

/// `s`, cut to [`MAX_VALUE_CHARS`] characters with an ellipsis.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(shorten("short"), "short");
        let long = "é".repeat(MAX_VALUE_CHARS + 5);
        let cut = shorten(&long);
        assert_eq!(cut.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
