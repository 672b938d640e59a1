//! The admin console over HTTP: who may open it (no session, a user's token or session are
//! refused on every route), sign-in and sign-out, CSRF, the security headers and escaping.
//! The browser tests (tests/console_browser.rs) drive the same pages in Chromium.

mod common;

use common::{PASSWORD, admin_log_rows, audit_rows, create_admin, imported_products, sign_up};
use fitkart_sync_server::console::CONTENT_SECURITY_POLICY;
use fitkart_sync_server::testing::TestServer;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, COOKIE, HOST, LOCATION, SET_COOKIE};
use uuid::Uuid;

/// A client that shows redirects instead of following them and keeps no cookies.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of cookie `name` among a response's `Set-Cookie` headers, with its
/// attributes.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap()
}

/// The value of the first hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// Opens the sign-in page and sends its form for `email` with [`PASSWORD`]; answers the
/// server's answer to the form.
async fn send_sign_in_form(server: &TestServer, email: &str) -> reqwest::Response {
    let http = http();
    let page = http.get(server.url("/admin/login")).send().await.unwrap();
    let login_cookie = set_cookie(&page, "fitkart_console_login").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    http.post(server.url("/admin/login"))
        .header(COOKIE, login_cookie.split(';').next().unwrap())
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in through the console's form; answers the session cookie (`fitkart_console=...`).
async fn console_sign_in(server: &TestServer, email: &str) -> String {
    let answer = send_sign_in_form(server, email).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&answer, "fitkart_console").expect("a session cookie");
    format!("fitkart_console={}", cookie_value(&session))
}

/// Every console route that is not public, with a body for the POST ones.
fn console_routes(user: Uuid) -> Vec<(&'static str, String)> {
    let any = Uuid::new_v4();
    vec![
        ("GET", "/admin/".into()),
        ("GET", "/admin/review".into()),
        ("POST", format!("/admin/review/{any}/approve")),
        ("POST", format!("/admin/review/{any}/reject")),
        ("GET", "/admin/orders".into()),
        ("GET", format!("/admin/orders/{any}")),
        ("POST", format!("/admin/orders/{any}/status")),
        ("GET", "/admin/users".into()),
        ("GET", format!("/admin/users/{user}")),
        ("POST", format!("/admin/users/{user}/wallet")),
        ("POST", format!("/admin/users/{user}/disable")),
        ("POST", format!("/admin/users/{user}/enable")),
        ("GET", "/admin/products".into()),
        ("GET", format!("/admin/products/{any}")),
        ("POST", format!("/admin/products/{any}")),
        ("POST", format!("/admin/products/{any}/deactivate")),
        ("GET", "/admin/products/import".into()),
        ("POST", "/admin/products/import".into()),
        ("POST", "/admin/products/import/apply".into()),
        ("GET", "/admin/settings".into()),
        ("POST", "/admin/settings/rewards.daily_coin_cap".into()),
        ("GET", "/admin/audit".into()),
        ("POST", "/admin/logout".into()),
        ("GET", "/admin/no-such-page".into()),
    ]
}

fn request(
    http: &reqwest::Client,
    server: &TestServer,
    method: &str,
    path: &str,
) -> reqwest::RequestBuilder {
    match method {
        "GET" => http.get(server.url(path)),
        _ => http.post(server.url(path)).form(&[
            ("amount", "500"),
            ("reason", "gift"),
            ("value", "999"),
            ("status", "shipped"),
            ("tracking_number", "T1"),
            ("note", "ok"),
            ("csrf", "guess"),
        ]),
    }
}

