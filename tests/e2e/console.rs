//! The admin console at `/ui/` in a real browser: headless Chromium from the
//! OS packages (`chromium`, `chromium-driver`), driven over WebDriver with
//! `fantoccini`, against a real `hookshape serve` and a real receiver. The
//! browser only ever talks to the server on loopback; nothing is downloaded.
//!
//! Every wait is explicit with a deadline (no sleeps). Each page visited is
//! saved as a PNG under `target/console-screenshots/`. Without the browser
//! packages the test says so and passes, except under CI (`CI` set), where
//! it fails.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hookshape::plugin::testing::build_plugin;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Answer, BINARY, ConfigBuilder, Receiver, Server, eventually, sample};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to show what the test waits for.
const UI_DEADLINE: Duration = Duration::from_secs(20);

/// Flags that keep Chromium off every network but loopback (without the
/// background-networking ones it keeps calling home) and runnable as root
/// without a GPU.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-crash-reporter",
];

const TENANT: &str = "analyst-studio";

/// The rows of a subscription page's attempts table.
const ATTEMPT_ROWS: &str = "section[aria-labelledby='attempts-h'] tbody tr";

/// chromedriver on a free loopback port, with a session to a fresh
/// Chromium profile. chromedriver runs in a process group of its own, with
/// the browser it starts: dropping this kills the whole group, so a failed
/// test leaves no browser behind.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills chromedriver's process group: the driver and the browser it started.
fn kill_group(driver: &mut Child) {
    let group = format!("-{}", driver.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = driver.wait();
}

impl Browser {
    async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push("--window-size=1280,900".into());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        // Polled until chromedriver listens; past the deadline, its last refusal says why.
        let deadline = Instant::now() + UI_DEADLINE;
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let client = loop {
            match builder.connect(&url).await {
                Ok(client) => break client,
                Err(e) => {
                    if let Ok(Some(status)) = driver.try_wait() {
                        panic!("chromedriver exited ({status}): {e}");
                    }
                    if Instant::now() >= deadline {
                        kill_group(&mut driver);
                        panic!("chromedriver opened no session within {UI_DEADLINE:?}: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        // `target/release/hookshape` -> `target/console-screenshots`.
        let shots = Path::new(BINARY)
            .ancestors()
            .nth(2)
            .expect("the target directory")
            .join("console-screenshots");
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        Browser {
            client,
            driver,
            _profile: profile,
            shots,
        }
    }

    /// Ends the session: chromedriver quits the browser.
    async fn quit(self) {
        self.client
            .clone()
            .close()
            .await
            .expect("closing the browser");
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigating");
    }

    /// Waits for an element; panics naming `what` past the deadline.
    async fn wait(&self, locator: Locator<'_>, what: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(UI_DEADLINE)
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
    }

    /// Waits until an element matching `css` has a text containing `text`,
    /// and returns that text.
    async fn wait_text(&self, css: &str, text: &str) -> String {
        eventually(
            UI_DEADLINE,
            &format!("{css:?} to show {text:?}"),
            || async {
                for element in self.client.find_all(Locator::Css(css)).await.ok()? {
                    if let Ok(shown) = element.text().await
                        && shown.contains(text)
                    {
                        return Some(shown);
                    }
                }
                None
            },
        )
        .await
    }

    async fn click(&self, xpath: &str) {
        self.wait(Locator::XPath(xpath), xpath)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {xpath}: {e}"));
    }

    async fn button(&self, label: &str) {
        self.click(&format!("//button[normalize-space()={label:?}]"))
            .await;
    }

    /// Types into the field labelled `label` (after clearing it).
    async fn fill(&self, label: &str, text: &str) {
        let xpath = format!("//*[@id=(//label[normalize-space()={label:?}]/@for)]");
        let input = self.wait(Locator::XPath(&xpath), label).await;
        input.clear().await.expect("clearing a field");
        input.send_keys(text).await.expect("typing");
    }

    /// How many rows the attempts table of a subscription page has.
    async fn rows(&self) -> usize {
        self.client
            .find_all(Locator::Css(ATTEMPT_ROWS))
            .await
            .map_or(0, |rows| rows.len())
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("saving a screenshot");
    }

    /// The page is no wider than the window: nothing scrolls sideways.
    async fn assert_fits(&self, what: &str) {
        let widths = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth]",
                vec![],
            )
            .await
            .expect("measuring the page");
        assert!(
            widths[0].as_u64() <= widths[1].as_u64(),
            "{what} is wider than the window: {widths}"
        );
    }
}

fn browser_installed() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} or {CHROMEDRIVER} is missing; .ci/run installs chromium and chromium-driver"
        );
        eprintln!(
            "SKIPPED: the console's browser test needs {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install chromium chromium-driver)"
        );
    }
    present
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_manages_subscriptions_attempts_and_plugins_in_a_browser() {
    if !browser_installed() {
        return;
    }
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new().raw(&format!(
        "[plugins.slack-threshold]\npath = {:?}\n",
        build_plugin("slack-threshold").display().to_string()
    ));
    let server = Server::start(&config.build()).await;
    let browser = Browser::start().await;
    let ui = format!("{}/ui/", server.base_url());

    // A wrong token: the API's own 401 message, and no way in.
    browser.goto(&ui).await;
    browser.fill("API token", "not-a-token").await;
    browser.button("Sign in").await;
    let (status, refused) = server.get("/v1/tenants", Some("not-a-token")).await;
    assert_eq!(status, 401, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    browser.wait_text("p.error", message).await;
    browser.screenshot("sign-in-refused").await;

    // The right one, then a tenant opened by name.
    browser.fill("API token", ADMIN.unwrap()).await;
    browser.button("Sign in").await;
    browser.wait_text("h1", "Tenants").await;
    browser.fill("Tenant name", TENANT).await;
    browser.button("Open").await;
    browser.wait_text("h1", &format!("Tenant {TENANT}")).await;

    // Create with verify: the webhook.test reaches the receiver first.
    browser
        .click("//a[normalize-space()='New subscription']")
        .await;
    browser.fill("URL", &receiver.url()).await;
    browser.fill("Events", "report_run_completed").await;
    browser
        .fill("Description", "revenue, from the console")
        .await;
    browser.fill("Headers", "X-Team: data").await;
    browser.screenshot("subscription-new").await;
    browser.button("Create").await;
    browser.wait_text("h1", "Subscription created").await;
    browser.wait_text("p.ok", "Verified").await;
    let test = receiver.wait_for(1, UI_DEADLINE).await;
    assert_eq!(test[0].json()["type"], "webhook.test");
    assert_eq!(test[0].header("x-team"), Some("data"));
    browser.screenshot("subscription-created").await;
    let sub_id = browser.wait_text(".details dd", "sub_").await;

    // An event published through the API shows up as an attempt.
    let event = server
        .publish(TENANT, &sample("analyst-studio-report-run-completed"))
        .await;
    let event_id = event["id"].as_str().unwrap().to_owned();
    browser
        .click("//a[normalize-space()='Open the subscription']")
        .await;
    browser.wait_text("h1", &sub_id).await;
    eventually(UI_DEADLINE, "the attempt to be listed", || async {
        browser.button("Refresh").await;
        let rows = browser
            .client
            .find_all(Locator::Css(ATTEMPT_ROWS))
            .await
            .ok()?;
        let mut texts = Vec::new();
        for row in rows {
            texts.push(row.text().await.ok()?);
        }
        texts
            .iter()
            .any(|t| t.contains("delivered") && t.contains("report_run_completed"))
            .then_some(())
    })
    .await;
    browser.screenshot("subscription").await;

    // Opened: what was sent and answered; resent: a second request arrives.
    browser.button("Open").await;
    browser
        .wait_text("section.attempt h2", "Attempt att_")
        .await;
    browser.wait_text("section.attempt pre", &event_id).await;
    browser
        .wait_text("section.attempt td", "webhook-signature")
        .await;
    browser.screenshot("attempt").await;
    browser.button("Resend").await;
    browser
        .wait_text("section.attempt p.ok", "Resent as delivery dlv_")
        .await;
    let got = receiver.wait_for(3, UI_DEADLINE).await;
    assert_eq!(got[1].webhook_id(), event_id);
    assert_eq!(got[2].webhook_id(), event_id, "the resend");
    eventually(UI_DEADLINE, "both attempts listed", || async {
        browser.button("Refresh").await;
        (browser.rows().await == 2).then_some(())
    })
    .await;
    // The README's picture (docs/console.png): the page from its top, tall
    // enough to show the opened attempt.
    browser
        .client
        .set_window_size(1280, 1280)
        .await
        .expect("resizing");
    browser
        .client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scrolling");
    browser.screenshot("console").await;
    browser
        .client
        .set_window_size(1280, 900)
        .await
        .expect("resizing");

    // Past one page (20) of attempts: Older and Newer page with the API's cursor.
    for n in 0..20 {
        server
            .publish(
                TENANT,
                &json!({"type": "report_run_completed", "payload": {"n": n}}),
            )
            .await;
    }
    eventually(UI_DEADLINE, "a second page of attempts", || async {
        browser.button("Refresh").await;
        let older = browser
            .client
            .find(Locator::XPath("//button[normalize-space()='Older']"))
            .await
            .ok()?;
        (older.is_displayed().await.ok()? && older.is_enabled().await.ok()?).then_some(())
    })
    .await;
    assert_eq!(browser.rows().await, 20);
    browser.button("Older").await;
    eventually(UI_DEADLINE, "the older page", || async {
        (browser.rows().await == 2).then_some(())
    })
    .await;
    browser.button("Newer").await;
    eventually(UI_DEADLINE, "the newest page again", || async {
        (browser.rows().await == 20).then_some(())
    })
    .await;

    // Recover: a delivery the receiver refused (400, final at once) is sent
    // again from the subscription page once the receiver is back.
    receiver.push(Answer::status(400));
    let before = receiver.count();
    let refused = server
        .publish(
            TENANT,
            &json!({"type": "report_run_completed", "payload": {"n": "refused"}}),
        )
        .await;
    let refused_id = refused["id"].as_str().unwrap();
    let settled = server.settled_event(TENANT, refused_id, UI_DEADLINE).await;
    assert_eq!(settled["deliveries"][0]["state"], "failed", "{settled}");
    browser
        .click("//summary[normalize-space()='Recover after an outage']")
        .await;
    // A datetime-local field takes typing segment by segment; set it as a person's picker would.
    browser
        .client
        .execute(
            "document.querySelector('input[name=since]').value = \
             new Date(Date.now() - 3600e3).toISOString().slice(0, 19)",
            vec![],
        )
        .await
        .expect("setting the time");
    browser.button("Recover").await;
    browser
        .wait_text("p.ok", "Recover: 1 failed delivery sent again")
        .await;
    let got = receiver.wait_for(before + 2, UI_DEADLINE).await;
    assert_eq!(got[before + 1].webhook_id(), refused_id);
    assert!(got[before + 1].succeeded());

    // The event: its payload pretty-printed and its delivery.
    browser
        .click(&format!("//a[contains(@href, '/e/{event_id}')]"))
        .await;
    browser.wait_text("h1", &event_id).await;
    browser.wait_text("pre", "\"revenue\": 128450.5").await;
    browser.wait_text("td", &sub_id).await;
    browser.screenshot("event").await;

    // Disabled from its page, with the state shown and stored.
    browser.client.back().await.expect("back");
    browser.wait_text("h1", &sub_id).await;
    browser.button("Disable").await;
    browser.wait_text("p.ok", "Subscription disabled").await;
    browser.wait_text(".details dd", "by hand").await;
    assert_eq!(server.subscription(TENANT, &sub_id).await["enabled"], false);

    // The secret on demand, then rotated after a confirmation.
    let (_, secret) = server
        .get(
            &format!("/v1/tenants/{TENANT}/subscriptions/{sub_id}/secret"),
            ADMIN,
        )
        .await;
    let old_key = secret["key"].as_str().unwrap();
    browser.button("Show secret").await;
    browser.wait_text("code.secret", old_key).await;
    browser.button("Rotate secret").await;
    browser.click("//dialog//button[@data-confirm]").await;
    browser.wait_text("p.ok", "Secret rotated").await;
    let (_, secret) = server
        .get(
            &format!("/v1/tenants/{TENANT}/subscriptions/{sub_id}/secret"),
            ADMIN,
        )
        .await;
    let new_key = secret["key"].as_str().unwrap();
    assert_ne!(new_key, old_key);
    browser.wait_text("code.secret", new_key).await;

    // Edited: the form starts from the stored values.
    browser.click("//a[normalize-space()='Edit']").await;
    browser.wait_text("h1", &format!("Edit {sub_id}")).await;
    browser.fill("Description", "edited in the console").await;
    browser.button("Save").await;
    browser
        .wait_text(".details dd", "edited in the console")
        .await;
    let stored = server.subscription(TENANT, &sub_id).await;
    assert_eq!(stored["description"], "edited in the console");
    assert_eq!(stored["headers"], json!({"X-Team": "data"}));
    assert_eq!(stored["enabled"], false);

    // The slack-threshold plugin tried on the stored report event: its
    // revenue (128450.5) is below the threshold, so the plugin skips.
    let threshold = server
        .create_subscription(
            TENANT,
            &json!({
                "url": receiver.url(), "events": ["report_run_completed"], "enabled": false,
                "plugin": "slack-threshold",
                "plugin_config": {"pointer": "/rows/0/revenue", "op": ">", "threshold": 200000},
            }),
        )
        .await;
    let threshold_id = threshold["id"].as_str().unwrap();
    browser
        .goto(&format!("{ui}#/t/{TENANT}/s/{threshold_id}"))
        .await;
    browser
        .click("//a[normalize-space()='Try the plugin']")
        .await;
    browser.fill("Event id", &event_id).await;
    browser.button("Run").await;
    browser
        .wait(Locator::Css("[data-outcome='skip']"), "the skip outcome")
        .await;
    browser
        .wait_text(".details dd", "128450.5 is not > 200000")
        .await;
    browser.screenshot("try-plugin").await;

    // Deleted from the tenant's list after a confirmation.
    browser.goto(&format!("{ui}#/t/{TENANT}")).await;
    browser
        .click(&format!(
            "//tr[.//a[normalize-space()={threshold_id:?}]]//button[normalize-space()='Delete']"
        ))
        .await;
    browser.click("//dialog//button[@data-confirm]").await;
    browser
        .wait_text("p.ok", &format!("{threshold_id} deleted"))
        .await;
    let (status, _) = server
        .get(
            &format!("/v1/tenants/{TENANT}/subscriptions/{threshold_id}"),
            ADMIN,
        )
        .await;
    assert_eq!(status, 404);

    // A hostile payload is shown as text, no element made from it; its
    // numbers as the source wrote them.
    let hostile = br#"{"type": "note", "payload": {"amount": 12.50, "big": 18446744073709551617,
        "html": "<img src=x onerror=\"document.title='owned'\">"}}"#;
    let (status, hostile) = server
        .post_raw(&format!("/v1/tenants/{TENANT}/events"), ADMIN, hostile)
        .await;
    assert_eq!(status, 202, "{hostile}");
    let hostile_id = hostile["id"].as_str().unwrap();
    browser
        .goto(&format!("{ui}#/t/{TENANT}/e/{hostile_id}"))
        .await;
    let shown = browser.wait_text("pre", "<img src=x onerror=").await;
    assert!(shown.contains("\"amount\": 12.50"), "{shown}");
    assert!(shown.contains("18446744073709551617"), "{shown}");
    let images = browser
        .client
        .execute(
            "return document.querySelectorAll('main img').length",
            vec![],
        )
        .await
        .expect("counting images");
    assert_eq!(images, json!(0));
    assert_ne!(browser.client.title().await.unwrap(), "owned");

    // A plugin uploaded from a file.
    let zapier = build_plugin("zapier");
    browser.click("//nav//a[normalize-space()='Plugins']").await;
    browser.wait_text("h1", "Plugins").await;
    browser.wait_text("td", "slack-threshold").await;
    browser.fill("Name", "console-zapier").await;
    browser
        .wait(Locator::Css("input[type=file]"), "the file field")
        .await
        .send_keys(&zapier.display().to_string())
        .await
        .expect("choosing the file");
    browser.button("Upload").await;
    browser.wait_text("p.ok", "Uploaded console-zapier").await;
    browser.wait_text("td", "console-zapier").await;
    let (_, plugins) = server.get("/v1/plugins", ADMIN).await;
    let names: Vec<&Value> = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(names.contains(&&json!("console-zapier")), "{plugins}");
    browser.assert_fits("the plugins page at 1280 px").await;
    browser.screenshot("plugins").await;

    // The tenants this token manages, with their subscriptions counted: the
    // one left is disabled.
    browser.click("//nav//a[normalize-space()='Tenants']").await;
    let row = browser.wait_text("tbody tr", TENANT).await;
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [TENANT, "1", "1", "0"],
        "{row}"
    );
    browser.screenshot("tenants").await;

    // A phone's width: every page fits without sideways scrolling.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("resizing");
    for (name, route) in [
        ("tenants-390", "#/".to_owned()),
        ("tenant-390", format!("#/t/{TENANT}")),
        ("subscription-390", format!("#/t/{TENANT}/s/{sub_id}")),
        ("event-390", format!("#/t/{TENANT}/e/{event_id}")),
        ("plugins-390", "#/plugins".to_owned()),
    ] {
        browser.goto(&format!("{ui}{route}")).await;
        browser.wait(Locator::Css("h1"), name).await;
        browser.wait(Locator::Css("table"), name).await;
        browser.assert_fits(name).await;
        browser.screenshot(name).await;
    }
    browser.quit().await;
}
