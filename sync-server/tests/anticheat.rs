//! Anti-cheat hardening (issue 10): report stamps cannot widen the cadence window, honest late
//! reports still pay, an unknown stored record status never pays, and the week streak needs a
//! programme-wide minimum a day.

use chrono::{Duration, Timelike as _, Utc};
use fitkart_protocol::steps::{AchievementList, RecordOutcome, StepReport};
use fitkart_sync_server::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use RecordOutcome::{Accepted, Rejected};

mod common;
use common::{Account, Api, assert_ledger_ok, at, day_coins, days_ago, outcomes, report};

const PHONE: &str = "healthkit";
const WATCH: &str = "watch:garmin";

// ---------------------------------------------------------------------------------------------
// Item 1: recorded_at is not trusted from below
// ---------------------------------------------------------------------------------------------

/// A fixed-offset IANA zone in which it is now between 00:00 and 01:00.
fn zone_just_after_midnight() -> String {
    let hour = i64::from(Utc::now().hour());
    let offset = if hour <= 12 { -hour } else { 24 - hour };
    // Etc/GMT-N is N hours east of UTC (POSIX signs).
    match offset {
        0 => "Etc/UTC".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

#[tokio::test]
async fn a_large_total_minutes_after_midnight_stamped_the_day_before_is_not_paid() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let cheat = api.account("cheat@example.com").await;
    let zone = zone_just_after_midnight();
    let (status, body) = api
        .patch("/api/v1/me", json!({ "timezone": zone }), &cheat.token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let local_today = Utc::now().with_timezone(&tz).date_naive();
    // 40,000 steps for a day that began under an hour ago, stamped the previous noon: once
    // a whole day's window (28 a minute), now the time that really passed (over 600 a minute).
    let stamp = Utc::now() - Duration::hours(13);
    let answer = api
        .record(&cheat, &[report(local_today, PHONE, 40_000, stamp)])
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![(Rejected, Some("impossible_cadence"))]
    );
    assert_eq!(answer.coins_awarded, 0);
    assert_eq!(api.wallet(&cheat).await.available_coins, 0);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn an_increase_stamped_before_the_previous_report_is_not_paid() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let cheat = api.account("backdater@example.com").await;
    let d1 = days_ago(1);
    let first = api
        .record(&cheat, &[report(d1, PHONE, 5000, at(d1, 23, 55))])
        .await;
    assert_eq!(outcomes(&first), vec![(Accepted, None)]);
    // 35,000 more, stamped sixteen hours before the report that said 5,000 at 23:55: once a
    // whole day's window, now the five minutes left in the day after that report.
    let backdated = api
        .record(&cheat, &[report(d1, PHONE, 40_000, at(d1, 8, 0))])
        .await;
    assert_eq!(
        outcomes(&backdated),
        vec![(Rejected, Some("impossible_cadence"))]
    );
    assert_eq!(backdated.coins_awarded, 0);
    assert_eq!(
        api.wallet(&cheat).await.available_coins,
        day_coins(5000) + 10 + 20,
        "the 5,000 and its achievements (first thousand, 5K day) only"
    );
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn many_reports_a_second_apart_cannot_each_claim_a_minute() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let cheat = api.account("spray@example.com").await;
    let d1 = days_ago(1);
    let base = at(d1, 23, 0);
    let first = api.record(&cheat, &[report(d1, PHONE, 3000, base)]).await;
    assert_eq!(outcomes(&first), vec![(Accepted, None)]);
    // Thirty reports of +600 steps, each a second after the previous: 18,000 steps in 30 s.
    let spray: Vec<StepReport> = (1..=30)
        .map(|n| report(d1, PHONE, 3000 + 600 * n, base + Duration::seconds(n)))
        .collect();
    let answer = api.record(&cheat, &spray).await;
    assert!(
        answer
            .results
            .iter()
            .all(|r| r.status == Rejected && r.code.as_deref() == Some("impossible_cadence")),
        "{:?}",
        outcomes(&answer)
    );
    assert_eq!(answer.coins_awarded, 0);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_watch_syncing_last_nights_larger_total_in_the_morning_is_paid() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ann = api.account("ann@example.com").await;
    let d1 = days_ago(1);
    let evening = api
        .record(&ann, &[report(d1, WATCH, 6000, at(d1, 18, 0))])
        .await;
    assert_eq!(outcomes(&evening), vec![(Accepted, None)]);
    // The next morning the watch syncs the rest of the evening, then a late sample more.
    let now = Utc::now();
    let morning = api.record(&ann, &[report(d1, WATCH, 10_500, now)]).await;
    assert_eq!(outcomes(&morning), vec![(Accepted, None)]);
    let later = api.record(&ann, &[report(d1, WATCH, 11_000, now)]).await;
    assert_eq!(outcomes(&later), vec![(Accepted, None)]);
    // A second source reporting the past day for the first time, stamped now, also counts.
    let phone = api.record(&ann, &[report(d1, PHONE, 12_000, now)]).await;
    assert_eq!(outcomes(&phone), vec![(Accepted, None)]);
    let coins: i64 = [&evening, &morning, &later, &phone]
        .iter()
        .flat_map(|a| a.results.iter().map(|r| r.coins_awarded))
        .sum();
    assert_eq!(coins, day_coins(12_000));
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_phone_offline_for_days_backfills_them_in_one_push() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let bob = api.account("bob@example.com").await;
    let now = Utc::now();
    // Every past day of the window, twice per day as the phone saw them grow (one frozen
    // outbox row and the latest total), all arriving now.
    let mut reports = Vec::new();
    for n in (1..=6).rev() {
        let date = days_ago(n);
        reports.push(report(date, PHONE, 4000, at(date, 12, 0)));
        reports.push(report(date, PHONE, 9000 + n as i64, now));
    }
    let answer = api.record(&bob, &reports).await;
    assert!(
        answer.results.iter().all(|r| r.status == Accepted),
        "{:?}",
        outcomes(&answer)
    );
    let paid: i64 = answer.results.iter().map(|r| r.coins_awarded).sum();
    assert_eq!(
        paid,
        (1..=6).map(|n| day_coins(9000 + n)).sum::<i64>(),
        "every day pays its total"
    );
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn one_report_late_at_night_for_the_whole_day_is_paid() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let cat = api.account("cat@example.com").await;
    let d1 = days_ago(1);
    let answer = api
        .record(&cat, &[report(d1, PHONE, 14_000, at(d1, 23, 30))])
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None)]);
    assert_eq!(answer.results[0].coins_awarded, day_coins(14_000));
    // And today's total so far, stamped now, whatever the hour: within the cadence rule as
    // long as it is no more than 100 steps a minute since midnight.
    let today = Utc::now().date_naive();
    let minutes = (Utc::now() - at(today, 0, 0)).num_minutes();
    if minutes >= 1 {
        let so_far = api
            .record(
                &cat,
                &[report(
                    today,
                    PHONE,
                    (minutes * 100).min(20_000),
                    Utc::now(),
                )],
            )
            .await;
        assert_eq!(outcomes(&so_far), vec![(Accepted, None)]);
    }
    assert_ledger_ok(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Item 5: an unknown stored record status fails closed
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_record_with_an_unknown_stored_status_never_pays() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let dan = api.account("dan@example.com").await;
    let d1 = days_ago(1);
    let first = api
        .record(&dan, &[report(d1, PHONE, 800, at(d1, 9, 0))])
        .await;
    assert_eq!(first.coins_awarded, day_coins(800));
    // A status this server version does not know (a newer version wrote it, or an operator).
    let db = server.db().client().await.unwrap();
    db.batch_execute("ALTER TABLE step_records DROP CONSTRAINT step_records_status_check")
        .await
        .unwrap();
    db.execute(
        "UPDATE step_records SET status = 'suspended' WHERE user_id = $1",
        &[&dan.id],
    )
    .await
    .unwrap();
    let before = api.wallet(&dan).await;
    let answer = api
        .record(&dan, &[report(d1, PHONE, 9000, at(d1, 21, 0))])
        .await;
    assert_eq!(answer.results[0].status, Rejected);
    assert_eq!(answer.coins_awarded, 0);
    assert_eq!(api.wallet(&dan).await, before, "nothing was paid");
    let status: String = db
        .query_one(
            "SELECT status FROM step_records WHERE user_id = $1",
            &[&dan.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "suspended", "the unknown status is left alone");
    assert_ledger_ok(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Item 17: the week streak needs a programme-wide minimum a day
// ---------------------------------------------------------------------------------------------

async fn streak(api: &Api, walker: &Account) -> (i64, bool) {
    let (status, body) = api.get("/api/v1/achievements", &walker.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list: AchievementList = serde_json::from_value(body).unwrap();
    let streak = list
        .achievements
        .into_iter()
        .find(|a| a.code == "streak_7")
        .unwrap();
    (streak.progress, streak.unlocked_at.is_some())
}

fn week(steps: i64) -> Vec<StepReport> {
    (0..=7)
        .rev()
        .map(|n| {
            let date = days_ago(n);
            let stamp = if n == 0 { Utc::now() } else { at(date, 22, 0) };
            report(date, PHONE, steps, stamp)
        })
        .collect()
}

#[tokio::test]
async fn a_tiny_personal_goal_and_a_backfilled_week_do_not_unlock_the_streak() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let farmer = api.account("farmer@example.com").await;
    let (status, body) = api
        .patch("/api/v1/me", json!({"daily_step_goal": 100}), &farmer.token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // One request on a new account: eight days of 150 steps (today and the backfill window).
    let answer = api.record(&farmer, &week(150)).await;
    assert!(
        !answer
            .achievements_unlocked
            .contains(&"streak_7".to_owned()),
        "{:?}",
        answer.achievements_unlocked
    );
    assert_eq!(streak(&api, &farmer).await, (0, false));

    // Walking the programme minimum (5,000 by the seed) every day of the week does count.
    let walker2 = api.account("honest@example.com").await;
    api.patch(
        "/api/v1/me",
        json!({"daily_step_goal": 100}),
        &walker2.token,
    )
    .await;
    let mut honest = week(5000);
    honest.remove(honest.len() - 1); // not today: its hours may not allow 5,000 yet
    let answer = api.record(&walker2, &honest).await;
    assert!(
        answer
            .achievements_unlocked
            .contains(&"streak_7".to_owned())
    );
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn the_streak_minimum_is_a_setting_admins_can_change() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = api.admin(&server).await;
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/admin/settings/achievements.streak_min_daily_steps",
            Some(json!({"value": 3000})),
            &admin.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body): (StatusCode, Value) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/admin/settings/achievements.streak_min_daily_steps",
            Some(json!({"value": 10})),
            &admin.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let eve = api.account("eve@example.com").await;
    api.patch("/api/v1/me", json!({"daily_step_goal": 100}), &eve.token)
        .await;
    let mut days = week(3000);
    days.remove(days.len() - 1);
    let answer = api.record(&eve, &days).await;
    assert!(
        answer
            .achievements_unlocked
            .contains(&"streak_7".to_owned())
    );
}
