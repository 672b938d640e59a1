//! The console's pages and form handlers. Handlers are thin: the session extractor refuses
//! strangers, the form extractor checks the CSRF token, then the admin API's own domain
//! function does the work (and writes the audit row); a change answers with a redirect back
//! to its page (post/redirect/get) carrying a notice code.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Path, State};
use axum::response::{Html, Response};
use chrono::{DateTime, Days, NaiveDate, Utc};
use fitkart_protocol::orders::{ImportReport, Order, OrderStatusRequest, ProductInput};
use fitkart_protocol::validate;
use serde::Deserialize;
use uuid::Uuid;

use super::charts::{self, Chart, Gauge, Series, num};
use super::data::{self, DeviceLine, LedgerLine, ProductLine, RecordTiming, UserLine};
use super::session::ConsoleForm;
use super::{AdminSession, ConsoleError, render, see_other};
use crate::admin::{self, AuditLogEntry, LogFilter, Setting, UserDetail};
use crate::auth::accounts::AdminUserSummary;
use crate::error::DomainError;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::Client;
use crate::http::query::ApiQuery;
use crate::rewards::review::{self, Decision, Validation};
use crate::rewards::settings::RewardSettings;
use crate::shop::orders::workflow::OrderStatus;
use crate::shop::shopify::{self, Feed, ImportContext, ImportOptions};

/// What every page shows around its content.
pub struct Chrome {
    admin_id: Uuid,
    admin_name: String,
    csrf: String,
    section: &'static str,
    notice: Option<&'static str>,
}

/// The message of a notice code a redirect carries (only these fixed texts are shown).
fn notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "approved" => "Approved: the record is verified and its coins were paid.",
        "rejected" => "Rejected: the record will never pay.",
        "status" => "The order moved to its new status.",
        "adjusted" => "The wallet was adjusted.",
        "disabled" => "The account is disabled: its sessions ended and it cannot sign in.",
        "enabled" => "The account is enabled: it can sign in again.",
        "saved" => "The product was saved.",
        "deactivated" => "The product was deactivated.",
        "imported" => "The catalogue was imported.",
        "setting" => "The setting was saved and applies at once.",
        _ => return None,
    })
}

fn chrome(session: &AdminSession, section: &'static str, done: Option<&str>) -> Chrome {
    Chrome {
        admin_id: session.admin_id,
        admin_name: session.name.clone(),
        csrf: session.csrf(),
        section,
        notice: notice(done),
    }
}

/// A query string read by the API's one query extractor ([`ApiQuery`]: its 422 naming the
/// parameter), or that error as a page.
fn query<T>(query: Result<ApiQuery<T>, ApiError>) -> Result<T, ConsoleError> {
    query.map(|ApiQuery(q)| q).map_err(ConsoleError::from)
}

/// A path id, or a 404 page.
fn path_id(path: Result<Path<Uuid>, PathRejection>, what: &str) -> Result<Uuid, ConsoleError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::not_found(format!("no such {what}")).into())
}

fn invalid(err: validate::Invalid, back: &str) -> ConsoleError {
    ConsoleError::with_back(ApiError::from(err), back)
}

fn blank_is_none(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty())
}

/// Query with only a notice code.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    done: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    from: NaiveDate,
    to: NaiveDate,
    active_users: i64,
    queue: i64,
    flagged_share: String,
    charts: Vec<Chart>,
}

/// `GET /admin/`: the programme at a glance over the last 30 days.
pub async fn dashboard(
    State(state): State<AppState>,
    session: AdminSession,
) -> Result<Html<String>, ConsoleError> {
    let to = Utc::now().date_naive();
    let from = to.checked_sub_days(Days::new(29)).unwrap_or(to);
    let conn = state.pool.get().await?;
    let analytics = admin::analytics(&conn, from, to).await?;
    let queue = data::review_queue_size(&conn).await?;
    let flagged = data::flagged_per_day(&conn, from, to).await?;

    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let charts = dashboard_charts(&days, &analytics, flagged_share_per_day(&days, &flagged));
    let flagged_share = flagged_share_summary(&flagged);
    render(&DashboardPage {
        chrome: chrome(&session, "dashboard", None),
        from,
        to,
        active_users: analytics.active_users,
        queue,
        flagged_share,
        charts,
    })
}

/// The flagged share of step records (in whole percent) on each of `days`, from
/// (day, records, flagged) counts; 0 on a day without records.
fn flagged_share_per_day(days: &[NaiveDate], flagged: &[(NaiveDate, i64, i64)]) -> Vec<i64> {
    let flagged_by_day: HashMap<NaiveDate, (i64, i64)> = flagged
        .iter()
        .map(|(day, records, flagged)| (*day, (*records, *flagged)))
        .collect();
    days.iter()
        .map(|d| match flagged_by_day.get(d) {
            Some((records, flagged)) if *records > 0 => flagged * 100 / records,
            _ => 0,
        })
        .collect()
}

/// The flagged share of all step records in the period, as the dashboard words it.
fn flagged_share_summary(flagged: &[(NaiveDate, i64, i64)]) -> String {
    let (all_records, all_flagged) = flagged
        .iter()
        .fold((0, 0), |(r, f), (_, records, flagged)| {
            (r + records, f + flagged)
        });
    if all_records == 0 {
        "no step records".to_owned()
    } else {
        format!(
            "{:.1}% of {} step records",
            all_flagged as f64 * 100.0 / all_records as f64,
            num(all_records)
        )
    }
}

