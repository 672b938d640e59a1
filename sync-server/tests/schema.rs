//! The PostgreSQL schema: every table, view, constraint and index exists, the constraints
//! reject what they must, migrations and seeds are idempotent, and docs/database.md covers
//! every table and view of the live schema.

use std::collections::BTreeSet;

use fitkart_sync_server::testing::TestDb;
use fitkart_sync_server::{db, maintenance, seeds};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

const TABLES: &[&str] = &[
    "users",
    "refresh_tokens",
    "wallets",
    "coin_transactions",
    "step_records",
    "step_validations",
    "leaderboard_cache",
    "orders",
    "order_items",
    "reward_products",
    "achievements",
    "user_achievements",
    "admin_logs",
    "settings",
    "devices",
    "sync_mutations",
    "change_versions",
    "shared_change_version",
    "auth_failures",
    "step_days",
    "step_month_totals",
    "scheduled_jobs",
    "scheduled_job_runs",
    "console_import_previews",
];

const VIEWS: &[&str] = &["active_users", "daily_step_summary", "user_stats"];

/// Tables and views of the live schema, without step_records' monthly partitions and
/// refinery's bookkeeping table.
async fn live_relations(client: &tokio_postgres::Client) -> BTreeSet<String> {
    client
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition
               AND c.relname <> 'refinery_schema_history'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn insert_user(
    client: &tokio_postgres::Client,
    email: &str,
) -> Result<Uuid, tokio_postgres::Error> {
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, 'x', 'Walker')",
            &[&id, &email],
        )
        .await?;
    Ok(id)
}

fn sql_state(err: &tokio_postgres::Error) -> SqlState {
    err.code().cloned().unwrap_or(SqlState::from_code("?????"))
}

#[tokio::test]
async fn every_table_and_view_of_the_design_exists() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let live = live_relations(&client).await;
    let expected: BTreeSet<String> = TABLES.iter().chain(VIEWS).map(|s| s.to_string()).collect();
    assert_eq!(live, expected);

    let partitioned: String = client
        .query_one("SELECT pg_get_partkeydef('step_records'::regclass)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitioned, "RANGE (day)");
}

#[tokio::test]
async fn the_indexes_the_queries_need_exist() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let rows = client
        .query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap();
    let def = |name: &str| -> String {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == name)
            .map(|r| r.get::<_, String>(1))
            .unwrap_or_else(|| panic!("index {name} is missing"))
    };
    assert!(def("users_email_lower_key").contains("UNIQUE INDEX"));
    assert!(def("users_email_lower_key").contains("lower(email)"));
    assert!(def("coin_transactions_created_brin").contains("USING brin"));
    assert!(def("step_records_day_brin").contains("USING brin"));
    assert!(def("admin_logs_created_brin").contains("USING brin"));
    assert!(
        def("step_validations_pending_idx").contains("WHERE (status = 'pending_review'::text)")
    );
    assert!(def("orders_open_status_idx").contains("WHERE"));
    assert!(def("reward_products_catalogue_idx").contains("WHERE"));
    assert!(def("coin_transactions_user_seq_idx").contains("(user_id, ledger_seq)"));
    assert!(def("coin_transactions_user_version_idx").contains("(user_id, change_version)"));
    assert!(def("step_records_user_day_source_key").contains("UNIQUE INDEX"));
    assert!(def("user_achievements_user_achievement_key").contains("(user_id, achievement_id)"));
    assert!(def("orders_order_code_key").contains("UNIQUE INDEX"));
    assert!(def("orders_user_client_order_key").contains("(user_id, client_order_id)"));
    assert!(def("refresh_tokens_family_idx").contains("(family_id)"));
}

