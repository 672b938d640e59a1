//! Large batches: a batch of many new records (a phone's backlog after weeks offline, a
//! health-platform import) stores them in bulk, and must store, pay, flag and answer exactly
//! what the same reports sent a few at a time do.

use super::*;

/// What a result says of its report, without its index in the batch.
fn said(response: &RecordStepsResponse) -> Vec<(RecordOutcome, Option<String>, i64, i64, i64)> {
    response
        .results
        .iter()
        .map(|r| {
            (
                r.status,
                r.code.clone(),
                r.steps,
                r.verified_steps,
                r.coins_awarded,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_batch_of_many_new_records_stores_pays_and_answers_what_small_batches_do() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let day = days_ago;
    // Stored before: a record the batch raises, and a flagged one it raises again.
    let before = vec![
        report(day(1), PHONE, 4_000, at(day(1), 12, 0)),
        report(day(4), PHONE, 60_000, at(day(4), 23, 0)),
    ];
    // In day order, so that the batches of at most eight below split no day's reports
    // across a day that comes back later.
    let mut batch = vec![
        report(day(8), PHONE, 10_000, at(day(8), 20, 0)),
        report(day(7), PHONE, 10_000, at(day(7), 20, 0)),
        report(day(6), PHONE, 10_000, at(day(6), 20, 0)),
        report(day(5), PHONE, 3_000, at(day(5), 12, 0)),
        report(day(4), PHONE, 61_000, at(day(4), 23, 30)), // extends the pending review
    ];
    // A day of many sources: each a new record, two of them reported twice.
    for n in 0..120 {
        let source = format!("import:band{n}");
        batch.push(report(day(3), &source, 50 + n, at(day(3), 10, 0)));
        if n % 60 == 0 {
            batch.push(report(day(3), &source, 2_000 + n, at(day(3), 11, 0)));
        }
    }
    batch.extend([
        report(day(2), WATCH, 5_000, at(day(2), 18, 0)),
        report(day(2), PHONE, 60_000, at(day(2), 23, 0)), // a new record, flagged
        report(day(1), PHONE, 6_000, at(day(1), 14, 0)),  // raises a stored record
        report(day(1), WATCH, 2_500, at(day(1), 7, 0)),
        report(day(0) + Days::new(3), PHONE, 4_000, at(day(1), 12, 0)), // refused: future
    ]);

    let whole = api.account("whole@example.com").await;
    let split = api.account("split@example.com").await;
    api.record(&whole, &before).await;
    api.record(&split, &before).await;

    let at_once = api.record(&whole, &batch).await;
    let mut in_parts = Vec::new();
    let mut paid_in_parts = 0;
    let mut unlocked_in_parts = Vec::new();
    for part in batch.chunks(8) {
        let answer = api.record(&split, part).await;
        in_parts.extend(said(&answer));
        paid_in_parts += answer.coins_awarded;
        unlocked_in_parts.extend(answer.achievements_unlocked);
    }
    unlocked_in_parts.sort_unstable();

    assert_eq!(said(&at_once), in_parts, "each report's answer");
    assert_eq!(at_once.coins_awarded, paid_in_parts);
    assert_eq!(unlocked(&at_once), unlocked_in_parts);
    assert_eq!(
        stored_state(&server, whole.id, Ledger::PerReference).await,
        stored_state(&server, split.id, Ledger::PerReference).await,
        "what it stored, in one batch, then in batches of eight"
    );
    // The comparison is not of empty answers: the batch paid, flagged, unlocked and refused.
    let statuses: Vec<RecordOutcome> = at_once.results.iter().map(|r| r.status).collect();
    assert!(at_once.coins_awarded > 0);
    assert!(!at_once.achievements_unlocked.is_empty());
    assert_eq!(statuses.iter().filter(|&&s| s == Flagged).count(), 2);
    assert_eq!(statuses.last(), Some(&Rejected));
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM step_validations WHERE user_id = $1 AND status = 'pending_review'",
            whole.id,
        )
        .await,
        2,
        "the flag of the new record opened its own review"
    );

    // Sent again, every record is stored: nothing changes, nothing more is paid.
    let stored = stored_state(&server, whole.id, Ledger::PerReference).await;
    let replay = api.record(&whole, &batch).await;
    assert_eq!(replay.coins_awarded, 0);
    assert!(
        replay
            .results
            .iter()
            .all(|r| matches!(r.status, Unchanged | Rejected)),
        "{:?}",
        said(&replay)
    );
    assert_eq!(
        stored_state(&server, whole.id, Ledger::PerReference).await,
        stored
    );
    assert_ledger_consistent(&server).await;
}