/// The dashboard's charts: walkers, steps, coins issued and spent per day, orders by status,
/// and the flagged `share` per day.
fn dashboard_charts(
    days: &[NaiveDate],
    analytics: &admin::Analytics,
    share: Vec<i64>,
) -> Vec<Chart> {
    let labels: Vec<String> = days.iter().map(|d| d.format("%m-%d").to_string()).collect();
    let by_day: HashMap<NaiveDate, &admin::AnalyticsDay> =
        analytics.days.iter().map(|d| (d.date, d)).collect();
    let per_day = |value: fn(&admin::AnalyticsDay) -> i64| -> Vec<i64> {
        days.iter()
            .map(|d| by_day.get(d).map_or(0, |day| value(day)))
            .collect()
    };
    vec![
        charts::columns(
            "Active users per day (walked that day)",
            &labels,
            vec![Series {
                name: "users",
                class: "s1",
                values: per_day(|d| d.walkers),
            }],
            "",
        ),
        charts::columns(
            "Verified steps per day",
            &labels,
            vec![Series {
                name: "steps",
                class: "s1",
                values: per_day(|d| d.total_steps),
            }],
            "",
        ),
        charts::columns(
            "Coins issued against coins spent per day",
            &labels,
            vec![
                Series {
                    name: "issued",
                    class: "s1",
                    values: per_day(|d| d.coins_issued),
                },
                Series {
                    name: "spent",
                    class: "s2",
                    values: per_day(|d| d.coins_spent),
                },
            ],
            "",
        ),
        orders_by_status_chart(analytics),
        charts::columns(
            "Flagged share of step records per day",
            &labels,
            vec![Series {
                name: "flagged",
                class: "s2",
                values: share,
            }],
            "%",
        ),
    ]
}

/// Orders by status, all time, in workflow order.
fn orders_by_status_chart(analytics: &admin::Analytics) -> Chart {
    let statuses = OrderStatus::ALL.map(OrderStatus::as_str);
    let status_labels: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
    charts::columns(
        "Orders by status (all time)",
        &status_labels,
        vec![Series {
            name: "orders",
            class: "s3",
            values: statuses
                .iter()
                .map(|s| {
                    analytics
                        .orders_by_status
                        .get(*s)
                        .copied()
                        .unwrap_or_default()
                })
                .collect(),
        }],
        "",
    )
}

// ---------------------------------------------------------------------------------------------
// Review queue
// ---------------------------------------------------------------------------------------------

/// The verified steps of the user's last two weeks up to the flagged day, beside the
/// flagged claim.
async fn recent_days_chart(
    conn: &deadpool_postgres::Client,
    validation: &Validation,
) -> Result<Chart, ConsoleError> {
    let from = validation
        .date
        .checked_sub_days(Days::new(13))
        .unwrap_or(validation.date);
    let history = data::step_days(conn, validation.user_id, from, validation.date).await?;
    let verified: HashMap<NaiveDate, i64> = history.iter().map(|(d, s, _)| (*d, *s)).collect();
    let days: Vec<NaiveDate> = from
        .iter_days()
        .take_while(|d| *d <= validation.date)
        .collect();
    let labels: Vec<String> = days.iter().map(|d| d.format("%m-%d").to_string()).collect();
    Ok(charts::columns(
        "Verified steps on the user's recent days, and the flagged claim",
        &labels,
        vec![
            Series {
                name: "verified",
                class: "s1",
                values: days
                    .iter()
                    .map(|d| verified.get(d).copied().unwrap_or(0))
                    .collect(),
            },
            Series {
                name: "claimed",
                class: "s2",
                values: days
                    .iter()
                    .map(|d| {
                        if *d == validation.date {
                            validation.claimed_steps
                        } else {
                            0
                        }
                    })
                    .collect(),
            },
        ],
        "",
    ))
}

/// The pace to show on the cadence gauge and where it comes from: the sustained cadence the
/// report was flagged for, else the average pace between the first and last report.
fn review_pace(validation: &Validation, timing: Option<&RecordTiming>) -> (f64, &'static str) {
    let flagged_cadence = validation
        .reasons
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["code"] == "sustained_running_cadence")
        .and_then(|r| r["value"].as_f64());
    match (flagged_cadence, timing) {
        (Some(pace), _) => (pace, "the sustained cadence the report implied"),
        (None, Some(timing)) => {
            let minutes =
                (timing.last_recorded_at - timing.first_recorded_at).num_seconds() as f64 / 60.0;
            let gained = (validation.claimed_steps - validation.previous_steps).max(0) as f64;
            if minutes >= 1.0 {
                (
                    gained / minutes,
                    "the average pace between the first and last report",
                )
            } else {
                (0.0, "a single report: no pace to show")
            }
        }
        (None, None) => (0.0, "no timing known"),
    }
}

/// One reason a record was flagged.
struct Reason {
    label: &'static str,
    value: String,
    threshold: String,
}

fn reasons(value: &serde_json::Value) -> Vec<Reason> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|reason| {
            let code = reason["code"].as_str().unwrap_or("");
            let number = |key: &str| reason[key].as_f64().unwrap_or(0.0);
            let (label, digits) = match code {
                "above_soft_daily_max" => ("Day total above the soft daily maximum", 0),
                "sustained_running_cadence" => ("Sustained running cadence (steps per minute)", 0),
                "statistical_outlier" => ("Far above the user's usual days (z-score)", 1),
                _ => ("Another rule", 1),
            };
            Reason {
                label,
                value: format!("{:.*}", digits, number("value")),
                threshold: format!("{:.*}", digits, number("threshold")),
            }
        })
        .collect()
}

