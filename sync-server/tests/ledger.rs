//! The ledger check: `verify-ledger` (and `ledger::verify`) passes on a ledger the server
//! wrote, and catches a wallet that no longer matches its entries.

use fitkart_protocol::steps::RecordOutcome;
use fitkart_sync_server::rewards::ledger;
use fitkart_sync_server::testing::TestServer;

mod common;
use common::{Api, at, report, verify_ledger_cli, yesterday};

#[tokio::test]
async fn verify_ledger_passes_on_real_rewards_and_catches_tampering() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let session = api.sign_up("ledger@example.com", "L").await;
    let yesterday = yesterday();
    let late = at(yesterday, 23, 0);
    let answer = api
        .record(&session, &[report(yesterday, "healthkit", 12_345, late)])
        .await;
    assert_eq!(answer.results[0].status, RecordOutcome::Accepted);
    assert_eq!(answer.results[0].coins_awarded, 123);
    let wallet = api.wallet(&session).await;
    assert_eq!(wallet.available_coins, answer.coins_awarded);

    let client = server.db().client().await.unwrap();
    let report = ledger::verify(&client).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.entries_checked >= 1);
    let out = verify_ledger_cli(server.db());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ledger OK"));

    // Someone edits a balance by hand: both the function and the command notice.
    client
        .execute(
            "UPDATE wallets SET available_coins = available_coins + 5",
            &[],
        )
        .await
        .unwrap();
    let report = ledger::verify(&client).await.unwrap();
    assert!(!report.is_ok());
    assert!(
        report.problems[0].contains("available_coins"),
        "{:?}",
        report.problems
    );
    let out = verify_ledger_cli(server.db());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBLEM"));
}