#[tokio::test]
async fn no_session_a_user_token_and_a_user_session_are_refused_on_every_console_route() {
    let server = TestServer::start().await.unwrap();
    let http = http();
    let user = sign_up(&http, &server, "walker@example.com", "Walker").await;
    create_admin(&server, "boss@example.com", "Boss").await;
    // A user's refresh token is what a console session is made of: sent as the cookie it
    // must still be refused, since the account is not an administrator.
    let user_session = format!("fitkart_console={}", user.refresh_token);
    let audited = admin_log_rows(&server).await;
    let routes = console_routes(user.user.id);
    for (method, path) in &routes {
        let at = format!("{method} {path}");

        let answer = request(&http, &server, method, path).send().await.unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::SEE_OTHER,
            "{at} without a session"
        );
        let location = answer.headers()[LOCATION].to_str().unwrap();
        assert!(location.starts_with("/admin/login"), "{at}: {location}");

        let answer = request(&http, &server, method, path)
            .header(AUTHORIZATION, format!("Bearer {}", user.access_token))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::SEE_OTHER,
            "{at} with a user token"
        );

        let answer = request(&http, &server, method, path)
            .header(COOKIE, &user_session)
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::FORBIDDEN,
            "{at} with a user session"
        );
        let page = answer.text().await.unwrap();
        assert!(page.contains("not an administrator"), "{at}: {page}");
        assert!(
            !page.contains("Walker"),
            "{at} shows nothing of the console"
        );
    }
    // An administrator's API token is not a console session either.
    let admin = common::sign_in(&http, &server, "boss@example.com").await;
    let answer = http
        .get(server.url("/admin/"))
        .header(AUTHORIZATION, format!("Bearer {}", admin.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);

    assert_eq!(admin_log_rows(&server).await, audited, "nothing was done");
    let wallet: i64 = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT available_coins FROM wallets WHERE user_id = $1",
            &[&user.user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wallet, 0);
}

#[tokio::test]
async fn a_user_account_cannot_sign_in_and_its_new_session_is_revoked() {
    let server = TestServer::start().await.unwrap();
    let http = http();
    sign_up(&http, &server, "walker@example.com", "Walker").await;
    let answer = send_sign_in_form(&server, "walker@example.com").await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&answer, "fitkart_console").is_none());
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("not an administrator")
    );
    let live: i64 = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM refresh_tokens t JOIN users u ON u.id = t.user_id
             WHERE u.email = 'walker@example.com' AND t.revoked_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 1, "only the registration's session is live");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_secure_outside_localhost() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let http = http();
    for (host, secure) in [(None, false), (Some("admin.fitkart.example"), true)] {
        let mut get = http.get(server.url("/admin/login"));
        if let Some(host) = host {
            get = get.header(HOST, host);
        }
        let page = get.send().await.unwrap();
        let login_cookie = set_cookie(&page, "fitkart_console_login").unwrap();
        assert_eq!(login_cookie.contains("Secure"), secure, "{login_cookie}");
        let csrf = hidden(&page.text().await.unwrap(), "csrf");
        let mut post = http
            .post(server.url("/admin/login"))
            .header(COOKIE, login_cookie.split(';').next().unwrap())
            .form(&[
                ("email", "boss@example.com"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", "/admin/orders"),
            ]);
        if let Some(host) = host {
            post = post.header(HOST, host);
        }
        let answer = post.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        assert_eq!(answer.headers()[LOCATION], "/admin/orders");
        let cookie = set_cookie(&answer, "fitkart_console").unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
        // Only a hash of the secret is stored.
        let secret = cookie_value(&cookie);
        let stored: i64 = server
            .db()
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT count(*) FROM refresh_tokens WHERE token_hash = sha256($1::text::bytea)",
                &[&secret],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, 1);
    }
}

