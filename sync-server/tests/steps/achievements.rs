//! Achievements: daily and total step thresholds, the goal streak and early bird unlock once
//! and pay once.

use super::*;

/// One phone report at 20:00 on each of the days `days_back` days ago, in that order, of
/// `steps_on(days back)` steps.
fn evenings(
    days_back: impl IntoIterator<Item = u64>,
    steps_on: impl Fn(u64) -> i64,
) -> Vec<StepReport> {
    days_back
        .into_iter()
        .map(|n| {
            let date = days_ago(n);
            report(date, PHONE, steps_on(n), at(date, 20, 0))
        })
        .collect()
}

#[tokio::test]
async fn daily_step_achievements_unlock_at_their_thresholds_and_pay_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let uma = api.account("uma@example.com").await;
    let day = days_ago(1);

    let steps_and_unlocks: [(i64, &[&str], i64); 6] = [
        (999, &[], 9),
        (1000, &["steps_1k"], 1 + 10),
        (4999, &[], 39),
        (5000, &["steps_5k"], 1 + 20),
        (9999, &[], 49),
        (10000, &["steps_10k"], 1 + 50),
    ];
    for (i, (steps, unlocks, coins)) in steps_and_unlocks.into_iter().enumerate() {
        let hour = 9 + i as u32;
        let answer = api
            .record(&uma, &[report(day, PHONE, steps, at(day, hour, 0))])
            .await;
        assert_eq!(unlocked(&answer), unlocks, "at {steps} steps");
        assert_eq!(answer.coins_awarded, coins, "at {steps} steps");
    }
    // Replays and a second source over the same thresholds unlock nothing again.
    let replay = api
        .record(
            &uma,
            &[
                report(day, PHONE, 10000, at(day, 15, 0)),
                report(day, WATCH, 10500, at(day, 18, 0)),
            ],
        )
        .await;
    assert!(replay.achievements_unlocked.is_empty());
    assert_eq!(replay.coins_awarded, 5);
    assert_eq!(api.wallet(&uma).await.available_coins, 105 + 80);

    let list = api.achievements(&uma).await.achievements;
    let find = |code: &str| list.iter().find(|a| a.code == code).unwrap().clone();
    for code in ["steps_1k", "steps_5k", "steps_10k"] {
        assert!(find(code).unlocked_at.is_some(), "{code}");
    }
    let fifty = find("steps_50k");
    assert_eq!(
        (fifty.progress, fifty.target, fifty.unlocked_at),
        (10500, 50000, None)
    );
    assert_eq!(fifty.bonus_coins, 100);
    assert!(find("streak_7").unlocked_at.is_none());
    assert!(find("early_bird").unlocked_at.is_none());
    assert_eq!(list.len(), 7, "every seeded achievement is listed");
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn total_step_achievements_and_the_week_streak_unlock_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let vic = api.account("vic@example.com").await;

    // Five days of 10,000 (the last one first at 9,999): 50,000 in total.
    for n in (2..=5).rev() {
        let date = days_ago(n);
        api.record(&vic, &[report(date, PHONE, 10000, at(date, 20, 0))])
            .await;
    }
    let d1 = days_ago(1);
    let short = api
        .record(&vic, &[report(d1, PHONE, 9999, at(d1, 20, 0))])
        .await;
    assert!(short.achievements_unlocked.is_empty(), "49,999 in total");
    let fifty = api
        .record(&vic, &[report(d1, PHONE, 10000, at(d1, 21, 0))])
        .await;
    assert_eq!(unlocked(&fifty), vec!["steps_50k"]);
    assert_eq!(fifty.coins_awarded, 1 + 100);

    // Two more days of 25,000 make 100,000 steps and seven days at the goal in a row.
    let (d7, d6) = (days_ago(7), days_ago(6));
    let first = api
        .record(&vic, &[report(d7, PHONE, 25000, at(d7, 20, 0))])
        .await;
    assert!(first.achievements_unlocked.is_empty());
    let both = api
        .record(&vic, &[report(d6, PHONE, 25000, at(d6, 20, 0))])
        .await;
    assert_eq!(unlocked(&both), vec!["steps_100k", "streak_7"]);
    assert_eq!(both.coins_awarded, 200 + 200 + 150);

    let replay = api
        .record(
            &vic,
            &[
                report(d6, PHONE, 25000, at(d6, 20, 0)),
                report(d6, WATCH, 26000, at(d6, 21, 0)),
            ],
        )
        .await;
    assert!(replay.achievements_unlocked.is_empty());
    assert_eq!(replay.coins_awarded, 0, "the day is already capped");

    let list = api.achievements(&vic).await.achievements;
    let hundred = list.iter().find(|a| a.code == "steps_100k").unwrap();
    assert!(hundred.unlocked_at.is_some());
    assert!(hundred.progress >= hundred.target);
    let bonuses = booked(&api.transactions(&vic).await, "achievement_bonus");
    assert_eq!(
        bonuses.values().sum::<i64>(),
        10 + 20 + 50 + 100 + 200 + 150
    );
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn the_streak_follows_the_users_goal_and_breaks_on_a_short_day() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let week = |steps_on: &dyn Fn(u64) -> i64| evenings((1..=7).rev(), steps_on);

    // A goal of 6,000 a day, met seven days in a row.
    let wes = api.account("wes@example.com").await;
    api.patch_me(&wes, json!({"daily_step_goal": 6000})).await;
    let answer = api.record(&wes, &week(&|_| 6000)).await;
    assert_eq!(unlocked(&answer), vec!["steps_1k", "steps_5k", "streak_7"]);

    // The default goal of 10,000, missed by one step in the middle of the week.
    let xan = api.account("xan@example.com").await;
    let answer = api
        .record(&xan, &week(&|n| if n == 4 { 9999 } else { 10000 }))
        .await;
    assert!(!unlocked(&answer).contains(&"streak_7"));
    let streak = api
        .achievements(&xan)
        .await
        .achievements
        .into_iter()
        .find(|a| a.code == "streak_7")
        .unwrap();
    assert_eq!((streak.target, streak.unlocked_at), (7, None));
    assert!(streak.progress < 7);

    // Making up the short day completes the streak, once.
    let d4 = days_ago(4);
    let fixed = api
        .record(&xan, &[report(d4, PHONE, 10000, at(d4, 21, 0))])
        .await;
    assert_eq!(unlocked(&fixed), vec!["streak_7"]);
    assert_eq!(fixed.coins_awarded, 1 + 150);
    assert_ledger_consistent(&server).await;
}

