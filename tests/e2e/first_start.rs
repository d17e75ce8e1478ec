//! Access without configured tokens, end to end: the first start makes an
//! admin token, prints it once and keeps only its digest; later starts accept
//! it and print nothing; `[auth] open = true` is refused off loopback; the data
//! directory is created mode 0700.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use axum::http::StatusCode;

use crate::harness::{ConfigBuilder, Server, assert_error, eventually, run_binary};

const SOON: Duration = Duration::from_secs(10);
const TOKEN_LINE: &str = "admin token: ";

/// The `admin token: hs_...` lines the server printed so far.
fn printed_tokens(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix(TOKEN_LINE))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tokens_the_first_start_prints_an_admin_token_once_and_later_starts_accept_it() {
    let mut server = Server::start(&ConfigBuilder::new().without_tokens().build()).await;
    let token = eventually(SOON, "the admin token line", || {
        std::future::ready(printed_tokens(&server.stderr()).pop())
    })
    .await;
    assert!(token.starts_with("hs_"), "{token}");
    let tenants = "/v1/tenants/acme/subscriptions";
    let (status, list) = server.get(tenants, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_error(
        &server.get(tenants, None).await,
        StatusCode::UNAUTHORIZED,
        "no token",
    );
    assert_error(
        &server.get(tenants, Some("hs_guess")).await,
        StatusCode::UNAUTHORIZED,
        "a wrong token",
    );

    let data = server.dir().join("data");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let digest_file = data.join("admin-token.sha256");
    assert_eq!(mode(&digest_file), 0o600, "the digest file");
    let kept = std::fs::read_to_string(&digest_file).unwrap();
    assert!(!kept.contains(&token), "only the digest is kept: {kept}");

    server.terminate(SOON).await;
    server.restart().await;
    assert_eq!(server.get(tenants, Some(&token)).await.0, StatusCode::OK);
    assert_eq!(server.get(tenants, None).await.0, StatusCode::UNAUTHORIZED);
    server.terminate(SOON).await;
    let output = server.stderr();
    let (_, second_run) = output.split_once("---- restart ----").unwrap();
    assert!(
        second_run.contains("hookshape is listening"),
        "the second run's log: {second_run}"
    );
    assert_eq!(
        printed_tokens(second_run),
        Vec::<String>::new(),
        "a second start prints no token"
    );
}

#[test]
fn open_access_is_refused_off_loopback() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let open = dir.path().join("open.toml");
    std::fs::write(&open, "[auth]\nopen = true\n").unwrap();
    let on_all = dir.path().join("open-on-all.toml");
    std::fs::write(
        &on_all,
        "[server]\nlisten = \"0.0.0.0:0\"\n\n[auth]\nopen = true\n",
    )
    .unwrap();
    let (open, on_all, data) = (
        open.to_str().unwrap(),
        on_all.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    let runs: [(&[&str], &str); 3] = [
        // --listen overrides the file: the server checks again at start.
        (
            &[
                "serve",
                "--config",
                open,
                "--listen",
                "0.0.0.0:0",
                "--data",
                data,
            ],
            "[auth] open = true",
        ),
        // The file's own address: a config error naming file, line and key.
        (&["serve", "--config", on_all, "--data", data], ":5"),
        (&["config", "check", on_all], "auth.open"),
    ];
    for (args, needle) in runs {
        let (status, stdout, stderr) = run_binary(args, dir.path(), SOON);
        let context = format!(
            "hookshape {}:\nstdout: {stdout}\nstderr: {stderr}",
            args.join(" ")
        );
        assert!(!status.success(), "exited 0: {context}");
        assert!(!stdout.contains("listening"), "served anyway: {context}");
        assert!(
            stderr.contains("loopback"),
            "the reason is not given: {context}"
        );
        assert!(
            stderr.contains(needle),
            "{needle:?} is not named: {context}"
        );
    }
    assert!(
        !std::path::Path::new(data)
            .join("admin-token.sha256")
            .exists(),
        "no token was made"
    );
}
