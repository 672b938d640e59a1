//! The admin console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) does what an operator does — sign in, approve a flagged record and see the coins
//! reach the wallet, reject one with the keyboard, ship and deliver an order, adjust a wallet,
//! disable and enable an account, import a catalogue file, change a setting — and finds each
//! action in the audit log. Also at a phone's width.
//!
//! Needs `chromium` and `chromedriver` on the PATH (Debian: `chromium`, `chromium-driver`;
//! scripts/test.sh installs them) or CHROMEDRIVER / CHROMIUM set. It runs in its own step of
//! scripts/test.sh, not in the main nextest run. Screenshots go to
//! `target/tmp/console-screenshots/` (or FITKART_CONSOLE_SCREENSHOTS).

mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;

use common::{PASSWORD, at, create_admin, days_ago, grant, imported_products, sign_up};
use fitkart_sync_server::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use webdriver::{Browser, Driver};

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var("FITKART_CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await;
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn text(browser: &Browser, css: &str) -> String {
    browser.find(css).await.text().await
}

async fn fill(browser: &Browser, css: &str, value: &str) {
    let field = browser.find(css).await;
    field.clear().await;
    field.send_keys(value).await;
}

async fn click(browser: &Browser, css: &str) {
    browser.find(css).await.click().await;
}

/// Waits (up to 5 s) until the page at `css` contains `needle`, e.g. after a click that posts
/// a form; answers the text.
async fn wait_text(browser: &Browser, css: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        if let Some(now) = browser.text_now(css).await {
            last = now;
            if last.contains(needle) {
                return last;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} never showed {needle:?}: {last}");
}

/// Waits (up to 5 s) for the browser to reach a path starting with `prefix`.
async fn wait_path(browser: &Browser, prefix: &str) {
    let mut path = String::new();
    for _ in 0..50 {
        path = browser.path().await;
        if path.starts_with(prefix) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the browser is at {path}, not {prefix}");
}

/// Waits for the notice a form's redirect shows to say `needle` (the page before may still
/// show the previous notice for a moment).
async fn notice(browser: &Browser, needle: &str) {
    wait_text(browser, ".notice", needle).await;
}

async fn wallet(server: &TestServer, user: Uuid) -> i64 {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT available_coins FROM wallets WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0)
}

/// Reports a run too fast to pay at once: the second report is flagged for review.
async fn flag_a_run(http: &reqwest::Client, server: &TestServer, token: &str, days_back: u64) {
    let day = days_ago(days_back);
    let body = json!({"records": [
        {"date": day, "source": "phone", "steps": 3000, "recorded_at": at(day, 9, 0)},
        {"date": day, "source": "phone", "steps": 13000, "recorded_at": at(day, 9, 40)},
    ]});
    let (status, answer) = common::answer(
        http.post(server.url("/api/v1/steps/record"))
            .bearer_auth(token)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][1]["status"], "flagged", "{answer}");
}

#[tokio::test]
async fn an_operator_works_through_the_console_in_chromium() {
    let server = TestServer::start().await.unwrap();
    let http = reqwest::Client::new();
    create_admin(&server, "boss@example.com", "Boss").await;
    let walker = sign_up(&http, &server, "ann@example.com", "Ann Walker").await;
    let other = sign_up(&http, &server, "bo@example.com", "Bo Runner").await;
    flag_a_run(&http, &server, &walker.access_token, 1).await;
    flag_a_run(&http, &server, &other.access_token, 1).await;

    // Ann orders the cheapest product with coins she was given.
    grant(server.db().pool(), walker.user.id, 100_000).await;
    let (_, products) = common::answer(
        http.get(server.url("/api/v1/products?limit=1"))
            .bearer_auth(&walker.access_token),
    )
    .await;
    let product = products["products"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{products}"))
        .to_owned();
    let (status, order) = common::answer(
        http.post(server.url("/api/v1/orders"))
            .bearer_auth(&walker.access_token)
            .json(&json!({
                "client_order_id": Uuid::new_v4(),
                "items": [{"product_id": product, "quantity": 1}],
                "shipping_address": {"name": "Ann Walker", "line1": "Hauptstrasse 1",
                    "city": "Berlin", "postal_code": "10115", "country": "DE"},
            })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_str().unwrap().to_owned();

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let base = server.url("");
    let server = std::sync::Arc::new(server);
    // Driven in a task so that a failed assertion still closes Chromium before it is reported.
    let steps = {
        let (browser, server) = (browser.clone(), server.clone());
        let walker = walker.user.id;
        tokio::spawn(async move { drive(&browser, &server, &base, walker, &order_id).await })
    };
    let outcome = steps.await;
    browser.close().await;
    drop(driver);
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn drive(browser: &Browser, server: &TestServer, base: &str, walker: Uuid, order_id: &str) {
    // Sign in: the console sends a stranger to the sign-in page first.
    browser.goto(&format!("{base}/admin/review")).await;
    wait_path(browser, "/admin/login").await;
    fill(browser, "#email", "boss@example.com").await;
    fill(browser, "#password", PASSWORD).await;
    screenshot(browser, "01-sign-in").await;
    click(browser, "form button[type=submit]").await;
    wait_path(browser, "/admin/review").await;

    // The review queue: approve Ann's record with a note; the coins reach her wallet.
    let before = wallet(server, walker).await;
    assert!(
        text(browser, "main")
            .await
            .contains("Sustained running cadence")
    );
    screenshot(browser, "02-review-queue").await;
    let first = browser.find("article.review").await;
    assert!(first.text().await.contains("Ann Walker"));
    let note = first
        .find("form[data-action=approve] input[name=note]")
        .await;
    note.send_keys("Checked with the user: a real run").await;
    first
        .find("form[data-action=approve] button")
        .await
        .click()
        .await;
    notice(browser, "Approved").await;
    let after = wallet(server, walker).await;
    assert!(after > before, "the approval paid ({before} -> {after})");
    browser.goto(&format!("{base}/admin/users/{walker}")).await;
    assert_eq!(
        text(browser, "#available-coins").await.replace(',', ""),
        after.to_string(),
        "the user page shows the paid balance"
    );

    // The next record is rejected from the keyboard alone (the first one is selected).
    browser.goto(&format!("{base}/admin/review")).await;
    assert!(text(browser, "article.review").await.contains("Bo Runner"));
    browser.press('r').await;
    notice(browser, "Rejected").await;
    wait_text(browser, "main", "Nothing to review").await;

    // The order: confirm, process, ship with a tracking number, deliver.
    browser
        .goto(&format!("{base}/admin/orders?status=pending"))
        .await;
    click(browser, &format!("a[href='/admin/orders/{order_id}']")).await;
    for status in ["confirmed", "processing"] {
        click(browser, &format!("button[data-status={status}]")).await;
        wait_text(browser, "h1", status).await;
    }
    fill(browser, "#tracking-shipped", "DHL 00340434161094042557").await;
    click(browser, "button[data-status=shipped]").await;
    wait_text(browser, "h1", "shipped").await;
    click(browser, "button[data-status=delivered]").await;
    wait_text(browser, "h1", "delivered").await;
    let ledger = text(browser, "table.ledger").await;
    assert!(
        ledger.contains("order_hold") && ledger.contains("order_capture"),
        "{ledger}"
    );
    assert!(
        text(browser, "main")
            .await
            .contains("DHL 00340434161094042557")
    );
    screenshot(browser, "03-order").await;

    // A wallet adjustment with its reason.
    browser.goto(&format!("{base}/admin/users/{walker}")).await;
    fill(browser, "#amount", "250").await;
    fill(browser, "#reason", "Goodwill: parcel arrived late").await;
    click(browser, "form[action$='/wallet'] button").await;
    notice(browser, "adjusted").await;
    let adjusted = wallet(server, walker).await;
    assert_eq!(
        text(browser, "#available-coins").await.replace(',', ""),
        adjusted.to_string()
    );
    assert!(
        text(browser, "table.ledger")
            .await
            .contains("Goodwill: parcel arrived late")
    );

    // Disable the account, see it refused and marked, then enable it again.
    fill(browser, "#disable-reason", "Chargeback under review").await;
    click(browser, "form[action$='/disable'] button").await;
    notice(browser, "account is disabled").await;
    assert!(
        text(browser, "#account-status")
            .await
            .contains("Chargeback under review")
    );
    let refused = reqwest::Client::new()
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(refused, reqwest::StatusCode::FORBIDDEN);
    fill(browser, "#enable-reason", "Chargeback withdrawn").await;
    click(browser, "form[action$='/enable'] button").await;
    notice(browser, "account is enabled").await;
    assert!(text(browser, "#account-status").await.contains("enabled"));
    screenshot(browser, "04-user").await;

    // Import the catalogue file: a preview first, then apply.
    browser.goto(&format!("{base}/admin/products/import")).await;
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shopify_products.json");
    browser
        .find("#file")
        .await
        .send_keys(fixture.to_str().unwrap())
        .await;
    click(browser, "form[enctype] button").await;
    let created: i64 = text(browser, "#would-create")
        .await
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(created > 0, "the preview announces new products");
    let imported_before: i64 = imported_products(server).await;
    assert_eq!(imported_before, 0, "the preview changed nothing");
    screenshot(browser, "05-import-preview").await;
    click(browser, "form[action$='/apply'] button").await;
    notice(browser, "imported").await;
    let imported: i64 = imported_products(server).await;
    assert_eq!(imported, created);

    // A setting: the current value sits beside the new one; a bad value is refused.
    browser.goto(&format!("{base}/admin/settings")).await;
    let row = "tr[id='setting-rewards.daily_coin_cap']";
    fill(browser, &format!("{row} input[name=value]"), "-5").await;
    click(browser, &format!("{row} button")).await;
    wait_text(browser, ".error", "between").await;
    browser.goto(&format!("{base}/admin/settings")).await;
    assert_eq!(text(browser, &format!("{row} td.current")).await, "200");
    fill(browser, &format!("{row} input[name=value]"), "300").await;
    click(browser, &format!("{row} button")).await;
    notice(browser, "setting was saved").await;
    assert_eq!(text(browser, &format!("{row} td.current")).await, "300");
    screenshot(browser, "06-settings").await;

    // Every action is in the audit log, and the filter narrows it.
    browser.goto(&format!("{base}/admin/audit")).await;
    let log = text(browser, "main").await;
    for action in [
        "step_validation.approve",
        "step_validation.reject",
        "order.status",
        "wallet.adjust",
        "user.disable",
        "user.enable",
        "product.import",
        "setting.update",
    ] {
        assert!(log.contains(action), "{action} is in the audit log");
    }
    click(browser, "#action option[value='wallet.adjust']").await;
    click(browser, "form.filters button").await;
    let mut entries = browser.find_all("article.audit").await;
    for _ in 0..50 {
        if entries.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        entries = browser.find_all("article.audit").await;
    }
    assert_eq!(entries.len(), 1, "{}", text(browser, "main").await);
    let entry = entries[0].text().await;
    assert!(entry.contains("Goodwill: parcel arrived late") && entry.contains("Before"));
    screenshot(browser, "07-audit").await;

    // The dashboard draws its charts.
    browser.goto(&format!("{base}/admin/")).await;
    let charts = browser.find_all("figure.chart svg").await;
    assert!(charts.len() >= 5, "{} charts", charts.len());
    screenshot(browser, "08-dashboard").await;

    // At a phone's width nothing needs sideways scrolling outside the wide tables.
    browser.set_window_size(390, 844).await;
    for page in [
        "/admin/",
        "/admin/review",
        &format!("/admin/users/{walker}"),
    ] {
        browser.goto(&format!("{base}{page}")).await;
        let fits = browser
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
            .await;
        assert_eq!(fits, Value::Bool(true), "{page} fits a phone");
    }
    screenshot(browser, "09-phone-user").await;

    // Sign out: the console is closed again.
    click(browser, ".signout button").await;
    wait_path(browser, "/admin/login").await;
    browser.goto(&format!("{base}/admin/")).await;
    wait_path(browser, "/admin/login").await;
}