/// The progress shown towards the streak is the longest run of days at the goal in date
/// order, whatever order the days were stored in: a short day made up later is stored after
/// the days that follow it.
#[tokio::test]
async fn the_streak_in_progress_counts_a_day_made_up_later_in_its_place() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let zed = api.account("zed@example.com").await;
    let streak = |list: Vec<fitkart_protocol::steps::AchievementProgress>| {
        let streak = list.into_iter().find(|a| a.code == "streak_7").unwrap();
        (streak.progress, streak.unlocked_at.is_some())
    };

    // Six evenings at the goal but the fourth of them (three days ago), one step short.
    api.record(
        &zed,
        &evenings((1..=6).rev(), |n| if n == 3 { 9999 } else { 10000 }),
    )
    .await;
    assert_eq!(
        streak(api.achievements(&zed).await.achievements),
        (3, false)
    );

    let d3 = days_ago(3);
    let fixed = api
        .record(&zed, &[report(d3, PHONE, 10000, at(d3, 21, 0))])
        .await;
    assert!(
        !unlocked(&fixed).contains(&"streak_7"),
        "six days, not seven"
    );
    assert_eq!(
        streak(api.achievements(&zed).await.achievements),
        (6, false)
    );
}

/// The evaluation reads a user's days only for the rules left to unlock: the streak still
/// unlocks when it is the last step rule left, and a rule added later unlocks on the history
/// the user already has.
#[tokio::test]
async fn the_rules_left_to_unlock_are_judged_on_the_whole_history() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let yui = api.account("yui@example.com").await;

    // Every other day of the backfill week: 100,000 steps, no two days in a row.
    let answer = api.record(&yui, &evenings([7, 5, 3, 1], |_| 25000)).await;
    assert_eq!(
        unlocked(&answer),
        vec![
            "steps_100k",
            "steps_10k",
            "steps_1k",
            "steps_50k",
            "steps_5k"
        ]
    );

    // Filling the gaps makes seven days at the goal in a row, when only the streak (and the
    // early bird) is left to unlock.
    let answer = api.record(&yui, &evenings([6, 4, 2], |_| 10000)).await;
    assert_eq!(unlocked(&answer), vec!["streak_7"]);

    // An admin adds a rule the user's history already meets (130,000 steps): the next report,
    // however small, unlocks it and pays its bonus once.
    common::execute(
        &server,
        r#"INSERT INTO achievements (code, name, criteria, bonus_coins, sort_order)
           VALUES ('steps_120k', '120K Steps', '{"type": "total_steps", "steps": 120000}',
                   300, 99)"#,
        &[],
    )
    .await;
    let d2 = days_ago(2);
    let answer = api
        .record(&yui, &[report(d2, PHONE, 10100, at(d2, 21, 0))])
        .await;
    assert_eq!(unlocked(&answer), vec!["steps_120k"]);
    assert_eq!(answer.coins_awarded, 1 + 300);
    let again = api
        .record(&yui, &[report(d2, PHONE, 10200, at(d2, 22, 0))])
        .await;
    assert!(again.achievements_unlocked.is_empty());
    let list = api.achievements(&yui).await.achievements;
    let added = list.iter().find(|a| a.code == "steps_120k").unwrap();
    assert!(added.unlocked_at.is_some());
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn early_bird_needs_2000_steps_before_eight_local_time() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let (d1, d2, d3) = (days_ago(1), days_ago(2), days_ago(3));

    let late = api.account("late@example.com").await;
    let answer = api
        .record(
            &late,
            &[
                report(d1, PHONE, 2500, at(d1, 8, 30)),
                // Before eight, but on another day than the steps' date.
                report(d2, PHONE, 2500, at(d3, 7, 0)),
            ],
        )
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None); 2]);
    assert!(!unlocked(&answer).contains(&"early_bird"));

    let lark = api.account("lark@example.com").await;
    let short = api
        .record(&lark, &[report(d1, PHONE, 1999, at(d1, 7, 30))])
        .await;
    assert!(!unlocked(&short).contains(&"early_bird"));
    let enough = api
        .record(&lark, &[report(d1, PHONE, 2000, at(d1, 7, 45))])
        .await;
    assert_eq!(unlocked(&enough), vec!["early_bird"]);
    assert_eq!(enough.coins_awarded, 1 + 25);
    let again = api
        .record(&lark, &[report(d2, PHONE, 3000, at(d2, 6, 0))])
        .await;
    assert!(again.achievements_unlocked.is_empty(), "unlocks once");

    // In India (UTC+05:30) 01:00 UTC is 06:30 and 03:00 UTC is 08:30.
    let mumbai = api.account("mumbai@example.com").await;
    api.patch_me(&mumbai, json!({"timezone": "Asia/Kolkata"}))
        .await;
    let answer = api
        .record(&mumbai, &[report(d2, PHONE, 2500, at(d2, 1, 0))])
        .await;
    assert!(unlocked(&answer).contains(&"early_bird"));
    let delhi = api.account("delhi@example.com").await;
    api.patch_me(&delhi, json!({"timezone": "Asia/Kolkata"}))
        .await;
    let answer = api
        .record(&delhi, &[report(d2, PHONE, 2500, at(d2, 3, 0))])
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None)]);
    assert!(!unlocked(&answer).contains(&"early_bird"));
    assert_ledger_consistent(&server).await;
}
