//! The bridge over loopback HTTP against a real `git` and a temporary repository: signed
//! requests in, commits checked with the Git command line.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use git_bridge::{Bridge, BridgeConfig};
use hookshape_signing::{DEFAULT_TOLERANCE, Secret};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const PROJECT: &str = "5b7e1c2a-9d3f-4e8b-a1c6-0f2d4b6e8a90";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Harness {
    dir: TempDir,
    addr: SocketAddr,
    server: JoinHandle<()>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (addr, server) = serve(&dir.path().join("repo")).await;
        Harness {
            dir,
            addr,
            server,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn repo(&self) -> std::path::PathBuf {
        self.dir.path().join("repo")
    }

    /// Stops the server and starts a new one on the same repository.
    async fn restart(&mut self) {
        self.server.abort();
        let (addr, server) = serve(&self.repo()).await;
        self.addr = addr;
        self.server = server;
    }

    async fn send(&self, webhook_id: &str, body: &Value) -> (StatusCode, Value) {
        let body = serde_json::to_vec(body).unwrap();
        let now = now();
        let signature = hookshape_signing::sign(&secret(), webhook_id, now, &body);
        self.send_raw(
            &[
                ("webhook-id", webhook_id.to_owned()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", signature),
            ],
            body,
        )
        .await
    }

    async fn send_raw(&self, headers: &[(&str, String)], body: Vec<u8>) -> (StatusCode, Value) {
        let mut request = hyper::Request::post(format!("http://{}/", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "every answer is JSON"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(self.repo())
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn git_bytes(&self, args: &[&str]) -> Vec<u8> {
        Command::new("git")
            .arg("-C")
            .arg(self.repo())
            .args(args)
            .output()
            .unwrap()
            .stdout
    }

    fn commit_count(&self, rev: &str) -> usize {
        self.git(&["rev-list", "--count", rev])
            .trim()
            .parse()
            .unwrap()
    }

    fn files(&self, rev: &str) -> Vec<String> {
        self.git(&["ls-tree", "-r", "--name-only", rev])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(repo: &Path) -> (SocketAddr, JoinHandle<()>) {
    let bridge = Bridge::open(BridgeConfig {
        repo: repo.to_owned(),
        secret: secret(),
        tolerance: DEFAULT_TOLERANCE,
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, Arc::new(bridge).router())
            .await
            .unwrap();
    });
    (addr, server)
}

fn secret() -> Secret {
    Secret::parse(SECRET).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn upsert(path: &str, content: &str) -> Value {
    json!({
        "action": "upsert",
        "project_id": PROJECT,
        "path": path,
        "content": content,
        "message": format!("project.published: {path}"),
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "branch": "main",
        "event_id": "evt_1",
        "event_type": "project.published",
    })
}

fn delete(path: &str) -> Value {
    json!({
        "action": "delete",
        "project_id": PROJECT,
        "path": path,
        "message": "project.deleted",
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "branch": "main",
        "event_id": "evt_2",
        "event_type": "project.deleted",
    })
}

fn sales_path() -> String {
    format!("projects/sales-insights--{PROJECT}.xml")
}

/// Awkward bytes: CRLF, a tab, trailing spaces, non-ASCII, a `#` line, no final newline.
const DOCUMENT: &str = "<?xml version=\"1.0\"?>\r\n<project id=\"p\">\t\n  <name>Ventes é 📈</name>  \n# not a comment\n</project>";

#[tokio::test]
async fn upsert_commits_the_content_byte_for_byte() {
    let bridge = Harness::start().await;
    let (status, answer) = bridge.send("msg_1", &upsert(&sales_path(), DOCUMENT)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let head = bridge.git(&["rev-parse", "HEAD"]).trim().to_owned();
    assert_eq!(
        answer,
        json!({"commit": head, "path": sales_path(), "action": "upsert", "changed": true, "replayed": false})
    );
    assert_eq!(
        bridge.git(&["symbolic-ref", "--short", "HEAD"]).trim(),
        "main"
    );
    assert_eq!(bridge.commit_count("HEAD"), 1);
    assert_eq!(
        bridge.git_bytes(&["show", &format!("HEAD:{}", sales_path())]),
        DOCUMENT.as_bytes()
    );
    assert_eq!(
        std::fs::read(bridge.repo().join(sales_path())).unwrap(),
        DOCUMENT.as_bytes()
    );
    assert_eq!(
        bridge
            .git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s"])
            .trim(),
        format!(
            "Ada Lovelace <ada@example.com>|Ada Lovelace <ada@example.com>|project.published: {}",
            sales_path()
        )
    );
    assert_eq!(
        bridge.git(&["status", "--porcelain"]),
        "",
        "nothing left uncommitted"
    );
}

#[tokio::test]
async fn a_replayed_delivery_makes_no_second_commit() {
    let mut bridge = Harness::start().await;
    let request = upsert(&sales_path(), DOCUMENT);
    let (status, first) = bridge.send("msg_retry", &request).await;
    assert_eq!(status, StatusCode::CREATED);

    // The same delivery again, freshly signed, even with a changed body: the first answer.
    let (status, again) = bridge.send("msg_retry", &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["commit"], first["commit"]);
    assert_eq!(again["replayed"], true);
    let (status, changed) = bridge
        .send("msg_retry", &upsert(&sales_path(), "<project>v2</project>"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["commit"], first["commit"]);
    assert_eq!(bridge.commit_count("HEAD"), 1);

    // The ledger lives in the repository, so a restart remembers.
    let ledger = bridge.repo().join(".git/hookshape-deliveries");
    assert!(
        std::fs::read_to_string(&ledger)
            .unwrap()
            .contains("msg_retry")
    );
    bridge.restart().await;
    let (status, after_restart) = bridge.send("msg_retry", &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after_restart["commit"], first["commit"]);
    assert_eq!(bridge.commit_count("HEAD"), 1);
}

#[tokio::test]
async fn unchanged_content_answers_200_with_the_current_head() {
    let bridge = Harness::start().await;
    let (_, first) = bridge.send("msg_a", &upsert(&sales_path(), DOCUMENT)).await;
    let (status, same) = bridge.send("msg_b", &upsert(&sales_path(), DOCUMENT)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["changed"], false);
    assert_eq!(same["replayed"], false);
    assert_eq!(same["commit"], first["commit"]);
    assert_eq!(bridge.commit_count("HEAD"), 1);
}

#[tokio::test]
async fn an_upsert_under_a_new_name_renames_the_file() {
    let bridge = Harness::start().await;
    let other = "projects/finance--other-project.xml";
    let mut unrelated = upsert(other, "<project>other</project>");
    unrelated["project_id"] = json!("other-project");
    bridge.send("msg_other", &unrelated).await;
    bridge.send("msg_1", &upsert(&sales_path(), DOCUMENT)).await;

    let renamed = format!("projects/revenue-insights--{PROJECT}.xml");
    let (status, answer) = bridge
        .send("msg_2", &upsert(&renamed, "<project>v2</project>"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(bridge.files("HEAD"), [other.to_owned(), renamed.clone()]);
    assert_eq!(bridge.commit_count("HEAD"), 3);
    let changes = bridge.git(&["show", "--name-status", "--format=", "HEAD"]);
    let mut changes: Vec<_> = changes.lines().collect();
    changes.sort_unstable();
    assert_eq!(
        changes,
        [format!("A\t{renamed}"), format!("D\t{}", sales_path())],
        "one commit removes the old name and adds the new one"
    );
}

#[tokio::test]
async fn delete_removes_the_project_file() {
    let bridge = Harness::start().await;
    let keep = "projects/finance--other-project.xml";
    let mut unrelated = upsert(keep, "<project>other</project>");
    unrelated["project_id"] = json!("other-project");
    bridge.send("msg_other", &unrelated).await;
    bridge.send("msg_1", &upsert(&sales_path(), DOCUMENT)).await;

    // The delete names the project's current file under another name: both rules apply.
    let (status, answer) = bridge
        .send(
            "msg_2",
            &delete(&format!("projects/renamed--{PROJECT}.xml")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["action"], "delete");
    assert_eq!(bridge.files("HEAD"), [keep]);
    assert!(!bridge.repo().join(sales_path()).exists());

    let (status, again) = bridge.send("msg_3", &delete(&sales_path())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["changed"], false);
    assert_eq!(again["commit"], answer["commit"]);
    assert_eq!(bridge.commit_count("HEAD"), 3);
}

#[tokio::test]
async fn a_delete_on_an_empty_repository_changes_nothing() {
    let bridge = Harness::start().await;
    let (status, answer) = bridge.send("msg_1", &delete(&sales_path())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["commit"], Value::Null);
    assert_eq!(answer["changed"], false);
}

#[tokio::test]
async fn hostile_paths_are_refused() {
    let bridge = Harness::start().await;
    let hostile = [
        "../escape.xml",
        "projects/../../escape.xml",
        "/tmp/escape.xml",
        ".git/config",
        "projects/.git/hooks/pre-commit",
        ".GIT/config",
        ".gitattributes",
        "projects/a\nb.xml",
        "projects/a\u{0}b.xml",
        "projects\\..\\..\\escape.xml",
        "projects//x.xml",
        "",
    ];
    for (i, path) in hostile.into_iter().enumerate() {
        let (status, answer) = bridge
            .send(&format!("msg_{i}"), &upsert(path, "<x/>"))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path:?}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_path", "{path:?}");
    }
    assert!(!bridge.dir.path().join("escape.xml").exists());
    let head = Command::new("git")
        .arg("-C")
        .arg(bridge.repo())
        .args(["rev-parse", "-q", "--verify", "HEAD"])
        .status()
        .unwrap();
    assert!(!head.success(), "no commit was made");
}

#[tokio::test]
async fn malformed_requests_are_refused() {
    let bridge = Harness::start().await;
    let mut no_content = upsert(&sales_path(), "");
    no_content.as_object_mut().unwrap().remove("content");
    let mut bad_branch = upsert(&sales_path(), "<x/>");
    bad_branch["branch"] = json!("main..evil");
    let mut bad_author = upsert(&sales_path(), "<x/>");
    bad_author["author"] = json!({"name": "Eve\n<x>", "email": "e@x"});
    let mut bad_action = upsert(&sales_path(), "<x/>");
    bad_action["action"] = json!("rename");
    let cases = [
        (no_content, "invalid_request"),
        (bad_branch, "invalid_branch"),
        (bad_author, "invalid_request"),
        (bad_action, "invalid_request"),
    ];
    for (i, (request, code)) in cases.into_iter().enumerate() {
        let (status, answer) = bridge.send(&format!("msg_{i}"), &request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }

    let body = b"{not json".to_vec();
    let now = now();
    let signature = hookshape_signing::sign(&secret(), "msg_json", now, &body);
    let (status, answer) = bridge
        .send_raw(
            &[
                ("webhook-id", "msg_json".to_owned()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", signature),
            ],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "invalid_json");
}

#[tokio::test]
async fn unsigned_or_badly_signed_requests_get_401() {
    let bridge = Harness::start().await;
    let body = serde_json::to_vec(&upsert(&sales_path(), DOCUMENT)).unwrap();
    let now = now();
    let good = hookshape_signing::sign(&secret(), "msg_1", now, &body);
    let wrong_key = hookshape_signing::sign(&Secret::generate(), "msg_1", now, &body);
    let stale = now - 3600;
    let stale_signature = hookshape_signing::sign(&secret(), "msg_1", stale, &body);

    let cases = [
        (vec![], "missing_signature"),
        (
            vec![
                ("webhook-id", "msg_1".to_owned()),
                ("webhook-timestamp", now.to_string()),
            ],
            "missing_signature",
        ),
        (
            vec![
                ("webhook-id", "msg_1".to_owned()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", wrong_key),
            ],
            "invalid_signature",
        ),
        (
            vec![
                ("webhook-id", "msg_other".to_owned()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", good.clone()),
            ],
            "invalid_signature",
        ),
        (
            vec![
                ("webhook-id", "msg_1".to_owned()),
                ("webhook-timestamp", stale.to_string()),
                ("webhook-signature", stale_signature),
            ],
            "invalid_signature",
        ),
    ];
    for (headers, code) in cases {
        let (status, answer) = bridge.send_raw(&headers, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert_eq!(answer["error"]["code"], code);
    }
    assert!(!bridge.repo().join(sales_path()).exists());

    let (status, _) = bridge
        .send_raw(
            &[
                ("webhook-id", "msg_1".to_owned()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", good),
            ],
            body,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the same request, signed, goes through"
    );
}

#[tokio::test]
async fn requests_land_on_their_branch() {
    let bridge = Harness::start().await;
    bridge.send("msg_1", &upsert(&sales_path(), DOCUMENT)).await;
    let mut on_release = upsert(&sales_path(), "<project>release</project>");
    on_release["branch"] = json!("release/2024-q1");
    let (status, answer) = bridge.send("msg_2", &on_release).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(bridge.commit_count("main"), 1);
    assert_eq!(bridge.commit_count("release/2024-q1"), 2);
    assert_eq!(
        bridge.git(&["rev-parse", "release/2024-q1"]).trim(),
        answer["commit"]
    );
    assert_eq!(
        bridge.git_bytes(&["show", &format!("main:{}", sales_path())]),
        DOCUMENT.as_bytes()
    );

    let (status, back) = bridge
        .send("msg_3", &upsert(&sales_path(), "<project>v3</project>"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(bridge.git(&["rev-parse", "main"]).trim(), back["commit"]);
    assert_eq!(bridge.commit_count("main"), 2);
}

#[tokio::test]
async fn concurrent_deliveries_make_one_commit_each() {
    let bridge = Arc::new(Harness::start().await);
    let sends = (0..8).map(|i| {
        let bridge = Arc::clone(&bridge);
        tokio::spawn(async move {
            let project = format!("p{i}");
            let mut request = upsert(
                &format!("projects/p--{project}.xml"),
                &format!("<p>{i}</p>"),
            );
            request["project_id"] = json!(project);
            bridge.send(&format!("msg_{i}"), &request).await
        })
    });
    for send in sends.collect::<Vec<_>>() {
        let (status, answer) = send.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    assert_eq!(bridge.commit_count("HEAD"), 8);
    assert_eq!(bridge.files("HEAD").len(), 8);
    assert_eq!(bridge.git(&["status", "--porcelain"]), "");
}