struct ReviewItem {
    validation: Validation,
    user: Option<UserLine>,
    reasons: Vec<Reason>,
    days: Chart,
    cadence: Gauge,
    cadence_source: &'static str,
    timing: Option<RecordTiming>,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    chrome: Chrome,
    items: Vec<ReviewItem>,
    queue: i64,
}

/// `GET /admin/review`: the oldest flagged records first, each with its reasons, the user's
/// recent days and a picture of its cadence.
pub async fn review_queue(
    State(state): State<AppState>,
    session: AdminSession,
    notice_query: Result<ApiQuery<NoticeQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let done = query(notice_query)?.done;
    let conn = state.pool.get().await?;
    let pending = review::list(&conn, "pending_review", 25, 0).await?;
    let queue = data::review_queue_size(&conn).await?;
    let settings = RewardSettings::load(&conn).await?;
    let ids: Vec<Uuid> = pending.iter().map(|v| v.user_id).collect();
    let users: HashMap<Uuid, UserLine> = data::users_by_id(&conn, &ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let mut items = Vec::with_capacity(pending.len());
    for validation in pending {
        let chart = recent_days_chart(&conn, &validation).await?;
        let timing = data::record_timing(&conn, validation.id).await?;
        let (pace, cadence_source) = review_pace(&validation, timing.as_ref());
        let cadence = charts::gauge(
            pace,
            &[
                ("running", settings.running_cadence_spm),
                ("impossible", settings.hard_cadence_spm),
            ],
            "steps/min",
        );
        items.push(ReviewItem {
            user: users.get(&validation.user_id).cloned(),
            reasons: reasons(&validation.reasons),
            days: chart,
            cadence,
            cadence_source,
            timing,
            validation,
        });
    }
    render(&ReviewPage {
        chrome: chrome(&session, "review", done.as_deref()),
        items,
        queue,
    })
}

/// Body of the approve and reject forms.
#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    note: String,
}

async fn decide(
    state: AppState,
    session: AdminSession,
    client: crate::auth::accounts::ClientInfo,
    path: Result<Path<Uuid>, PathRejection>,
    form: ReviewForm,
    decision: Decision,
) -> Result<Response, ConsoleError> {
    let back = "/admin/review";
    let id = path_id(path, "flagged record")?;
    let note = blank_is_none(&form.note);
    validate::optional_text("note", note, 1000).map_err(|e| invalid(e, back))?;
    review::decide(&state.pool, session.admin_id, id, decision, note, &client)
        .await
        .map_err(|e| ConsoleError::with_back(e, back))?;
    Ok(see_other(match decision {
        Decision::Approve => "/admin/review?done=approved",
        Decision::Reject => "/admin/review?done=rejected",
    }))
}

/// `POST /admin/review/{id}/approve` (`note` optional).
pub async fn approve(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ConsoleForm(session, form): ConsoleForm<ReviewForm>,
) -> Result<Response, ConsoleError> {
    decide(state, session, client, path, form, Decision::Approve).await
}

/// `POST /admin/review/{id}/reject` (`note` optional).
pub async fn reject(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ConsoleForm(session, form): ConsoleForm<ReviewForm>,
) -> Result<Response, ConsoleError> {
    decide(state, session, client, path, form, Decision::Reject).await
}

// ---------------------------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------------------------

