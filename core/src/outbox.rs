//! The outbox: every local write is a mutation queued in the same SQLite transaction as its
//! effect. Queue rules live here: step reports coalesce while unsent, a sent mutation is
//! never edited, and pending effects (held coins, pending orders) are read from the queue.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use fitkart_protocol::auth::{ProfilePatch, limits};
use fitkart_protocol::orders::{MAX_ITEM_QUANTITY, MAX_ORDER_ITEMS, OrderLine, ShippingAddress};
use fitkart_protocol::steps::{MAX_RECORDS_PER_REQUEST, MAX_SOURCE_LEN, StepReport};
use fitkart_protocol::sync::{CancelOrderPayload, MutationKind};
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use uuid::Uuid;

use crate::Error;

/// Most steps a device accepts for one day and source (the server refuses more anyway).
pub const MAX_DAY_STEPS: i64 = 1_000_000;

/// Checks a step report before anything is written.
pub(crate) fn validate_report(report: &StepReport) -> Result<(), Error> {
    if report.steps < 0 || report.steps > MAX_DAY_STEPS {
        return Err(Error::invalid(
            "steps",
            format!("steps must be between 0 and {MAX_DAY_STEPS}"),
        ));
    }
    let source = report.source.as_str();
    if source.is_empty()
        || source.len() > MAX_SOURCE_LEN
        || !source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(Error::invalid(
            "source",
            format!("source must be 1 to {MAX_SOURCE_LEN} of A-Z a-z 0-9 _ . : -"),
        ));
    }
    if !(NaiveDate::from_ymd_opt(2000, 1, 1)..NaiveDate::from_ymd_opt(2200, 1, 1))
        .contains(&Some(report.date))
    {
        return Err(Error::invalid("date", "the date is out of range"));
    }
    Ok(())
}

