//! Console sign-in, sessions and CSRF. A console session is a refresh token of an
//! administrator (issued by the same [`accounts::login`] as `/auth/login`, so it shares its
//! rate limits and is stored only as a hash), kept in an HttpOnly, SameSite=Strict cookie.
//! Every form carries a synchronizer token derived from the session secret.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::header::{COOKIE, HOST, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, extract::Request};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fitkart_protocol::auth::Role;
use rand::RngExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{ConsoleError, render, see_other};
use crate::auth::accounts;
use crate::auth::tokens::hash_refresh_token;
use crate::error::{DomainError, ErrorKind};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::Client;
use crate::http::query::ApiQuery;

/// The cookie holding the console session (an administrator's refresh token).
pub const SESSION_COOKIE: &str = "fitkart_console";
/// The cookie holding the sign-in form's CSRF token (there is no session yet).
const LOGIN_COOKIE: &str = "fitkart_console_login";
/// How long a console session lasts at most, whatever the refresh tokens' lifetime.
const SESSION_HOURS: i64 = 12;

/// The value of cookie `name`, if the request sent it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether the request was addressed to this machine (then cookies may go without `Secure`,
/// so the console works over plain HTTP on localhost).
fn is_localhost(headers: &HeaderMap) -> bool {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A `Set-Cookie` that ends the session cookie in the browser.
pub(super) fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("fitkart_console=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A random token for the sign-in form.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two strings in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// The CSRF token of a session secret: a hash that only the holder of the secret can compute
/// (the database stores another hash of it).
fn csrf_token(secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"fitkart-console-csrf\0");
    hasher.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// A console path that is safe to redirect to after sign-in (never another site).
fn safe_next(next: Option<&str>) -> Option<String> {
    next.filter(|n| {
        n.starts_with("/admin/")
            && !n.starts_with("/admin/login")
            && !n.contains("..")
            && n.len() <= 200
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
    })
    .map(str::to_owned)
}

/// A signed-in administrator. As an extractor it refuses (before the handler runs) a request
/// without a live session, with a 303 to the sign-in page, and a session of an account that
/// is not an administrator with 403.
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// The administrator's user id.
    pub admin_id: Uuid,
    /// Display name, for the page header.
    pub name: String,
    secret: String,
}

impl AdminSession {
    /// The token every form of this session carries.
    pub fn csrf(&self) -> String {
        csrf_token(&self.secret)
    }

    fn check_csrf(&self, given: Option<&str>) -> Result<(), ConsoleError> {
        match given {
            Some(given) if same(given, &self.csrf()) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let sign_in = || ConsoleError::SignIn {
            next: (parts.method == Method::GET)
                .then(|| safe_next(Some(parts.uri.path())))
                .flatten(),
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(sign_in());
        };
        let conn = state.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT u.id, u.role, u.display_name
                 FROM refresh_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.used_at IS NULL
                   AND t.expires_at > now()
                   AND t.created_at > now() - make_interval(hours => $2)
                   AND u.deleted_at IS NULL AND u.disabled_at IS NULL",
                &[&hash_refresh_token(secret), &(SESSION_HOURS as i32)],
            )
            .await?;
        let Some(row) = row else {
            return Err(sign_in());
        };
        if Role::parse(row.get("role")) != Some(Role::Admin) {
            return Err(ConsoleError::NotAdmin);
        }
        Ok(Self {
            admin_id: row.get("id"),
            name: row.get("display_name"),
            secret: secret.to_owned(),
        })
    }
}

/// A form sent by a signed-in administrator with the session's CSRF token: the session is
/// checked first, then the token, and only then is the form itself read. Form fields arrive
/// as text; handlers parse them with their own messages.
pub struct ConsoleForm<T>(pub AdminSession, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ConsoleForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = request.into_parts();
        let session = AdminSession::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map_err(|rejection| {
                ConsoleError::from(ApiError::bad_request(format!(
                    "the form could not be read: {}",
                    rejection.body_text()
                )))
            })?;
        let mut fields: HashMap<String, String> = pairs.into_iter().collect();
        session.check_csrf(fields.remove("csrf").as_deref())?;
        let object = fields
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect::<serde_json::Map<_, _>>();
        let form = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|err| ConsoleError::from(ApiError::validation("form", format!("{err}"))))?;
        Ok(Self(session, form))
    }
}

impl AdminSession {
    /// Checks the CSRF token of a form read some other way (the multipart upload).
    pub(super) fn check_form_token(&self, given: Option<&str>) -> Result<(), ConsoleError> {
        self.check_csrf(given)
    }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

/// Query of `GET /admin/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_response(
    status: StatusCode,
    headers: &HeaderMap,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Result<Response, ConsoleError> {
    let csrf = random_token();
    let page = render(&LoginPage {
        csrf: &csrf,
        next,
        email,
        error,
    })?;
    let mut response = (status, page).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &csrf, 3600, !is_localhost(headers)),
    );
    Ok(response)
}