/// Query of `GET /admin/orders`.
#[derive(Debug, Default, Deserialize)]
pub struct OrderQuery {
    status: Option<String>,
    offset: Option<i64>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    chrome: Chrome,
    statuses: [&'static str; 7],
    status: String,
    orders: Vec<(Order, Option<UserLine>)>,
    total: i64,
    offset: i64,
    next_offset: Option<i64>,
}

const PAGE: i64 = 50;

/// `GET /admin/orders?status=`: newest first.
pub async fn orders(
    State(state): State<AppState>,
    session: AdminSession,
    order_query: Result<ApiQuery<OrderQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let q = query(order_query)?;
    let status = q
        .status
        .filter(|s| OrderStatus::parse(s).is_some())
        .unwrap_or_default();
    let offset = q.offset.unwrap_or(0).max(0);
    let conn = state.pool.get().await?;
    let (orders, total) =
        crate::shop::orders::list(&conn, None, blank_is_none(&status), PAGE, offset).await?;
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let owners: HashMap<Uuid, Uuid> = conn
        .query("SELECT id, user_id FROM orders WHERE id = ANY($1)", &[&ids])
        .await?
        .iter()
        .map(|row| (row.get("id"), row.get("user_id")))
        .collect();
    let user_ids: Vec<Uuid> = owners.values().copied().collect();
    let users: HashMap<Uuid, UserLine> = data::users_by_id(&conn, &user_ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let orders = orders
        .into_iter()
        .map(|order| {
            let user = owners.get(&order.id).and_then(|u| users.get(u)).cloned();
            (order, user)
        })
        .collect();
    render(&OrdersPage {
        chrome: chrome(&session, "orders", q.done.as_deref()),
        statuses: OrderStatus::ALL.map(OrderStatus::as_str),
        status,
        orders,
        total,
        offset,
        next_offset: (offset + PAGE < total).then_some(offset + PAGE),
    })
}

/// A move an order can make next, as a form on its page.
struct NextStep {
    status: &'static str,
    label: &'static str,
    needs_tracking: bool,
    needs_reason: bool,
}

/// The moves the order page offers from `status` (the domain decides what is allowed; this
/// only chooses which buttons to show).
fn next_steps(status: &str) -> Vec<NextStep> {
    let step = |status, label, needs_tracking, needs_reason| NextStep {
        status,
        label,
        needs_tracking,
        needs_reason,
    };
    let cancel = || step("cancelled", "Cancel and release the coins", false, true);
    match status {
        "pending" => vec![step("confirmed", "Confirm", false, false), cancel()],
        "confirmed" => vec![
            step("processing", "Start processing", false, false),
            cancel(),
        ],
        "processing" => vec![step("shipped", "Mark shipped", true, false), cancel()],
        "shipped" => vec![step("delivered", "Mark delivered", false, false)],
        "delivered" => vec![step("refunded", "Refund the coins", false, true)],
        _ => Vec::new(),
    }
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    chrome: Chrome,
    order: Order,
    user: Option<UserLine>,
    ledger: Vec<LedgerLine>,
    next: Vec<NextStep>,
}

/// `GET /admin/orders/{id}`: the order, its ledger entries and its next moves.
pub async fn order_detail(
    State(state): State<AppState>,
    session: AdminSession,
    path: Result<Path<Uuid>, PathRejection>,
    notice_query: Result<ApiQuery<NoticeQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let id = path_id(path, "order")?;
    let done = query(notice_query)?.done;
    let conn = state.pool.get().await?;
    let owner = data::order_owner(&conn, id).await?;
    let order = crate::shop::orders::get_own(&conn, owner, id).await?;
    let user = data::users_by_id(&conn, &[owner]).await?.into_iter().next();
    let ledger = data::order_ledger(&conn, id).await?;
    render(&OrderPage {
        chrome: chrome(&session, "orders", done.as_deref()),
        next: next_steps(&order.status),
        order,
        user,
        ledger,
    })
}

/// Body of the order status forms.
#[derive(Debug, Deserialize)]
pub struct StatusForm {
    status: String,
    #[serde(default)]
    tracking_number: String,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/orders/{id}/status`: the admin API's transition, with its money and stock
/// effects and its audit row.
pub async fn order_status(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ConsoleForm(session, form): ConsoleForm<StatusForm>,
) -> Result<Response, ConsoleError> {
    let id = path_id(path, "order")?;
    let back = format!("/admin/orders/{id}");
    let request = OrderStatusRequest {
        status: form.status.trim().to_owned(),
        tracking_number: blank_is_none(&form.tracking_number).map(str::to_owned),
        reason: blank_is_none(&form.reason).map(str::to_owned),
    };
    validate::optional_text("reason", request.reason.as_deref(), 500)
        .map_err(|e| invalid(e, &back))?;
    crate::shop::orders::transition(
        &state.pool,
        crate::shop::orders::Actor::Admin(session.admin_id),
        id,
        &request,
        &client,
    )
    .await
    .map_err(|e| ConsoleError::with_back(e, back.clone()))?;
    Ok(see_other(&format!("{back}?done=status")))
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/// Query of `GET /admin/users`.
#[derive(Debug, Default, Deserialize)]
pub struct UserQuery {
    #[serde(default)]
    q: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    q: String,
    users: Vec<AdminUserSummary>,
    total: i64,
}

/// `GET /admin/users?q=`: accounts whose email or name starts with `q`.
pub async fn users(
    State(state): State<AppState>,
    session: AdminSession,
    user_query: Result<ApiQuery<UserQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let q = query(user_query)?.q;
    validate::text("q", &q, 200).map_err(|e| invalid(e, "/admin/users"))?;
    let (users, total) = crate::auth::accounts::search_users(&state.pool, &q, PAGE, 0).await?;
    render(&UsersPage {
        chrome: chrome(&session, "users", None),
        q,
        users,
        total,
    })
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    user: UserDetail,
    ledger: Vec<LedgerLine>,
    steps: Chart,
    devices: Vec<DeviceLine>,
    achievements: Vec<(String, i64, DateTime<Utc>)>,
    adjustment_key: String,
}

/// `GET /admin/users/{id}`: wallet, ledger, steps, orders, devices and achievements.
pub async fn user_detail(
    State(state): State<AppState>,
    session: AdminSession,
    path: Result<Path<Uuid>, PathRejection>,
    notice_query: Result<ApiQuery<NoticeQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let id = path_id(path, "user")?;
    let done = query(notice_query)?.done;
    let conn = state.pool.get().await?;
    let user = admin::user_detail(&conn, id).await?;
    let ledger = data::user_ledger(&conn, id, 30).await?;
    let to = Utc::now().date_naive();
    let from = to.checked_sub_days(Days::new(29)).unwrap_or(to);
    let history: HashMap<NaiveDate, i64> = data::step_days(&conn, id, from, to)
        .await?
        .into_iter()
        .map(|(d, s, _)| (d, s))
        .collect();
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let steps = charts::columns(
        "Verified steps, last 30 days",
        &days
            .iter()
            .map(|d| d.format("%m-%d").to_string())
            .collect::<Vec<_>>(),
        vec![Series {
            name: "steps",
            class: "s1",
            values: days
                .iter()
                .map(|d| history.get(d).copied().unwrap_or(0))
                .collect(),
        }],
        "",
    );
    let devices = data::devices(&conn, id).await?;
    let achievements = data::achievements(&conn, id).await?;
    render(&UserPage {
        chrome: chrome(&session, "users", done.as_deref()),
        user,
        ledger,
        steps,
        devices,
        achievements,
        adjustment_key: Uuid::new_v4().to_string(),
    })
}

/// Body of the wallet adjustment form.
#[derive(Debug, Deserialize)]
pub struct WalletForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    key: String,
}

/// `POST /admin/users/{id}/wallet`: an `admin_adjustment` ledger entry with its required
/// reason. The form's key makes a double submit apply once.
pub async fn adjust_wallet(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ConsoleForm(session, form): ConsoleForm<WalletForm>,
) -> Result<Response, ConsoleError> {
    let id = path_id(path, "user")?;
    let back = format!("/admin/users/{id}");
    let amount: i64 = form.amount.trim().parse().map_err(|_| {
        ConsoleError::with_back(
            ApiError::validation(
                "amount",
                "amount must be a whole number of coins, e.g. 50 or -20",
            ),
            back.clone(),
        )
    })?;
    let adjustment = admin::WalletAdjustment {
        amount,
        reason: form.reason,
        idempotency_key: blank_is_none(&form.key).map(str::to_owned),
    };
    validate::text("reason", &adjustment.reason, 500).map_err(|e| invalid(e, &back))?;
    admin::adjust_wallet(&state.pool, session.admin_id, id, &adjustment, &client)
        .await
        .map_err(|e| ConsoleError::with_back(e, back.clone()))?;
    Ok(see_other(&format!("{back}?done=adjusted")))
}

/// Body of the disable and enable forms.
#[derive(Debug, Deserialize)]
pub struct AccessForm {
    #[serde(default)]
    reason: String,
}

/// `POST /admin/users/{id}/disable`: ends every session of the account and refuses sign-in
/// (the admin API's `user.disable`, with its audit row).
pub async fn disable_user(
    state: State<AppState>,
    client: Client,
    path: Result<Path<Uuid>, PathRejection>,
    form: ConsoleForm<AccessForm>,
) -> Result<Response, ConsoleError> {
    set_access(state, client, path, form, true).await
}

/// `POST /admin/users/{id}/enable`: lets a disabled account sign in again (`user.enable`).
pub async fn enable_user(
    state: State<AppState>,
    client: Client,
    path: Result<Path<Uuid>, PathRejection>,
    form: ConsoleForm<AccessForm>,
) -> Result<Response, ConsoleError> {
    set_access(state, client, path, form, false).await
}

async fn set_access(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ConsoleForm(session, form): ConsoleForm<AccessForm>,
    disable: bool,
) -> Result<Response, ConsoleError> {
    let id = path_id(path, "user")?;
    let back = format!("/admin/users/{id}");
    validate::text("reason", &form.reason, 500).map_err(|e| invalid(e, &back))?;
    admin::set_account_disabled(
        &state.pool,
        session.admin_id,
        id,
        disable,
        &form.reason,
        &client,
    )
    .await
    .map_err(|e| ConsoleError::with_back(e, back.clone()))?;
    let done = if disable { "disabled" } else { "enabled" };
    Ok(see_other(&format!("{back}?done={done}")))
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "products.html")]
struct ProductsPage {
    chrome: Chrome,
    q: String,
    products: Vec<ProductLine>,
}

/// `GET /admin/products?q=`: active and inactive products.
pub async fn products(
    State(state): State<AppState>,
    session: AdminSession,
    product_query: Result<ApiQuery<ProductQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let q = query(product_query)?;
    validate::text("q", &q.q, 200).map_err(|e| invalid(e, "/admin/products"))?;
    let conn = state.pool.get().await?;
    let products = data::products(&conn, &q.q, 200).await?;
    render(&ProductsPage {
        chrome: chrome(&session, "products", q.done.as_deref()),
        q: q.q,
        products,
    })
}

/// Query of `GET /admin/products`.
#[derive(Debug, Default, Deserialize)]
pub struct ProductQuery {
    #[serde(default)]
    q: String,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    chrome: Chrome,
    product: ProductLine,
}

/// `GET /admin/products/{id}`: the edit form.
pub async fn product_edit(
    State(state): State<AppState>,
    session: AdminSession,
    path: Result<Path<Uuid>, PathRejection>,
    notice_query: Result<ApiQuery<NoticeQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let id = path_id(path, "product")?;
    let done = query(notice_query)?.done;
    let conn = state.pool.get().await?;
    let product = data::product(&conn, id).await?;
    render(&ProductPage {
        chrome: chrome(&session, "products", done.as_deref()),
        product,
    })
}

/// Body of the product form.
#[derive(Debug, Deserialize)]
pub struct ProductForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    sku: String,
    #[serde(default)]
    coin_price: String,
    #[serde(default)]
    stock: String,
    /// Present (`on`) when the box is ticked.
    is_active: Option<String>,
}

/// `POST /admin/products/{id}`: the admin API's product update.
pub async fn product_save(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ConsoleForm(session, form): ConsoleForm<ProductForm>,
) -> Result<Response, ConsoleError> {
    let id = path_id(path, "product")?;
    let back = format!("/admin/products/{id}");
    let whole = |field: &str, value: &str| -> Result<i64, ConsoleError> {
        value.trim().parse().map_err(|_| {
            ConsoleError::with_back(
                ApiError::validation(field, format!("{field} must be a whole number")),
                back.clone(),
            )
        })
    };
    let input = ProductInput {
        sku: blank_is_none(&form.sku).map(str::to_owned),
        name: Some(form.name.clone()),
        description: Some(form.description.clone()),
        category: Some(form.category.clone()),
        coin_price: Some(whole("coin_price", &form.coin_price)?),
        stock: Some(whole("stock", &form.stock)?),
        images: None,
        is_active: Some(form.is_active.is_some()),
    };
    for (field, value, max) in [
        ("name", &form.name, 200),
        ("description", &form.description, 10_000),
        ("category", &form.category, 64),
        ("sku", &form.sku, 64),
    ] {
        validate::text(field, value, max).map_err(|e| invalid(e, &back))?;
    }
    crate::shop::catalogue::update(
        &state.pool,
        session.admin_id,
        id,
        &input,
        "product.update",
        &client,
    )
    .await
    .map_err(|e| ConsoleError::with_back(e, back.clone()))?;
    Ok(see_other(&format!("{back}?done=saved")))
}

/// `POST /admin/products/{id}/deactivate`: the admin API's deactivation.
pub async fn product_deactivate(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ConsoleForm(session, _): ConsoleForm<serde_json::Value>,
) -> Result<Response, ConsoleError> {
    let id = path_id(path, "product")?;
    let back = format!("/admin/products/{id}");
    crate::shop::catalogue::update(
        &state.pool,
        session.admin_id,
        id,
        &ProductInput {
            is_active: Some(false),
            ..ProductInput::default()
        },
        "product.deactivate",
        &client,
    )
    .await
    .map_err(|e| ConsoleError::with_back(e, back.clone()))?;
    Ok(see_other("/admin/products?done=deactivated"))
}

// ---------------------------------------------------------------------------------------------
// Catalogue import: upload or URL, preview, apply
// ---------------------------------------------------------------------------------------------

/// How long a previewed feed waits for its "Apply".
const PREVIEW_MINUTES: i32 = 15;
/// Most previews an administrator keeps waiting (each holds a feed of up to 20 MiB); making
/// another drops the oldest.
const MAX_PREVIEWS: i64 = 4;

// Feeds previewed and waiting to be applied live in `console_import_previews`: any server
// instance applies a preview another one made, and a restart in between loses nothing.

/// Keeps `feed` for its "Apply" and answers the preview's id. Drops expired previews and
/// all but this administrator's newest few.
async fn keep_preview(
    conn: &mut deadpool_postgres::Client,
    admin_id: Uuid,
    feed: &Feed,
    source: &str,
) -> Result<Uuid, ApiError> {
    let id = Uuid::new_v4();
    let tx = conn.transaction().await?;
    tx.execute(
        "DELETE FROM console_import_previews
         WHERE created_at <= now() - make_interval(mins => $1)
            OR id IN (SELECT id FROM console_import_previews WHERE admin_id = $2
                      ORDER BY created_at DESC OFFSET $3)",
        &[&PREVIEW_MINUTES, &admin_id, &(MAX_PREVIEWS - 1)],
    )
    .await?;
    tx.execute(
        "INSERT INTO console_import_previews (id, admin_id, source, feed)
         VALUES ($1, $2, $3, $4)",
        &[&id, &admin_id, &source, &feed.to_json()],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Takes the preview `id` of `admin_id` if it has not expired: deleted as it is read, so
/// two "Apply"s (on one instance or two) import it once.
async fn take_preview(
    conn: &deadpool_postgres::Client,
    admin_id: Uuid,
    id: &str,
) -> Result<Option<(Feed, String)>, ApiError> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(None);
    };
    let Some(row) = conn
        .query_opt(
            "DELETE FROM console_import_previews
             WHERE id = $1 AND admin_id = $2
               AND created_at > now() - make_interval(mins => $3)
             RETURNING source, feed",
            &[&id, &admin_id, &PREVIEW_MINUTES],
        )
        .await?
    else {
        return Ok(None);
    };
    let (source, bytes): (String, Vec<u8>) = (row.get("source"), row.get("feed"));
    let feed = shopify::on_blocking_thread(move || Feed::from_json(&bytes))
        .await
        .map_err(ApiError::from)?
        .map_err(|err| {
            ApiError::internal_because(format!("a stored import preview does not parse: {err}"))
        })?;
    Ok(Some((feed, source)))
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    chrome: Chrome,
    allowed_hosts: String,
}

/// `GET /admin/products/import`: upload a file or give a URL.
pub async fn import_page(
    State(state): State<AppState>,
    session: AdminSession,
) -> Result<Html<String>, ConsoleError> {
    render(&ImportPage {
        chrome: chrome(&session, "products", None),
        allowed_hosts: state.config.import_allowed_hosts.join(", "),
    })
}

#[derive(Template)]
#[template(path = "import_preview.html")]
struct PreviewPage {
    chrome: Chrome,
    source: String,
    products: usize,
    report: ImportReport,
    preview: String,
}

/// `POST /admin/products/import` (multipart: `csrf`, then `file` or `url`): reads the feed
/// The fields of the import form: the CSRF token, the uploaded file (if not empty) and the URL.
async fn import_form(
    mut multipart: Multipart,
    bad: impl Fn(String) -> ConsoleError,
) -> Result<(Option<String>, Option<axum::body::Bytes>, Option<String>), ConsoleError> {
    let (mut csrf, mut file, mut url) = (None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("the upload could not be read: {}", e.body_text())))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad(format!("the upload could not be read: {}", e.body_text())))?;
        match name.as_str() {
            "csrf" => csrf = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "file" if !bytes.is_empty() => file = Some(bytes),
            "url" => url = Some(String::from_utf8_lossy(&bytes).trim().to_owned()),
            _ => {}
        }
    }
    Ok((csrf, file, url))
}

/// The feed to preview, from the upload or the URL (exactly one), with its source as the
/// audit log names it; a feed that cannot be read comes back as the error and that source.
async fn read_feed(
    state: &AppState,
    file: Option<axum::body::Bytes>,
    url: Option<String>,
    back: &str,
) -> Result<Result<(Feed, String), (shopify::ImportError, String)>, ConsoleError> {
    Ok(match (file, url) {
        (Some(bytes), None) => shopify::on_blocking_thread(move || Feed::from_json(&bytes))
            .await
            .map_err(ApiError::from)?
            .map(|feed| (feed, "upload".to_owned()))
            .map_err(|err| (err, "upload".to_owned())),
        (None, Some(url)) => {
            let source = shopify::describe_url(&url);
            shopify::fetch_feed(&url, &state.config.import_allowed_hosts)
                .await
                .map(|feed| (feed, source.clone()))
                .map_err(|err| (err, source))
        }
        _ => {
            return Err(ConsoleError::with_back(
                ApiError::validation(
                    "file",
                    "choose a products.json file or give a URL (not both)",
                ),
                back,
            ));
        }
    })
}

/// and shows what importing it would change, without changing anything.
pub async fn import_preview(
    State(state): State<AppState>,
    Client(client): Client,
    session: AdminSession,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Html<String>, ConsoleError> {
    let back = "/admin/products/import";
    let bad = |message: String| ConsoleError::with_back(ApiError::bad_request(message), back);
    let multipart = multipart.map_err(|r| bad(r.body_text()))?;
    let (csrf, file, url) = import_form(multipart, bad).await?;
    session.check_form_token(csrf.as_deref())?;
    let read = read_feed(&state, file, url.filter(|u| !u.is_empty()), back).await?;
    let (feed, source) = match read {
        Ok(read) => read,
        Err((err, source)) => {
            shopify::audit_failure(&state.pool, session.admin_id, &client, &source, &err).await;
            return Err(ConsoleError::with_back(DomainError::from(err), back));
        }
    };
    let mut conn = state.pool.get().await?;
    let report = shopify::import(
        &mut conn,
        &feed,
        ImportOptions {
            allow_empty: false,
            dry_run: true,
        },
        ImportContext {
            admin_id: Some(session.admin_id),
            client: Some(&client),
            source: &source,
        },
    )
    .await
    .map_err(|err| ConsoleError::with_back(DomainError::from(err), back))?;
    let products = feed.products.len();
    let preview = keep_preview(&mut conn, session.admin_id, &feed, &source)
        .await?
        .to_string();
    render(&PreviewPage {
        chrome: chrome(&session, "products", None),
        source,
        products,
        report,
        preview,
    })
}

/// Body of the "Apply" form.
#[derive(Debug, Deserialize)]
pub struct ApplyForm {
    #[serde(default)]
    preview: String,
}

/// `POST /admin/products/import/apply`: imports the previewed feed (the admin API's import,
/// with its audit row).
pub async fn import_apply(
    State(state): State<AppState>,
    Client(client): Client,
    ConsoleForm(session, form): ConsoleForm<ApplyForm>,
) -> Result<Response, ConsoleError> {
    let back = "/admin/products/import";
    let mut conn = state.pool.get().await?;
    let (feed, source) = take_preview(&conn, session.admin_id, form.preview.trim())
        .await?
        .ok_or_else(|| {
            ConsoleError::with_back(
                ApiError::not_found(
                    "this preview has expired or was already applied: upload the feed again",
                ),
                back,
            )
        })?;
    let imported = shopify::import(
        &mut conn,
        &feed,
        ImportOptions {
            allow_empty: false,
            dry_run: false,
        },
        ImportContext {
            admin_id: Some(session.admin_id),
            client: Some(&client),
            source: &source,
        },
    )
    .await;
    match imported {
        Ok(_) => Ok(see_other("/admin/products?done=imported")),
        Err(err) => {
            shopify::audit_failure(&state.pool, session.admin_id, &client, &source, &err).await;
            Err(ConsoleError::with_back(DomainError::from(err), back))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

struct SettingRow {
    setting: Setting,
    current: String,
    editable: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    rows: Vec<SettingRow>,
}

/// `GET /admin/settings`: every setting with its current value; the reward and anti-cheat
/// ones can be changed.
pub async fn settings(
    State(state): State<AppState>,
    session: AdminSession,
    notice_query: Result<ApiQuery<NoticeQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let done = query(notice_query)?.done;
    let conn = state.pool.get().await?;
    let rows = admin::settings(&conn)
        .await?
        .into_iter()
        .map(|setting| SettingRow {
            editable: crate::rewards::settings::SettingKey::parse(&setting.key).is_some(),
            current: setting.value.to_string(),
            setting,
        })
        .collect();
    render(&SettingsPage {
        chrome: chrome(&session, "settings", done.as_deref()),
        rows,
    })
}

/// Body of a setting's form.
#[derive(Debug, Deserialize)]
pub struct SettingForm {
    #[serde(default)]
    value: String,
}

/// `POST /admin/settings/{key}`: the admin API's validated, audited change.
pub async fn setting_save(
    State(state): State<AppState>,
    Client(client): Client,
    path: Result<Path<String>, PathRejection>,
    ConsoleForm(session, form): ConsoleForm<SettingForm>,
) -> Result<Response, ConsoleError> {
    let back = "/admin/settings";
    let Path(key) = path.map_err(|_| ApiError::not_found("no such setting"))?;
    validate::text("key", &key, 100).map_err(|e| invalid(e, back))?;
    let value: serde_json::Value = serde_json::from_str(form.value.trim())
        .ok()
        .filter(serde_json::Value::is_number)
        .ok_or_else(|| {
            ConsoleError::with_back(
                ApiError::validation("value", format!("{key} needs a number")),
                back,
            )
        })?;
    admin::put_setting(&state.pool, session.admin_id, &key, &value, &client)
        .await
        .map_err(|e| ConsoleError::with_back(e, back))?;
    Ok(see_other("/admin/settings?done=setting"))
}

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

/// Query of `GET /admin/audit`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    admin: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    offset: Option<i64>,
}

struct AuditRow {
    entry: AuditLogEntry,
    admin: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    admins: Vec<UserLine>,
    actions: Vec<String>,
    filter: AuditQuery,
    rows: Vec<AuditRow>,
    next_offset: Option<i64>,
    next_link: String,
}

fn pretty(value: &Option<serde_json::Value>) -> String {
    match value {
        Some(value) => serde_json::to_string_pretty(value).unwrap_or_default(),
        None => "—".to_owned(),
    }
}

/// The audit log query the filter form asks for, its fields checked, from `offset`.
fn audit_log_filter(filter: &AuditQuery, offset: i64) -> Result<LogFilter, ConsoleError> {
    let back = "/admin/audit";
    let admin_id = match blank_is_none(&filter.admin) {
        None => None,
        Some(id) => Some(id.parse::<Uuid>().map_err(|_| {
            ConsoleError::with_back(ApiError::validation("admin", "unknown administrator"), back)
        })?),
    };
    validate::text("action", &filter.action, 200).map_err(|e| invalid(e, back))?;
    Ok(LogFilter {
        admin_id,
        action: blank_is_none(&filter.action).map(str::to_owned),
        entity_type: None,
        entity_id: None,
        from: audit_day("from", &filter.from, back)?,
        // The `to` day is included: the filter ends at the start of the next day.
        to: audit_day("to", &filter.to, back)?.map(|t| t + chrono::Duration::days(1)),
        limit: Some(PAGE),
        offset: Some(offset),
    })
}

/// The start of a filter day (`YYYY-MM-DD`), or none when the field is blank.
fn audit_day(field: &str, value: &str, back: &str) -> Result<Option<DateTime<Utc>>, ConsoleError> {
    match blank_is_none(value) {
        None => Ok(None),
        Some(value) => {
            let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
                ConsoleError::with_back(
                    ApiError::validation(field, format!("{field} must be a date (YYYY-MM-DD)")),
                    back,
                )
            })?;
            validate::date(field, day).map_err(|e| invalid(e, back))?;
            Ok(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
        }
    }
}

/// The audit entries as the page shows them: who acted (by email when known) and the
/// before and after values pretty-printed.
async fn audit_rows(
    conn: &deadpool_postgres::Client,
    entries: Vec<AuditLogEntry>,
) -> Result<Vec<AuditRow>, ConsoleError> {
    let ids: Vec<Uuid> = entries.iter().filter_map(|e| e.admin_id).collect();
    let names: HashMap<Uuid, String> = data::users_by_id(conn, &ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    Ok(entries
        .into_iter()
        .map(|entry| AuditRow {
            admin: match entry.admin_id {
                Some(id) => names.get(&id).cloned().unwrap_or_else(|| id.to_string()),
                None => "command line".to_owned(),
            },
            before: pretty(&entry.before),
            after: pretty(&entry.after),
            entry,
        })
        .collect())
}

/// `GET /admin/audit?admin=&action=&from=&to=`: newest first, before and after side by side.
pub async fn audit(
    State(state): State<AppState>,
    session: AdminSession,
    audit_query: Result<ApiQuery<AuditQuery>, ApiError>,
) -> Result<Html<String>, ConsoleError> {
    let filter = query(audit_query)?;
    let offset = filter.offset.unwrap_or(0).max(0);
    let log_filter = audit_log_filter(&filter, offset)?;
    let conn = state.pool.get().await?;
    let entries = admin::logs(&conn, &log_filter).await?;
    let admins = data::admins(&conn).await?;
    let full_page = entries.len() as i64 == PAGE;
    let rows = audit_rows(&conn, entries).await?;
    let actions = data::audit_actions(&conn).await?;
    let next_offset = full_page.then_some(offset + PAGE);
    let next_link = format!(
        "/admin/audit?admin={}&action={}&from={}&to={}&offset={}",
        urlencode(&filter.admin),
        urlencode(&filter.action),
        urlencode(&filter.from),
        urlencode(&filter.to),
        next_offset.unwrap_or(0)
    );
    render(&AuditPage {
        chrome: chrome(&session, "audit", None),
        admins,
        actions,
        filter,
        rows,
        next_offset,
        next_link,
    })
}

/// Percent-encodes a query value.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_notice_codes_show_a_message() {
        assert!(notice(Some("approved")).is_some());
        assert_eq!(notice(Some("<script>")), None);
        assert_eq!(notice(None), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(urlencode("order.status"), "order.status");
        assert_eq!(urlencode("a&b=c d"), "a%26b%3Dc%20d");
    }

    #[test]
    fn flag_reasons_read_from_the_stored_json() {
        let read = reasons(&serde_json::json!([
            {"code": "above_soft_daily_max", "value": 60000.0, "threshold": 50000.0},
            {"code": "statistical_outlier", "value": 5.25, "threshold": 4.0}
        ]));
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].value, "60000");
        assert_eq!(read[1].value, "5.2");
        assert!(reasons(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn shipping_asks_for_a_tracking_number_and_refunds_for_a_reason() {
        let processing = next_steps("processing");
        assert!(
            processing
                .iter()
                .any(|s| s.status == "shipped" && s.needs_tracking)
        );
        assert!(next_steps("delivered").iter().all(|s| s.needs_reason));
        assert!(next_steps("refunded").is_empty());
    }
}