#[tokio::test]
async fn constraints_reject_negative_coins_duplicate_emails_and_duplicate_step_days() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let user = insert_user(&client, "Ann@Example.com").await.unwrap();

    // The same email in another case is the same account.
    let dup = insert_user(&client, "ann@example.COM").await.unwrap_err();
    assert_eq!(sql_state(&dup), SqlState::UNIQUE_VIOLATION);
    // ...but once the first account is soft-deleted, the email can register again.
    client
        .execute(
            "UPDATE users SET deleted_at = now() WHERE id = $1",
            &[&user],
        )
        .await
        .unwrap();
    insert_user(&client, "ann@example.com").await.unwrap();

    // A wallet can never go negative, in either column.
    client
        .execute("INSERT INTO wallets (user_id) VALUES ($1)", &[&user])
        .await
        .unwrap();
    for column in ["available_coins", "frozen_coins"] {
        let err = client
            .execute(
                &format!("UPDATE wallets SET {column} = -1 WHERE user_id = $1"),
                &[&user],
            )
            .await
            .unwrap_err();
        assert_eq!(sql_state(&err), SqlState::CHECK_VIOLATION, "{column}");
    }

    // One step record per user, local date and source.
    let record = "INSERT INTO step_records (user_id, day, source, steps) VALUES ($1, current_date, 'healthkit', $2)";
    client.execute(record, &[&user, &100i32]).await.unwrap();
    let err = client.execute(record, &[&user, &200i32]).await.unwrap_err();
    assert_eq!(sql_state(&err), SqlState::UNIQUE_VIOLATION);
    // Another source the same day is a separate record.
    client
        .execute(
            "INSERT INTO step_records (user_id, day, source, steps) VALUES ($1, current_date, 'watch', 50)",
            &[&user],
        )
        .await
        .unwrap();
    // Negative steps are refused.
    let err = client
        .execute(
            "INSERT INTO step_records (user_id, day, source, steps) VALUES ($1, current_date - 1, 'watch', -5)",
            &[&user],
        )
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::CHECK_VIOLATION);

    // Prices and stock cannot be negative; statuses must be known.
    let err = client
        .execute(
            "INSERT INTO reward_products (name, category, coin_price, stock) VALUES ('Cap', 'apparel', 100, -1)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::CHECK_VIOLATION);
    let err = client
        .execute(
            "INSERT INTO reward_products (name, category, coin_price, stock) VALUES ('Cap', 'apparel', -100, 1)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::CHECK_VIOLATION);
    let err = client
        .execute(
            "UPDATE users SET role = 'superuser' WHERE id = $1",
            &[&user],
        )
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::CHECK_VIOLATION);
}

#[tokio::test]
async fn the_coin_ledger_and_the_audit_log_are_append_only() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let user = insert_user(&client, "ledger@example.com").await.unwrap();
    let wallet: Uuid = client
        .query_one(
            "INSERT INTO wallets (user_id, available_coins, lifetime_earned) VALUES ($1, 10, 10) RETURNING id",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO coin_transactions (user_id, wallet_id, kind, available_delta, frozen_delta,
                 available_after, frozen_after, idempotency_key)
             VALUES ($1, $2, 'step_reward', 10, 0, 10, 0, 'test:1')",
            &[&user, &wallet],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO admin_logs (action, entity_type, entity_id) VALUES ('user.create_admin', 'user', $1)",
            &[&user.to_string()],
        )
        .await
        .unwrap();

    for table in ["coin_transactions", "admin_logs"] {
        for statement in [
            format!("UPDATE {table} SET created_at = now()"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table} CASCADE"),
        ] {
            let err = client.batch_execute(&statement).await.unwrap_err();
            assert_eq!(sql_state(&err), SqlState::RAISE_EXCEPTION, "{statement}");
            let db_err = err.as_db_error().unwrap();
            assert!(
                db_err.message().contains("append-only"),
                "{}",
                db_err.message()
            );
        }
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 1, "{table} keeps its row");
    }

    // The same idempotency key cannot be booked twice.
    let err = client
        .execute(
            "INSERT INTO coin_transactions (user_id, wallet_id, kind, available_delta, frozen_delta,
                 available_after, frozen_after, idempotency_key)
             VALUES ($1, $2, 'step_reward', 10, 0, 20, 0, 'test:1')",
            &[&user, &wallet],
        )
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::UNIQUE_VIOLATION);
    // A ledger row never records a negative balance.
    let err = client
        .execute(
            "INSERT INTO coin_transactions (user_id, wallet_id, kind, available_delta, frozen_delta,
                 available_after, frozen_after, idempotency_key)
             VALUES ($1, $2, 'admin_adjustment', -20, 0, -10, 0, 'test:2')",
            &[&user, &wallet],
        )
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::CHECK_VIOLATION);

    // An entry belongs to its wallet's user: it can name neither another user's wallet nor a
    // user who does not exist (V9 left this to the composite key on the wallet alone).
    let other = insert_user(&client, "other@example.com").await.unwrap();
    for (who, key) in [(other, "test:3"), (Uuid::now_v7(), "test:4")] {
        let err = client
            .execute(
                "INSERT INTO coin_transactions (user_id, wallet_id, kind, available_delta,
                     frozen_delta, available_after, frozen_after, idempotency_key)
                 VALUES ($1, $2, 'step_reward', 10, 0, 20, 0, $3)",
                &[&who, &wallet, &key],
            )
            .await
            .unwrap_err();
        assert_eq!(sql_state(&err), SqlState::FOREIGN_KEY_VIOLATION, "{key}");
    }
    // ...and the user of a wallet with entries cannot be deleted.
    let err = client
        .execute("DELETE FROM users WHERE id = $1", &[&user])
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::FOREIGN_KEY_VIOLATION);
}