#[tokio::test]
async fn the_sign_in_form_needs_its_csrf_token_and_a_redirect_stays_in_the_console() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let http = http();
    let answer = http
        .post(server.url("/admin/login"))
        .form(&[
            ("email", "boss@example.com"),
            ("password", PASSWORD),
            ("csrf", "made-up"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&answer, "fitkart_console").is_none());

    let page = http.get(server.url("/admin/login")).send().await.unwrap();
    let login_cookie = set_cookie(&page, "fitkart_console_login").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let answer = http
        .post(server.url("/admin/login"))
        .header(COOKIE, login_cookie.split(';').next().unwrap())
        .form(&[
            ("email", "boss@example.com"),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("next", "//evil.example/admin/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/admin/");
}

#[tokio::test]
async fn console_sign_in_shares_the_api_sign_in_rate_limits() {
    let server = TestServer::start_with(|config| config.login_limits.per_account = 3)
        .await
        .unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let http = http();
    for _ in 0..3 {
        let (status, _) = common::answer(http.post(server.url("/api/v1/auth/login")).json(
            &serde_json::json!({"email": "boss@example.com", "password": "wrong password!"}),
        ))
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let page = http.get(server.url("/admin/login")).send().await.unwrap();
    let login_cookie = set_cookie(&page, "fitkart_console_login").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let answer = http
        .post(server.url("/admin/login"))
        .header(COOKIE, login_cookie.split(';').next().unwrap())
        .form(&[
            ("email", "boss@example.com"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&answer, "fitkart_console").is_none());
    assert!(answer.text().await.unwrap().contains("Too many"));
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_changes_nothing() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let http = http();
    let walker = sign_up(&http, &server, "walker@example.com", "Walker").await;
    let session = console_sign_in(&server, "boss@example.com").await;
    let other = console_sign_in(&server, "boss@example.com").await;
    let page = http
        .get(server.url(&format!("/admin/users/{}", walker.user.id)))
        .header(COOKIE, &other)
        .send()
        .await
        .unwrap();
    let other_csrf = hidden(&page.text().await.unwrap(), "csrf");
    let path = format!("/admin/users/{}/wallet", walker.user.id);
    let audited = admin_log_rows(&server).await;
    for csrf in [None, Some("wrong"), Some(other_csrf.as_str())] {
        let mut form = vec![("amount", "500"), ("reason", "gift")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let answer = http
            .post(server.url(&path))
            .header(COOKIE, &session)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "csrf {csrf:?}");
        assert!(answer.text().await.unwrap().contains("csrf_failed"));
    }
    assert_eq!(admin_log_rows(&server).await, audited);

    // With this session's token the same form works and is audited like the API's.
    let page = http
        .get(server.url(&format!("/admin/users/{}", walker.user.id)))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let answer = http
        .post(server.url(&path))
        .header(COOKIE, &session)
        .form(&[("amount", "500"), ("reason", "gift"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let row = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT action, reason FROM admin_logs WHERE entity_id = $1",
            &[&walker.user.id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "wallet.adjust");
    assert_eq!(row.get::<_, String>(1), "gift");
}

#[tokio::test]
async fn every_console_answer_carries_the_security_headers() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let session = console_sign_in(&server, "boss@example.com").await;
    let http = http();
    let mut paths: Vec<(String, bool)> = vec![
        ("/admin/login".into(), false),
        ("/admin/".into(), true),
        ("/admin/review".into(), true),
        ("/admin/orders".into(), true),
        ("/admin/users".into(), true),
        ("/admin/products".into(), true),
        ("/admin/products/import".into(), true),
        ("/admin/settings".into(), true),
        ("/admin/audit".into(), true),
        ("/admin/orders/not-an-id".into(), true),
        ("/admin/assets/console.css".into(), false),
        ("/admin/assets/console.js".into(), false),
    ];
    paths.push((format!("/admin/users/{}", Uuid::new_v4()), true));
    for (path, signed_in) in paths {
        let mut request = http.get(server.url(&path));
        if signed_in {
            request = request.header(COOKIE, &session);
        }
        let answer = request.send().await.unwrap();
        assert!(
            answer.status().is_success() || answer.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.status()
        );
        let headers = answer.headers();
        assert_eq!(
            headers["content-security-policy"], CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        if !path.starts_with("/admin/assets/") {
            assert_eq!(headers["cache-control"], "no-store", "{path}");
            let page = answer.text().await.unwrap();
            assert!(!page.contains("<script>"), "{path}: no inline script");
            assert!(!page.contains("style="), "{path}: no inline style");
        }
    }
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
}

/// A page's text with HTML's character references for `<>"'&` resolved.
fn unescape(page: &str) -> String {
    [
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(page.to_owned(), |text, (reference, character)| {
        text.replace(reference, character)
    })
}

#[tokio::test]
async fn values_from_users_are_html_escaped() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let http = http();
    let evil = sign_up(
        &http,
        &server,
        "evil@example.com",
        "<script>alert(1)</script>\"'&",
    )
    .await;
    let session = console_sign_in(&server, "boss@example.com").await;
    for path in [
        format!("/admin/users?q={}", "evil"),
        format!("/admin/users/{}", evil.user.id),
    ] {
        let page = http
            .get(server.url(&path))
            .header(COOKIE, &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!page.contains("<script>alert"), "{path}");
        assert!(
            unescape(&page).contains("<script>alert(1)</script>\"'&"),
            "{path} shows the name, escaped: {page}"
        );
    }
    // A search term is echoed escaped too.
    let page = http
        .get(server.url("/admin/users?q=%22%3E%3Cb%3E"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("\"><b>"));
    assert!(unescape(&page).contains("\"><b>"));
}

#[tokio::test]
async fn sign_out_revokes_the_session() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let session = console_sign_in(&server, "boss@example.com").await;
    let http = http();
    let page = http
        .get(server.url("/admin/"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let answer = http
        .post(server.url("/admin/logout"))
        .header(COOKIE, &session)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie(&answer, "fitkart_console")
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie no longer opens anything, even if the browser kept it.
    let answer = http
        .get(server.url("/admin/"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_demoted_administrator_loses_the_console_at_once() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let session = console_sign_in(&server, "boss@example.com").await;
    common::execute(
        &server,
        "UPDATE users SET role = 'user' WHERE email = 'boss@example.com'",
        &[],
    )
    .await;
    let answer = http()
        .get(server.url("/admin/users"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
}

/// Posts a console form with the CSRF token of the page at `page`.
async fn post_form(
    server: &TestServer,
    session: &str,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let http = http();
    let html = http
        .get(server.url(page))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let mut form = fields.to_vec();
    form.push(("csrf", &csrf));
    http.post(server.url(action))
        .header(COOKIE, session)
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_administrator_disables_and_enables_an_account_from_its_page() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    create_admin(&server, "deputy@example.com", "Deputy").await;
    let http = http();
    let walker = sign_up(&http, &server, "walker@example.com", "Walker").await;
    let boss = console_sign_in(&server, "boss@example.com").await;
    let deputy = console_sign_in(&server, "deputy@example.com").await;
    let page = format!("/admin/users/{}", walker.user.id);
    let login = |email: &'static str| {
        let server = &server;
        let http = &http;
        async move {
            http.post(server.url("/api/v1/auth/login"))
                .json(&serde_json::json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let audited = |action: &'static str| audit_rows(&server, action);

    // Without a reason nothing happens.
    let answer = post_form(
        &server,
        &boss,
        &page,
        &format!("{page}/disable"),
        &[("reason", " ")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(login("walker@example.com").await, StatusCode::OK);

    let answer = post_form(
        &server,
        &boss,
        &page,
        &format!("{page}/disable"),
        &[("reason", "card fraud <b>")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        answer.headers()[LOCATION],
        format!("{page}?done=disabled").as_str()
    );
    assert_eq!(login("walker@example.com").await, StatusCode::FORBIDDEN);
    assert_eq!(audited("user.disable").await, 1);
    let shown = http
        .get(server.url(&format!("{page}?done=disabled")))
        .header(COOKIE, &boss)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("The account is disabled"));
    assert!(!shown.contains("card fraud <b>"), "the reason is escaped");
    assert!(
        unescape(&shown).contains("card fraud <b>"),
        "the reason is shown"
    );
    assert!(shown.contains("Enable account"));
    let list = http
        .get(server.url("/admin/users?q=walker"))
        .header(COOKIE, &boss)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains(">disabled<"));

    // An administrator's own page offers no way to lock themselves out.
    let own = http
        .get(server.url(&format!("/admin/users/{}", admin_id(&server, "boss").await)))
        .header(COOKIE, &boss)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!own.contains("Disable account"));
    assert!(own.contains("This is your own account"));

    // A disabled administrator loses the open console session and cannot sign in again.
    let deputy_page = format!("/admin/users/{}", admin_id(&server, "deputy").await);
    let answer = post_form(
        &server,
        &boss,
        &deputy_page,
        &format!("{deputy_page}/disable"),
        &[("reason", "left the company")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let answer = http
        .get(server.url("/admin/"))
        .header(COOKIE, &deputy)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::SEE_OTHER,
        "back to the sign-in page"
    );
    let answer = send_sign_in_form(&server, "deputy@example.com").await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&answer, "fitkart_console").is_none());
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("This account is disabled")
    );

    let answer = post_form(
        &server,
        &boss,
        &page,
        &format!("{page}/enable"),
        &[("reason", "the bank cleared it")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(login("walker@example.com").await, StatusCode::OK);
    assert_eq!(audited("user.enable").await, 1);
}

async fn admin_id(server: &TestServer, name: &str) -> Uuid {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT id FROM users WHERE email = $1",
            &[&format!("{name}@example.com")],
        )
        .await
        .unwrap()
        .get(0)
}

/// A `multipart/form-data` body of text fields and one file field, as a browser sends it.
fn multipart(fields: &[(&str, &str)], file: (&str, &[u8])) -> (String, Vec<u8>) {
    let boundary = format!("----fitkart{}", Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{}\"; filename=\"products.json\"\r\ncontent-type: application/json\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn an_import_previewed_on_one_instance_is_applied_on_another_once() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let session = console_sign_in(&server, "boss@example.com").await;
    // A second instance on the same database, as behind a load balancer.
    let mut config = fitkart_sync_server::config::ServerConfig::new(
        server.db().url(),
        fitkart_sync_server::config::JwtSecret::generate(),
    );
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let other = fitkart_sync_server::server::Server::bind(config)
        .await
        .unwrap();
    let other_url = format!("http://{}", other.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let other = tokio::spawn(other.run(async {
        let _ = stopped.await;
    }));

    let http = http();
    let form = http
        .get(server.url("/admin/products/import"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let feed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/shopify_products.json"
    ))
    .unwrap();
    let (content_type, body) = multipart(&[("csrf", &hidden(&form, "csrf"))], ("file", &feed));
    let preview = http
        .post(server.url("/admin/products/import"))
        .header(COOKIE, &session)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status(), StatusCode::OK);
    let page = preview.text().await.unwrap();
    let (preview_id, csrf) = (hidden(&page, "preview"), hidden(&page, "csrf"));
    let products = || imported_products(&server);

    assert_eq!(products().await, 0, "a preview changes nothing");

    let apply = |base: String| {
        let http = &http;
        let session = &session;
        let form = [("preview", preview_id.clone()), ("csrf", csrf.clone())];
        async move {
            http.post(format!("{base}/admin/products/import/apply"))
                .header(COOKIE, session)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(apply(other_url.clone()).await, StatusCode::SEE_OTHER);
    let imported = products().await;
    assert!(imported > 0);
    // Applying it again, on either instance, finds nothing to apply.
    assert_eq!(apply(server.url("")).await, StatusCode::NOT_FOUND);
    assert_eq!(apply(other_url).await, StatusCode::NOT_FOUND);
    assert_eq!(products().await, imported);
    assert_eq!(audit_rows(&server, "product.import").await, 1);
    let _ = stop.send(());
    other.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bad_query_value_is_a_422_page_naming_the_parameter_as_in_the_api() {
    let server = TestServer::start().await.unwrap();
    create_admin(&server, "boss@example.com", "Boss").await;
    let session = console_sign_in(&server, "boss@example.com").await;
    let http = http();
    for (path, parameter) in [
        ("/admin/orders?offset=many", "offset"),
        ("/admin/orders?offset=1&offset=2", "offset"),
        ("/admin/users?q=a%00b", "q"),
    ] {
        let answer = http
            .get(server.url(path))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}: the console answers a page"
        );
        let page = answer.text().await.unwrap();
        assert!(
            page.contains(parameter),
            "{path}: the page names `{parameter}`"
        );
    }
    let fine = http
        .get(server.url("/admin/orders?offset=0"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
}
