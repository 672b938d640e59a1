//! The benchmark data generator against a real database: what it writes is consistent with
//! the ledger rules, the server serves it, and the same seed writes the same rows.

use chrono::NaiveDate;
use fitkart_sync_server::generate::{self, model};
use fitkart_sync_server::rewards::ledger;
use fitkart_sync_server::testing::TestDb;

fn plan(seed: u64) -> model::Plan {
    generate::plan(
        120,
        60,
        seed,
        NaiveDate::from_ymd_opt(2026, 3, 15).expect("date"),
    )
}

async fn fingerprint(db: &TestDb) -> String {
    let client = db.client().await.expect("client");
    let records: String = client
        .query_one(
            "SELECT md5(string_agg(concat_ws(',', user_id, day, source, steps, verified_steps,
                 status), ';' ORDER BY user_id, day, source)) FROM step_records",
            &[],
        )
        .await
        .expect("records")
        .get(0);
    let entries: String = client
        .query_one(
            "SELECT md5(string_agg(concat_ws(',', user_id, kind, available_after, frozen_after,
                 created_at), ';' ORDER BY user_id, ledger_seq)) FROM coin_transactions",
            &[],
        )
        .await
        .expect("entries")
        .get(0);
    format!("{records}/{entries}")
}

#[tokio::test]
async fn a_generated_world_passes_verify_ledger_and_matches_what_the_model_computed() {
    let db = TestDb::new().await.expect("database");
    let report = generate::generate(db.url(), plan(5), false)
        .await
        .expect("generate");
    let client = db.client().await.expect("client");

    let ledger = ledger::verify(&client).await.expect("verify");
    assert!(ledger.is_ok(), "{:?}", ledger.problems);
    assert_eq!(ledger.wallets_checked, 120);

    let count = |table: &str| {
        report
            .tables
            .iter()
            .find(|(name, _)| *name == table)
            .map(|(_, rows)| *rows as i64)
            .unwrap_or(-1)
    };
    for table in [
        "users",
        "step_records",
        "step_days",
        "coin_transactions",
        "orders",
        "user_achievements",
    ] {
        let stored: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(stored, count(table), "{table}");
        assert!(stored > 0, "{table} is empty");
    }
    // Day totals pay the seeded rule: 10 coins per 1,000 steps, at most 200 a day, and the
    // ledger's step rewards add up to what the days paid.
    let (bad_days, paid, rewarded): (i64, i64, i64) = {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM step_days
                         WHERE coins_paid <> least(verified_steps::bigint * 10 / 1000, 200)),
                        (SELECT sum(coins_paid)::bigint FROM step_days),
                        (SELECT sum(available_delta)::bigint FROM coin_transactions
                         WHERE kind = 'step_reward')",
                &[],
            )
            .await
            .expect("days");
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(bad_days, 0);
    assert_eq!(paid, rewarded);
    // Every board was rebuilt and ranks users with steps.
    assert_eq!(report.boards.len(), 3);
    let ranked: i64 = client
        .query_one(
            "SELECT count(*) FROM leaderboard_cache WHERE period = 'all_time'",
            &[],
        )
        .await
        .expect("board")
        .get(0);
    assert!(ranked > 100, "{ranked} users ranked");

    // Generating into a database that has users is refused and changes nothing.
    let again = generate::generate(db.url(), plan(5), false).await;
    assert!(again.is_err());
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("users")
        .get(0);
    assert_eq!(users, 120);
}

#[tokio::test]
async fn a_month_nothing_was_written_to_is_left_unanalysed_and_its_day_reads_plan_the_index() {
    let db = TestDb::new().await.expect("database");
    generate::generate(db.url(), plan(7), false)
        .await
        .expect("generate");
    let client = db.client().await.expect("client");
    // reltuples: -1 never analysed (or vacuumed), else the rows the last analysis counted.
    let months: Vec<(String, f32, i64)> = client
        .query(
            "SELECT c.relname, c.reltuples, pg_relation_size(c.oid)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'step_records'::regclass ORDER BY c.relname",
            &[],
        )
        .await
        .expect("partitions")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let (written, empty): (Vec<_>, Vec<_>) = months.iter().partition(|(_, _, size)| *size > 0);
    assert!(!written.is_empty() && !empty.is_empty(), "{months:?}");
    assert!(
        written.iter().all(|(_, tuples, _)| *tuples > 0.0),
        "{months:?}"
    );
    assert!(
        empty.iter().all(|(_, tuples, _)| *tuples < 0.0),
        "{months:?}"
    );

    // The generic plan a pooled connection caches for a user's day in an empty month (today's
    // partition on the 1st) reads the index, so it stays cheap as the month fills.
    let month = &empty[0].0;
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan;
             PREPARE day_read(uuid, date) AS
                 SELECT id FROM {month} WHERE user_id = $1 AND day = $2"
        ))
        .await
        .expect("prepare");
    let plan: Vec<String> = client
        .query(
            "EXPLAIN EXECUTE day_read('00000000-0000-0000-0000-000000000001', '2026-04-01')",
            &[],
        )
        .await
        .expect("explain")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(plan[0].contains("Index"), "{plan:?}");
}

#[tokio::test]
async fn the_same_seed_writes_the_same_rows_into_another_database() {
    let (a, b, c) = (
        TestDb::new().await.expect("a"),
        TestDb::new().await.expect("b"),
        TestDb::new().await.expect("c"),
    );
    generate::generate(a.url(), plan(9), false)
        .await
        .expect("a");
    generate::generate(b.url(), plan(9), false)
        .await
        .expect("b");
    generate::generate(c.url(), plan(10), false)
        .await
        .expect("c");
    let (fa, fb, fc) = (
        fingerprint(&a).await,
        fingerprint(&b).await,
        fingerprint(&c).await,
    );
    assert_eq!(fa, fb);
    assert_ne!(fa, fc);
}