/// `GET /admin/login`.
pub async fn login_page(
    headers: HeaderMap,
    query: Result<ApiQuery<LoginQuery>, ApiError>,
) -> Result<Response, ConsoleError> {
    let next = query
        .ok()
        .and_then(|ApiQuery(q)| safe_next(q.next.as_deref()));
    login_response(
        StatusCode::OK,
        &headers,
        next.as_deref().unwrap_or(""),
        "",
        None,
    )
}

/// Body of `POST /admin/login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /admin/login`: signs an administrator in (the same function, checks and rate limits
/// as `POST /api/v1/auth/login`); a user account is refused and its new session revoked.
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let Ok(Form(form)) = form else {
        return login_response(
            StatusCode::BAD_REQUEST,
            &headers,
            "",
            "",
            Some("The form could not be read. Try again."),
        );
    };
    let next = safe_next(Some(&form.next));
    let next = next.as_deref().unwrap_or("");
    let expected = cookie(&headers, LOGIN_COOKIE);
    if !expected.is_some_and(|expected| same(expected, &form.csrf)) {
        return login_response(
            StatusCode::FORBIDDEN,
            &headers,
            next,
            &form.email,
            Some("The sign-in form expired. Enter your details again."),
        );
    }
    let signed_in = accounts::login(
        &state.pool,
        &state.sessions(),
        &form.email,
        &form.password,
        &client,
    )
    .await;
    let tokens = match signed_in {
        Ok(tokens) => tokens,
        Err(err) => {
            let Some((status, message)) = refused_sign_in(&err) else {
                return Err(err.into());
            };
            return login_response(status, &headers, next, &form.email, Some(message));
        }
    };
    if tokens.user.role != Role::Admin {
        accounts::logout(&state.pool, &tokens.refresh_token).await?;
        return login_response(
            StatusCode::FORBIDDEN,
            &headers,
            next,
            &form.email,
            Some("This account is not an administrator: the console is for administrators only."),
        );
    }
    Ok(signed_in_response(&headers, next, &tokens.refresh_token))
}

/// The status and message the sign-in form shows for a refused sign-in; `None` for an error
/// that is not a refusal.
fn refused_sign_in(err: &DomainError) -> Option<(StatusCode, &'static str)> {
    if matches!(err.kind(), ErrorKind::RateLimited { .. }) {
        Some((
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins for this account or address. Wait a while and try again.",
        ))
    } else if err.code() == "account_disabled" {
        Some((
            StatusCode::FORBIDDEN,
            "This account is disabled. Another administrator can enable it again.",
        ))
    } else if err.kind() == ErrorKind::Unauthenticated {
        Some((StatusCode::UNAUTHORIZED, "The email or password is wrong."))
    } else {
        None
    }
}

/// Goes on to `next` (or the dashboard) with the session cookie set and the sign-in form's
/// cookie cleared.
fn signed_in_response(headers: &HeaderMap, next: &str, refresh_token: &str) -> Response {
    let secure = !is_localhost(headers);
    let mut response = see_other(if next.is_empty() { "/admin/" } else { next });
    let cookies = response.headers_mut();
    cookies.append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, refresh_token, SESSION_HOURS * 3600, secure),
    );
    cookies.append(SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0, secure));
    response
}

/// `POST /admin/logout`: revokes the session (its refresh-token family) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    ConsoleForm(session, _): ConsoleForm<serde_json::Value>,
) -> Result<Response, ConsoleError> {
    accounts::logout(&state.pool, &session.secret).await?;
    let mut response = see_other("/admin/login");
    response
        .headers_mut()
        .append(SET_COOKIE, clear_session_cookie());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("fitkart_console_login=a; fitkart_console=b"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("b"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("a"));
        assert_eq!(cookie(&headers, "other"), None);
    }

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/admin/orders")),
            Some("/admin/orders".into())
        );
        for bad in [
            "//evil.example/admin/",
            "https://evil.example/admin/",
            "/admin/../x",
            "/admin/login",
            "/admin/x?y=<z>",
            "/api/v1/admin/users",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn localhost_requests_may_use_plain_cookies() {
        let host = |h: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(HOST, HeaderValue::from_static(h));
            is_localhost(&headers)
        };
        assert!(host("localhost:8080"));
        assert!(host("127.0.0.1:3000"));
        assert!(host("[::1]:80"));
        assert!(!host("admin.fitkart.example"));
        assert!(!host("localhost.evil.example"));
    }

    #[test]
    fn the_csrf_token_depends_on_the_secret_and_is_not_its_stored_hash() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_ne!(
            csrf_token("a"),
            URL_SAFE_NO_PAD.encode(hash_refresh_token("a"))
        );
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
