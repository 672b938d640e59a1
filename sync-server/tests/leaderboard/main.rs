//! Leaderboards, black-box over HTTP on a real server and PostgreSQL: ranks and steps per
//! period, tie-breaking, the caller's own place outside the top, deleted accounts, input
//! validation, the audited admin refresh, the CLI, the background job, and boards that stay
//! whole while they are rebuilt under concurrent reads.
//!
//! One test binary: each behaviour is a module of this directory; this file holds the helpers
//! they share beside `common`.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use fitkart_protocol::leaderboard::Leaderboard;
use fitkart_sync_server::rewards::leaderboard::{self, Period, RefreshSchedule};
use fitkart_sync_server::testing::{TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "../common/mod.rs"]
mod common;
mod deleted_accounts;
mod month_totals;
mod plans;
mod ranking;
mod rebuilds;
mod validation;

use common::{Api, cli, code};

/// The leaderboard calls of the shared client.
impl Api {
    async fn board(&self, query: &str, token: &str) -> Leaderboard {
        let (status, body) = self
            .get(&format!("/api/v1/leaderboard{query}"), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// The admin refresh, without a body or with `body` as JSON text.
    async fn refresh_board(&self, admin_token: &str, body: Option<&str>) -> (StatusCode, Value) {
        const PATH: &str = "/api/v1/admin/leaderboard/refresh";
        match body {
            Some(body) => {
                self.send_text(Method::POST, PATH, body.to_owned(), admin_token)
                    .await
            }
            None => self.send(Method::POST, PATH, None, admin_token).await,
        }
    }
}

/// Sets a user's verified steps for a day, as the step pipeline would have stored them.
async fn set_steps(db: &TestDb, user: Uuid, day: NaiveDate, steps: i32) {
    db.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO step_days (user_id, day, verified_steps) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, day) DO UPDATE SET verified_steps = EXCLUDED.verified_steps",
            &[&user, &day, &steps],
        )
        .await
        .unwrap();
}

/// An account made straight in SQL (no password hashing), for boards with many users.
async fn insert_user(client: &impl deadpool_postgres::GenericClient, name: &str) -> Uuid {
    client
        .query_one(
            "INSERT INTO users (email, password_hash, display_name) VALUES ($1, 'x', $2)
             RETURNING id",
            &[&format!("{}@example.com", name.to_lowercase()), &name],
        )
        .await
        .unwrap()
        .get(0)
}

fn days_ago(today: NaiveDate, days: u64) -> NaiveDate {
    today - chrono::Days::new(days)
}

/// (rank, display_name, steps, is_me) of every entry.
fn rows(board: &Leaderboard) -> Vec<(i64, String, i64, bool)> {
    board
        .entries
        .iter()
        .map(|e| (e.rank, e.display_name.clone(), e.steps, e.is_me))
        .collect()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
