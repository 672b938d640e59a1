//! The `fitkart-sync-server` binary: migrate, seed, create-admin without a default password,
//! and serve with a graceful shutdown on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fitkart_sync_server::auth::password;
use fitkart_sync_server::db;
use fitkart_sync_server::testing::TestDb;

mod common;
use common::BIN;

fn cli(db: &TestDb) -> Command {
    let mut command = common::cli(db);
    command
        .env_remove("FITKART_ADMIN_PASSWORD")
        .env_remove("FITKART_LISTEN");
    command
}

#[tokio::test]
async fn migrate_and_seed_commands_are_idempotent() {
    let db = TestDb::new_empty().await.unwrap();
    for _ in 0..2 {
        let out = cli(&db).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let first = cli(&db).arg("seed").output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("7 achievement(s), 8 product(s)"));
    let second = cli(&db).arg("seed").output().unwrap();
    assert!(
        String::from_utf8_lossy(&second.stdout)
            .contains("0 achievement(s), 0 product(s), 0 setting(s)")
    );
    let client = db.client().await.unwrap();
    assert_eq!(
        db::applied_schema_version(&client).await.unwrap(),
        Some(db::latest_migration_version())
    );
}

#[tokio::test]
async fn create_admin_needs_a_password_and_never_invents_one() {
    let db = TestDb::new().await.unwrap();

    // No password in the environment and no terminal to ask on: refused, nothing created.
    let out = cli(&db)
        .args(["create-admin", "--email", "ops@fitkart.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FITKART_ADMIN_PASSWORD"));

    // A weak password is refused.
    let out = cli(&db)
        .args(["create-admin", "--email", "ops@fitkart.example"])
        .env("FITKART_ADMIN_PASSWORD", "password123")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let client = db.client().await.unwrap();
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);

    let out = cli(&db)
        .args(["create-admin", "--email", " Ops@FitKart.example "])
        .env("FITKART_ADMIN_PASSWORD", "long enough and uncommon")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = client
        .query_one(
            "SELECT u.email, u.role, u.password_hash, w.available_coins
             FROM users u JOIN wallets w ON w.user_id = u.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Ops@FitKart.example");
    assert_eq!(row.get::<_, String>(1), "admin");
    let hash: String = row.get(2);
    assert!(hash.starts_with("$argon2id$"));
    assert!(password::verify_password("long enough and uncommon", &hash));
    assert_eq!(row.get::<_, i64>(3), 0);
    let audit: i64 = client
        .query_one(
            "SELECT count(*) FROM admin_logs WHERE action = 'user.create_admin' AND admin_id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 1);

    // The same email again (in another case) is refused without --promote...
    let out = cli(&db)
        .args(["create-admin", "--email", "ops@fitkart.example"])
        .env("FITKART_ADMIN_PASSWORD", "another long password")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // ...and with it, the password is replaced and every session of the old one ends.
    let epoch_before: i32 = client
        .query_one("SELECT session_epoch FROM users", &[])
        .await
        .unwrap()
        .get(0);
    let out = cli(&db)
        .args([
            "create-admin",
            "--email",
            "ops@fitkart.example",
            "--promote",
        ])
        .env("FITKART_ADMIN_PASSWORD", "another long password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash: String = client
        .query_one("SELECT password_hash FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(password::verify_password("another long password", &hash));
    let epoch_after: i32 = client
        .query_one("SELECT session_epoch FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        epoch_after,
        epoch_before + 1,
        "access tokens of the old password die"
    );
}

#[tokio::test]
async fn serve_creates_the_database_and_stops_cleanly_on_sigterm() {
    // A database name that does not exist yet: serve must create it.
    let holder = TestDb::new_empty().await.unwrap();
    let fresh_url = holder
        .url()
        .replace(holder.name(), &format!("{}_served", holder.name()));
    let fresh_name = format!("{}_served", holder.name());
    let serve = || {
        let mut command = Command::new(BIN);
        command
            .env("DATABASE_URL", &fresh_url)
            .env("FITKART_LISTEN", "127.0.0.1:0")
            .env_remove("FITKART_JWT_SECRET")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    };

    // Without FITKART_JWT_SECRET a debug build generates one and says so (asserted below);
    // a release build refuses to start, says how to make one, and creates nothing.
    let mut command = serve();
    if !cfg!(debug_assertions) {
        let refused = serve().output().unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("a release build refuses to start without one"),
            "{stderr}"
        );
        // pg_database is the cluster's, so the holder's own connection sees every database.
        let created = holder
            .client()
            .await
            .unwrap()
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&fresh_name],
            )
            .await
            .unwrap();
        assert!(created.is_none(), "a refused start created the database");
        command.env(
            "FITKART_JWT_SECRET",
            "a-release-build-needs-a-secret-this-long",
        );
    }
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut addr = None;
    let mut log = Vec::new();
    while addr.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.split("address=").nth(1) {
                addr = rest.split_whitespace().next().map(str::to_owned);
            }
            log.push(line);
        }
    }
    let addr = addr.unwrap_or_else(|| {
        panic!(
            "the server never said where it listens:\n{}",
            log.join("\n")
        )
    });
    if cfg!(debug_assertions) {
        assert!(
            log.iter()
                .any(|l| l.contains("FITKART_JWT_SECRET is not set")),
            "a debug build says it generated a secret"
        );
    }

    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    // Clean up the database serve created.
    let mut admin = db::parse_url(holder.url()).unwrap();
    admin.dbname("postgres");
    let client = db::connect(&admin).await.unwrap();
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            db::quote_ident(&fresh_name)
        ))
        .await
        .unwrap();
}