/// Records step totals observed on the device, as one transaction: each report raises the
/// device's max-register for its (date, source) and queues the new total. A total not above
/// the one already recorded changes nothing. Returns how many reports raised a total.
pub(crate) fn record_steps(
    tx: &Transaction<'_>,
    user_id: &str,
    now: DateTime<Utc>,
    reports: &[StepReport],
) -> Result<usize, Error> {
    for report in reports {
        validate_report(report)?;
    }
    let mut raised = 0;
    // Per report: one lookup, then one write to device_steps and one to outbox_steps
    // (statements prepared once per call, cached across calls).
    let mut current = tx.prepare_cached(
        "SELECT steps FROM device_steps WHERE user_id = ?1 AND local_date = ?2 AND source = ?3",
    )?;
    let mut insert_total = tx.prepare_cached(
        "INSERT INTO device_steps (user_id, local_date, source, steps, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut raise_total = tx.prepare_cached(
        "UPDATE device_steps SET steps = ?4, recorded_at = ?5
         WHERE user_id = ?1 AND local_date = ?2 AND source = ?3",
    )?;
    // Coalesces into the unsent mutation that carries this (date, source): rows of
    // outbox_steps exist only while their mutation is unsent (a push freezes and drops them).
    let mut coalesce = tx.prepare_cached(
        "UPDATE outbox_steps SET steps = ?1, recorded_at = ?2
         WHERE local_date = ?3 AND source = ?4
           AND mutation_id IN (SELECT mutation_id FROM outbox WHERE user_id = ?5)",
    )?;
    let mut insert_row = tx.prepare_cached(
        "INSERT INTO outbox_steps (mutation_id, local_date, source, steps, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    // The open record_steps mutation at the tail of the queue and how many records it has.
    let mut tail: Option<(String, usize)> = None;
    for report in reports {
        let date = report.date.to_string();
        let known: Option<i64> = current
            .query_row(params![user_id, date, report.source], |row| row.get(0))
            .optional()?;
        if known.is_some_and(|known| known >= report.steps) {
            continue;
        }
        let recorded_at = timestamp(report.recorded_at);
        let total = params![user_id, date, report.source, report.steps, recorded_at];
        raised += 1;
        if known.is_none() {
            // A (date, source) the device never recorded has no queued row to coalesce into.
            insert_total.execute(total)?;
        } else {
            raise_total.execute(total)?;
            let coalesced = coalesce.execute(params![
                report.steps,
                recorded_at,
                date,
                report.source,
                user_id
            ])?;
            if coalesced > 0 {
                continue;
            }
        }
        if tail.is_none() {
            tail = open_tail(tx, user_id)?;
        }
        let mutation_id = match &mut tail {
            Some((id, count)) if *count < MAX_RECORDS_PER_REQUEST => {
                *count += 1;
                id.clone()
            }
            _ => {
                let id = enqueue(tx, user_id, MutationKind::RecordSteps, None, 0, None, now)?;
                tail = Some((id.clone(), 1));
                id
            }
        };
        insert_row.execute(params![
            mutation_id,
            date,
            report.source,
            report.steps,
            recorded_at
        ])?;
    }
    Ok(raised)
}

/// The last mutation of the user's queue when it is an unsent record_steps one, with its
/// record count.
fn open_tail(tx: &Connection, user_id: &str) -> Result<Option<(String, usize)>, Error> {
    let last: Option<(String, String, String)> = tx
        .prepare_cached(
            "SELECT mutation_id, kind, state FROM outbox WHERE user_id = ?1
             ORDER BY sequence DESC LIMIT 1",
        )?
        .query_row([user_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((id, kind, state)) = last else {
        return Ok(None);
    };
    if kind != MutationKind::RecordSteps.as_str() || state != "queued" {
        return Ok(None);
    }
    let count: i64 = tx
        .prepare_cached("SELECT count(*) FROM outbox_steps WHERE mutation_id = ?1")?
        .query_row([&id], |row| row.get(0))?;
    Ok(Some((id, usize::try_from(count).unwrap_or(usize::MAX))))
}

/// Appends a mutation to the queue and returns its id.
fn enqueue(
    tx: &Connection,
    user_id: &str,
    kind: MutationKind,
    payload: Option<String>,
    hold_coins: i64,
    order_ref: Option<String>,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let id = Uuid::now_v7().to_string();
    tx.prepare_cached(
        "INSERT INTO outbox (mutation_id, user_id, sequence, kind, payload, hold_coins,
                             order_ref, created_at)
         VALUES (?1, ?2, (SELECT coalesce(max(sequence), 0) + 1 FROM outbox), ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        user_id,
        kind.as_str(),
        payload,
        hold_coins,
        order_ref,
        timestamp(now)
    ])?;
    Ok(id)
}

/// An order as the device queued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedOrder {
    /// The device's id for the order (the server keeps it as `client_order_id`).
    pub client_order_id: Uuid,
    /// The coins it holds, from the cached prices.
    pub total_coins: i64,
}

/// Queues an order: checks its lines against the cached catalogue and holds its total.
pub(crate) fn place_order(
    tx: &Transaction<'_>,
    user_id: &str,
    now: DateTime<Utc>,
    items: &[OrderLine],
    shipping_address: &ShippingAddress,
) -> Result<QueuedOrder, Error> {
    if items.is_empty() || items.len() > MAX_ORDER_ITEMS {
        return Err(Error::invalid(
            "items",
            format!("an order has 1 to {MAX_ORDER_ITEMS} lines"),
        ));
    }
    validate_address(shipping_address)?;
    let mut quantities: HashMap<Uuid, i64> = HashMap::new();
    for line in items {
        if !(1..=MAX_ITEM_QUANTITY).contains(&line.quantity) {
            return Err(Error::invalid(
                "quantity",
                format!("a quantity is 1 to {MAX_ITEM_QUANTITY}"),
            ));
        }
        *quantities.entry(line.product_id).or_default() += i64::from(line.quantity);
    }
    let mut total: i64 = 0;
    let mut price =
        tx.prepare_cached("SELECT coin_price, is_active FROM products WHERE id = ?1")?;
    for (product_id, quantity) in &quantities {
        let found: Option<(i64, bool)> = price
            .query_row([product_id.to_string()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        match found {
            Some((coins, true)) => {
                total = coins
                    .checked_mul(*quantity)
                    .and_then(|line| total.checked_add(line))
                    .ok_or_else(|| Error::invalid("items", "the order total is too large"))?;
            }
            _ => {
                return Err(Error::invalid(
                    "product_id",
                    "no such product in the catalogue (sync to refresh it)",
                ));
            }
        }
    }
    let client_order_id = Uuid::now_v7();
    let request = fitkart_protocol::orders::PlaceOrderRequest {
        client_order_id,
        items: items.to_vec(),
        shipping_address: trimmed(shipping_address),
    };
    enqueue(
        tx,
        user_id,
        MutationKind::PlaceOrder,
        Some(serde_json::to_string(&request)?),
        total,
        Some(client_order_id.to_string()),
        now,
    )?;
    Ok(QueuedOrder {
        client_order_id,
        total_coins: total,
    })
}

/// The address with its fields trimmed, as it is sent.
fn trimmed(address: &ShippingAddress) -> ShippingAddress {
    let opt = |value: &Option<String>| {
        value
            .as_ref()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    ShippingAddress {
        name: address.name.trim().to_owned(),
        line1: address.line1.trim().to_owned(),
        line2: opt(&address.line2),
        city: address.city.trim().to_owned(),
        region: opt(&address.region),
        postal_code: address.postal_code.trim().to_owned(),
        country: address.country.trim().to_owned(),
        phone: opt(&address.phone),
    }
}

fn validate_address(address: &ShippingAddress) -> Result<(), Error> {
    let required = [
        ("name", &address.name),
        ("line1", &address.line1),
        ("city", &address.city),
        ("postal_code", &address.postal_code),
        ("country", &address.country),
    ];
    for (field, value) in required {
        if value.trim().is_empty() {
            return Err(Error::invalid(field, format!("{field} is required")));
        }
    }
    let optional = [
        ("line2", &address.line2),
        ("region", &address.region),
        ("phone", &address.phone),
    ];
    let all = required
        .into_iter()
        .map(|(f, v)| (f, Some(v.as_str())))
        .chain(optional.into_iter().map(|(f, v)| (f, v.as_deref())));
    for (field, value) in all {
        if let Some(value) = value
            && (value.contains('\0') || value.trim().chars().count() > 200)
        {
            return Err(Error::invalid(
                field,
                format!("{field} must be at most 200 characters, without NUL"),
            ));
        }
    }
    Ok(())
}

/// Cancels an order. An order that never left the device is simply dropped from the queue;
/// otherwise a cancel_order mutation is queued (once).
pub(crate) fn cancel_order(
    tx: &Transaction<'_>,
    user_id: &str,
    now: DateTime<Utc>,
    client_order_id: Uuid,
) -> Result<(), Error> {
    let reference = client_order_id.to_string();
    let queued: Option<(String, String)> = tx
        .query_row(
            "SELECT mutation_id, state FROM outbox
             WHERE user_id = ?1 AND kind = 'place_order' AND order_ref = ?2",
            params![user_id, reference],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((mutation_id, state)) = &queued
        && state == "queued"
    {
        tx.execute("DELETE FROM outbox WHERE mutation_id = ?1", [mutation_id])?;
        return Ok(());
    }
    let status: Option<String> = tx
        .query_row(
            "SELECT status FROM orders WHERE client_order_id = ?1",
            [&reference],
            |row| row.get(0),
        )
        .optional()?;
    match (status.as_deref(), &queued) {
        (None, None) => return Err(Error::invalid("client_order_id", "no such order")),
        (Some(status), _) if !matches!(status, "pending" | "confirmed") => {
            return Err(Error::invalid(
                "client_order_id",
                format!("the order is {status} and can no longer be cancelled"),
            ));
        }
        _ => {}
    }
    let already: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM outbox
                        WHERE user_id = ?1 AND kind = 'cancel_order' AND order_ref = ?2)",
        params![user_id, reference],
        |row| row.get(0),
    )?;
    if !already {
        let payload = CancelOrderPayload {
            order_id: None,
            client_order_id: Some(client_order_id),
        };
        enqueue(
            tx,
            user_id,
            MutationKind::CancelOrder,
            Some(serde_json::to_string(&payload)?),
            0,
            Some(reference),
            now,
        )?;
    }
    Ok(())
}

/// Checks a profile change the way the server will.
pub(crate) fn validate_profile(patch: &ProfilePatch) -> Result<(), Error> {
    if patch.display_name.is_none() && patch.timezone.is_none() && patch.daily_step_goal.is_none() {
        return Err(Error::invalid("profile", "nothing to change"));
    }
    if let Some(name) = &patch.display_name {
        let length = name.trim().chars().count();
        if length == 0 || length > limits::DISPLAY_NAME_MAX_CHARS || name.contains('\0') {
            return Err(Error::invalid(
                "display_name",
                format!(
                    "the display name is 1 to {} characters",
                    limits::DISPLAY_NAME_MAX_CHARS
                ),
            ));
        }
    }
    if let Some(zone) = &patch.timezone
        && zone.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(Error::invalid(
            "timezone",
            "not a time zone of the IANA database (e.g. Europe/Paris)",
        ));
    }
    if let Some(goal) = patch.daily_step_goal
        && !(limits::DAILY_STEP_GOAL_MIN..=limits::DAILY_STEP_GOAL_MAX).contains(&goal)
    {
        {
            return Err(Error::invalid(
                "daily_step_goal",
                format!(
                    "the goal is {} to {} steps",
                    limits::DAILY_STEP_GOAL_MIN,
                    limits::DAILY_STEP_GOAL_MAX
                ),
            ));
        }
    }
    Ok(())
}

/// Queues a profile change.
pub(crate) fn update_profile(
    tx: &Transaction<'_>,
    user_id: &str,
    now: DateTime<Utc>,
    patch: &ProfilePatch,
) -> Result<(), Error> {
    validate_profile(patch)?;
    let patch = ProfilePatch {
        display_name: patch.display_name.as_ref().map(|n| n.trim().to_owned()),
        ..patch.clone()
    };
    enqueue(
        tx,
        user_id,
        MutationKind::UpdateProfile,
        Some(serde_json::to_string(&patch)?),
        0,
        None,
        now,
    )?;
    Ok(())
}

/// How many of the user's mutations the server has not settled yet.
pub(crate) fn pending_count(conn: &Connection, user_id: &str) -> Result<u64, Error> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM outbox WHERE user_id = ?1 AND state IN ('queued', 'sent')",
        )?
        .query_row([user_id], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Coins held by orders the server has not confirmed in a pulled wallet yet.
pub(crate) fn pending_holds(conn: &Connection, user_id: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(sum(hold_coins), 0) FROM outbox
             WHERE user_id = ?1 AND kind = 'place_order'",
        )?
        .query_row([user_id], |row| row.get(0))?)
}