/// Every column of every table, with types, defaults and nullability, and every index and
/// constraint: a fingerprint of the schema.
async fn schema_fingerprint(client: &tokio_postgres::Client) -> Vec<String> {
    let mut lines = Vec::new();
    for row in client
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
                    || ' ' || coalesce(column_default, '')
             FROM information_schema.columns WHERE table_schema = 'public'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .unwrap()
    {
        lines.push(row.get::<_, String>(0));
    }
    for row in client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
    {
        lines.push(row.get::<_, String>(0));
    }
    for row in client
        .query(
            "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
    {
        lines.push(row.get::<_, String>(0));
    }
    lines
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let db = TestDb::new_empty().await.unwrap();
    let first = db::migrate(db.url()).await.unwrap();
    assert!(first >= 1);
    let client = db.client().await.unwrap();
    let before = schema_fingerprint(&client).await;
    assert_eq!(db::migrate(db.url()).await.unwrap(), 0);
    assert_eq!(schema_fingerprint(&client).await, before);
    assert_eq!(
        db::applied_schema_version(&client).await.unwrap(),
        Some(db::latest_migration_version())
    );
}

#[tokio::test]
async fn servers_migrating_at_once_apply_each_migration_once() {
    let db = TestDb::new_empty().await.unwrap();
    let (a, b, c) = tokio::join!(
        db::migrate(db.url()),
        db::migrate(db.url()),
        db::migrate(db.url())
    );
    let applied = a.unwrap() + b.unwrap() + c.unwrap();
    let client = db.client().await.unwrap();
    let history: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied as i64, history);
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn seeds_load_once() {
    let db = TestDb::new().await.unwrap();
    let mut client = db.client().await.unwrap();
    let first = seeds::load(&mut client).await.unwrap();
    assert_eq!(first.achievements, 7);
    assert_eq!(first.products, 8);
    assert!(first.settings >= 10);

    let version_after_first: i64 = client
        .query_one("SELECT version FROM shared_change_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version_after_first, 1);
    assert_eq!(count(&client, "achievements").await, 7);
    assert_eq!(count(&client, "reward_products").await, 8);

    // An operator changes a setting; loading the seeds again keeps it and adds nothing.
    client
        .execute(
            "UPDATE settings SET value = '25' WHERE key = 'rewards.coins_per_1000_steps'",
            &[],
        )
        .await
        .unwrap();
    let second = seeds::load(&mut client).await.unwrap();
    assert_eq!(second.total(), 0);
    assert_eq!(count(&client, "achievements").await, 7);
    assert_eq!(count(&client, "reward_products").await, 8);
    let rate: serde_json::Value = client
        .query_one(
            "SELECT value FROM settings WHERE key = 'rewards.coins_per_1000_steps'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rate, serde_json::json!(25));
    let version_after_second: i64 = client
        .query_one("SELECT version FROM shared_change_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        version_after_second, version_after_first,
        "nothing new for devices to pull"
    );

    // Every seeded catalogue row carries the version devices will pull it at.
    let unversioned: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM achievements WHERE change_version <> 1)
                  + (SELECT count(*) FROM reward_products WHERE change_version <> 1)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unversioned, 0);
}

#[tokio::test]
async fn step_record_partitions_exist_ahead_and_route_rows_by_month() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    maintenance::ensure_partitions(db.pool()).await.unwrap();
    // Calling it again (or concurrently) creates nothing new.
    let (a, b) = tokio::join!(
        maintenance::ensure_partitions(db.pool()),
        maintenance::ensure_partitions(db.pool())
    );
    assert_eq!(a.unwrap() + b.unwrap(), 0);

    let ahead: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'step_records'::regclass
               AND c.relname = 'step_records_' || to_char(current_date + interval '3 months', 'YYYY_MM')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ahead, 1, "the partition three months ahead exists");

    let user = insert_user(&client, "walker@example.com").await.unwrap();
    let partition: String = client
        .query_one(
            "INSERT INTO step_records (user_id, day, source, steps)
             VALUES ($1, current_date - 40, 'healthkit', 1234)
             RETURNING tableoid::regclass::text",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    let expected: String = client
        .query_one(
            "SELECT 'step_records_' || to_char(current_date - 40, 'YYYY_MM')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(partition, expected);

    // A validation references its record across the partitioned key.
    client
        .execute(
            "INSERT INTO step_validations (user_id, step_record_id, step_day, previous_steps, claimed_steps, anomaly_score)
             SELECT user_id, id, day, 0, steps, 3.5 FROM step_records WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    let err = client
        .execute(
            "INSERT INTO step_validations (user_id, step_record_id, step_day, previous_steps, claimed_steps, anomaly_score)
             VALUES ($1, gen_random_uuid(), current_date, 0, 1, 1)",
            &[&user],
        )
        .await
        .unwrap_err();
    assert_eq!(sql_state(&err), SqlState::FOREIGN_KEY_VIOLATION);
}

#[tokio::test]
async fn the_views_answer_with_a_day_worth_its_largest_source() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let user = insert_user(&client, "views@example.com").await.unwrap();
    client
        .execute("INSERT INTO wallets (user_id) VALUES ($1)", &[&user])
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO step_records (user_id, day, source, steps, verified_steps, last_recorded_at) VALUES
                 ($1, current_date, 'phone', 8000, 8000, now()),
                 ($1, current_date, 'watch', 9000, 9000, now()),
                 ($1, current_date - 1, 'phone', 12000, 12000, now() - interval '1 day')",
            &[&user],
        )
        .await
        .unwrap();
    let today: i32 = client
        .query_one(
            "SELECT verified_steps FROM daily_step_summary WHERE user_id = $1 AND day = current_date",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(today, 9000);
    let row = client
        .query_one(
            "SELECT total_steps, active_days, best_day_steps FROM user_stats WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 21000);
    assert_eq!(row.get::<_, i64>(1), 2);
    assert_eq!(row.get::<_, i32>(2), 12000);
    let active: i64 = client
        .query_one(
            "SELECT count(*) FROM active_users WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 1);
}

#[tokio::test]
async fn the_database_reference_documents_every_table_and_view() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/database.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/database.md exists");
    let headings: BTreeSet<&str> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(|h| h.trim().trim_matches('`'))
        .collect();
    let missing: Vec<String> = live_relations(&client)
        .await
        .into_iter()
        .filter(|name| !headings.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/database.md has no `### name` section for {missing:?}"
    );
}

#[tokio::test]
async fn the_order_statuses_of_the_code_are_the_ones_the_schema_allows() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let check: String = client
        .query_one(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
             WHERE c.conrelid = 'orders'::regclass AND c.contype = 'c'
               AND pg_get_constraintdef(c.oid) LIKE '%status%pending%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let allowed: Vec<&str> = check.split('\'').skip(1).step_by(2).collect();
    let known: Vec<&str> = fitkart_sync_server::shop::orders::workflow::OrderStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(allowed, known, "{check}");
}