/// RFC 3339 text in UTC with millisecond precision, as the store keeps timestamps.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    const USER: &str = "00000000-0000-7000-8000-000000000001";

    fn store() -> Store {
        Store::open_in_memory().unwrap()
    }

    fn report(date: &str, source: &str, steps: i64) -> StepReport {
        StepReport {
            date: date.parse().unwrap(),
            source: source.into(),
            steps,
            recorded_at: "2025-03-01T20:00:00Z".parse().unwrap(),
        }
    }

    fn record(store: &Store, reports: &[StepReport]) -> usize {
        store
            .write(|tx| record_steps(tx, USER, Utc::now(), reports))
            .unwrap()
    }

    /// (mutation, state, date, source, steps) of every queued step record, in queue order.
    fn queue(store: &Store) -> Vec<(String, String, i64)> {
        store
            .read(|conn| -> Result<_, Error> {
                let mut stmt = conn.prepare(
                    "SELECT o.state, coalesce(s.local_date || '/' || s.source, ''),
                            coalesce(s.steps, -1)
                     FROM outbox o LEFT JOIN outbox_steps s USING (mutation_id)
                     ORDER BY o.sequence, s.local_date, s.source",
                )?;
                let rows = stmt
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .unwrap()
    }

    #[test]
    fn unsent_reports_of_one_day_and_source_coalesce_into_the_latest_total() {
        let store = store();
        assert_eq!(
            record(&store, &[report("2025-03-01", "healthkit", 1000)]),
            1
        );
        assert_eq!(
            record(&store, &[report("2025-03-01", "healthkit", 2500)]),
            1
        );
        assert_eq!(record(&store, &[report("2025-03-01", "watch", 300)]), 1);

        assert_eq!(
            queue(&store),
            [
                ("queued".into(), "2025-03-01/healthkit".into(), 2500),
                ("queued".into(), "2025-03-01/watch".into(), 300),
            ]
        );
        assert_eq!(store.read(|c| pending_count(c, USER)).unwrap(), 1);
    }

    #[test]
    fn a_lower_or_equal_total_changes_nothing_and_queues_nothing() {
        let store = store();
        record(&store, &[report("2025-03-01", "healthkit", 5000)]);
        let before = queue(&store);

        assert_eq!(
            record(&store, &[report("2025-03-01", "healthkit", 5000)]),
            0
        );
        assert_eq!(record(&store, &[report("2025-03-01", "healthkit", 10)]), 0);

        assert_eq!(queue(&store), before);
    }

    #[test]
    fn a_sent_mutation_is_never_edited_a_newer_total_gets_a_new_one() {
        let store = store();
        record(&store, &[report("2025-03-01", "healthkit", 1000)]);
        let batch = store
            .write(|tx| crate::engine::take_push_batch(tx, USER, Uuid::now_v7(), 500))
            .unwrap()
            .unwrap();
        let sent_payload = serde_json::to_value(&batch.request.mutations[0].payload).unwrap();

        record(&store, &[report("2025-03-01", "healthkit", 4000)]);

        let rows: Vec<(String, Option<String>)> = store
            .read(|conn| -> Result<_, Error> {
                let mut stmt =
                    conn.prepare("SELECT state, payload FROM outbox ORDER BY sequence")?;
                let rows = stmt
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].0, "sent");
        let frozen: serde_json::Value =
            serde_json::from_str(rows[0].1.as_deref().unwrap()).unwrap();
        assert_eq!(frozen, sent_payload);
        assert_eq!(frozen["records"][0]["steps"], 1000);
        assert_eq!(rows[1].0, "queued");
        assert_eq!(
            queue(&store).last().unwrap(),
            &("queued".into(), "2025-03-01/healthkit".into(), 4000)
        );
    }

    #[test]
    fn a_mutation_holds_at_most_a_push_worth_of_records() {
        let store = store();
        let reports: Vec<StepReport> = (0..(MAX_RECORDS_PER_REQUEST + 5))
            .map(|i| report("2025-03-01", &format!("source-{i}"), 100))
            .collect();
        record(&store, &reports);
        let per_mutation: Vec<i64> = store
            .read(|conn| -> Result<_, Error> {
                let mut stmt = conn.prepare(
                    "SELECT count(*) FROM outbox_steps GROUP BY mutation_id ORDER BY 1 DESC",
                )?;
                let rows = stmt
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .unwrap();
        assert_eq!(per_mutation, [MAX_RECORDS_PER_REQUEST as i64, 5]);
    }

    #[test]
    fn steps_recorded_after_an_order_go_behind_it_in_the_queue() {
        let store = store();
        store
            .write(|tx| -> Result<(), Error> {
                tx.execute(
                    "INSERT INTO products (id, name, category, coin_price, is_active, body)
                     VALUES ('00000000-0000-7000-8000-0000000000aa', 'Bottle', 'gear', 50, 1, '{}')",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        record(&store, &[report("2025-03-01", "healthkit", 1000)]);
        let line = OrderLine {
            product_id: "00000000-0000-7000-8000-0000000000aa".parse().unwrap(),
            quantity: 2,
        };
        let order = store
            .write(|tx| place_order(tx, USER, Utc::now(), &[line], &address()))
            .unwrap();
        assert_eq!(order.total_coins, 100);
        record(&store, &[report("2025-03-02", "healthkit", 800)]);
        // The 1 March total still coalesces into the first (unsent) mutation.
        record(&store, &[report("2025-03-01", "healthkit", 1200)]);

        let kinds: Vec<(String, i64)> = store
            .read(|conn| -> Result<_, Error> {
                let mut stmt = conn.prepare(
                    "SELECT kind, (SELECT count(*) FROM outbox_steps s
                                   WHERE s.mutation_id = o.mutation_id)
                     FROM outbox o ORDER BY sequence",
                )?;
                let rows = stmt
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .unwrap();
        assert_eq!(
            kinds,
            [
                ("record_steps".into(), 1),
                ("place_order".into(), 0),
                ("record_steps".into(), 1)
            ]
        );
        assert_eq!(store.read(|c| pending_holds(c, USER)).unwrap(), 100);
    }

    fn address() -> ShippingAddress {
        ShippingAddress {
            name: " Ann Walker ".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            region: None,
            postal_code: "12345".into(),
            country: "US".into(),
            phone: None,
        }
    }

    #[test]
    fn bad_input_is_refused_with_the_field_named_and_writes_nothing() {
        let store = store();
        let cases = [
            (report("2025-03-01", "healthkit", -1), "steps"),
            (report("2025-03-01", "", 10), "source"),
            (report("2025-03-01", "a\0b", 10), "source"),
            (report("2025-03-01", &"x".repeat(65), 10), "source"),
            (report("1900-01-01", "healthkit", 10), "date"),
        ];
        for (bad, field) in cases {
            let err = store
                .write(|tx| {
                    record_steps(
                        tx,
                        USER,
                        Utc::now(),
                        &[report("2025-03-02", "ok", 5), bad.clone()],
                    )
                })
                .unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
                "{bad:?}: {err}"
            );
        }
        assert!(queue(&store).is_empty());

        let unknown = OrderLine {
            product_id: Uuid::now_v7(),
            quantity: 1,
        };
        let err = store
            .write(|tx| place_order(tx, USER, Utc::now(), &[unknown], &address()))
            .unwrap_err();
        assert!(matches!(&err, Error::InvalidInput { field, .. } if field == "product_id"));
        let err = store
            .write(|tx| {
                update_profile(
                    tx,
                    USER,
                    Utc::now(),
                    &ProfilePatch {
                        timezone: Some("Mars/Olympus".into()),
                        ..ProfilePatch::default()
                    },
                )
            })
            .unwrap_err();
        assert!(matches!(&err, Error::InvalidInput { field, .. } if field == "timezone"));
        assert!(queue(&store).is_empty());
    }

    #[test]
    fn cancelling_an_order_that_never_left_the_device_drops_it() {
        let store = store();
        store
            .write(|tx| -> Result<(), Error> {
                tx.execute(
                    "INSERT INTO products (id, name, category, coin_price, is_active, body)
                     VALUES ('00000000-0000-7000-8000-0000000000aa', 'Bottle', 'gear', 50, 1, '{}')",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        let line = OrderLine {
            product_id: "00000000-0000-7000-8000-0000000000aa".parse().unwrap(),
            quantity: 1,
        };
        let order = store
            .write(|tx| place_order(tx, USER, Utc::now(), &[line], &address()))
            .unwrap();
        store
            .write(|tx| cancel_order(tx, USER, Utc::now(), order.client_order_id))
            .unwrap();
        assert_eq!(store.read(|c| pending_count(c, USER)).unwrap(), 0);
        assert_eq!(store.read(|c| pending_holds(c, USER)).unwrap(), 0);
    }
}
