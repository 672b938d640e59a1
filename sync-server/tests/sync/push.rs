//! Push: every mutation takes effect exactly once, under replays, retries and concurrency.

use super::*;

#[tokio::test]
async fn replaying_a_push_three_times_applies_it_once() {
    let (server, api) = start().await;
    let ann = api.account("ann@example.com").await;
    grant(server.db().pool(), ann.id, 500).await;
    let mug = add_product(&server, "Mug", 120, 10).await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let batch = vec![
        record_steps(&[walked(day, PHONE, 8)]),
        place_order(Uuid::new_v4(), &[(mug, 2)]),
        update_profile(json!({"display_name": "Ann Runner", "daily_step_goal": 9000})),
    ];
    let first = api.push(&ann, device, &batch).await;
    assert_eq!(verdicts(&first), vec![(Applied, None); 3]);
    let steps: RecordStepsResponse = effect(&first.results[0]);
    assert_eq!(steps.results[0].status, RecordOutcome::Accepted);
    assert_eq!(steps.results[0].coins_awarded, 80);
    let order: Order = effect(&first.results[1]);
    assert_eq!((order.status.as_str(), order.total_coins), ("pending", 240));
    let profile: UserProfile = effect(&first.results[2]);
    assert_eq!(profile.display_name, "Ann Runner");
    let wallet = api.wallet(&ann).await;
    let rows = count(
        &server,
        "SELECT count(*) FROM coin_transactions WHERE user_id = $1",
        ann.id,
    )
    .await;

    for _ in 0..2 {
        let again = api.push(&ann, device, &batch).await;
        assert_all_duplicates_of(&first, &again);
    }

    assert_eq!(api.wallet(&ann).await, wallet, "replays move no coins");
    assert_eq!(wallet.frozen_coins, 240, "one order's hold");
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM coin_transactions WHERE user_id = $1",
            ann.id
        )
        .await,
        rows
    );
    assert_eq!(db_orders(&server, ann.id).await.len(), 1, "one order");
    assert_eq!(
        count(
            &server,
            "SELECT stock::bigint FROM reward_products WHERE id = $1",
            mug
        )
        .await,
        8,
        "stock taken once"
    );
    assert_eq!(
        db_step_rewards(&server, ann.id).await,
        BTreeMap::from([(day.to_string(), 80)])
    );
    let me = api.me(&ann).await;
    assert_eq!(
        (me.display_name.as_str(), me.daily_step_goal),
        ("Ann Runner", 9000)
    );
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn step_totals_of_one_day_pushed_in_reverse_order_reach_the_same_state() {
    let (server, api) = start().await;
    let day = days_ago(2);
    let totals: Vec<StepReport> = (2..=9).step_by(2).map(|k| walked(day, PHONE, k)).collect();

    // One device syncs the day's readings as they were taken, another (for a second user
    // with the same walk) syncs them newest first, each reading in its own push.
    let forward = api.account("fwd@example.com").await;
    let backward = api.account("bwd@example.com").await;
    for reading in &totals {
        let answer = api
            .push(
                &forward,
                Uuid::new_v4(),
                &[record_steps(std::slice::from_ref(reading))],
            )
            .await;
        assert_eq!(statuses(&answer), vec![Applied]);
    }
    let device = Uuid::new_v4();
    for reading in totals.iter().rev() {
        let answer = api
            .push(
                &backward,
                device,
                &[record_steps(std::slice::from_ref(reading))],
            )
            .await;
        assert_eq!(statuses(&answer), vec![Applied]);
    }

    let (a, b) = (
        Replica::snapshot(&api, &forward).await,
        Replica::snapshot(&api, &backward).await,
    );
    let expected = BTreeMap::from([((day, PHONE.to_owned()), (8000, 8000, "accepted".to_owned()))]);
    assert_eq!(a.step_state(), expected);
    assert_eq!(b.step_state(), expected);
    assert_eq!(db_step_records(&server, backward.id).await, expected);
    assert_eq!(
        db_step_rewards(&server, forward.id).await,
        db_step_rewards(&server, backward.id).await
    );
    assert_eq!(
        db_step_rewards(&server, backward.id).await[&day.to_string()],
        day_coins(8000)
    );
    assert_eq!(a.wallet, b.wallet, "the same coins either way");
    assert_eq!(
        a.unlocks.keys().collect::<Vec<_>>(),
        b.unlocks.keys().collect::<Vec<_>>()
    );
    assert_eq!(api.wallet(&backward).await, b.wallet.unwrap());
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_rejected_mutation_never_blocks_the_rest_of_its_push() {
    let (server, api) = start().await;
    let bea = api.account("bea@example.com").await;
    let bike = add_product(&server, "Bike", 100_000, 3).await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let batch = vec![
        record_steps(&[walked(day, PHONE, 8)]),
        place_order(Uuid::new_v4(), &[(bike, 1)]),
        update_profile(json!({"display_name": "Bea Strider"})),
        cancel_by_client_id(Uuid::new_v4()),
    ];
    let first = api.push(&bea, device, &batch).await;
    assert_eq!(
        verdicts(&first),
        vec![
            (Applied, None),
            (Rejected, Some("insufficient_coins")),
            (Applied, None),
            (Rejected, Some("not_found")),
        ]
    );
    for rejected in [&first.results[1], &first.results[3]] {
        assert_eq!(rejected.outcome.status, Rejected);
        assert!(rejected.outcome.message.is_some(), "{rejected:?}");
    }

    // Exactly the applied mutations show: the steps' coins, the new name, no order, no hold.
    let wallet = api.wallet(&bea).await;
    assert_eq!(wallet.frozen_coins, 0);
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(wallet.available_coins, wallet.lifetime_earned);
    assert!(wallet.available_coins >= 80, "{wallet:?}");
    assert_eq!(
        db_step_rewards(&server, bea.id).await,
        BTreeMap::from([(day.to_string(), 80)])
    );
    assert_eq!(api.me(&bea).await.display_name, "Bea Strider");
    assert!(db_orders(&server, bea.id).await.is_empty());
    assert_eq!(
        count(
            &server,
            "SELECT stock::bigint FROM reward_products WHERE id = $1",
            bike
        )
        .await,
        3
    );

    // The device retries the whole push: every answer is the stored one, nothing moves,
    // and the order that could not be afforded stays rejected.
    let again = api.push(&bea, device, &batch).await;
    assert_all_duplicates_of(&first, &again);
    assert_eq!(api.wallet(&bea).await, wallet);
    assert!(db_orders(&server, bea.id).await.is_empty());
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn reusing_a_mutation_id_for_a_different_body_is_a_conflict() {
    let (server, api) = start().await;
    let cal = api.account("cal@example.com").await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let original = record_steps(&[walked(day, PHONE, 5)]);
    let first = api
        .push(&cal, device, std::slice::from_ref(&original))
        .await;
    assert_eq!(statuses(&first), vec![Applied]);

    let mut other_payload = original.clone();
    other_payload.payload = json!({"records": [walked(day, PHONE, 9)]});
    let mut other_kind = original.clone();
    other_kind.kind = "update_profile".into();
    other_kind.payload = json!({"display_name": "Cal"});
    let answer = api
        .push(&cal, device, &[other_payload.clone(), other_kind])
        .await;
    assert_eq!(
        verdicts(&answer),
        vec![
            (Rejected, Some("mutation_conflict")),
            (Rejected, Some("mutation_conflict")),
        ]
    );
    assert_eq!(
        db_step_records(&server, cal.id).await[&(day, PHONE.to_owned())].0,
        5000,
        "the conflicting body was not applied"
    );
    assert_eq!(api.me(&cal).await.display_name, "Walker");

    // The original is still known for what it was.
    let replay = api.push(&cal, device, &[original]).await;
    assert_all_duplicates_of(&first, &replay);
    // A conflicting copy in the same push as a fresh id is refused too.
    let fresh = update_profile(json!({"display_name": "Cal One"}));
    let mut clash = fresh.clone();
    clash.payload = json!({"display_name": "Cal Two"});
    let answer = api.push(&cal, device, &[fresh, clash]).await;
    assert_eq!(
        verdicts(&answer),
        vec![(Applied, None), (Rejected, Some("mutation_conflict"))]
    );
    assert_eq!(api.me(&cal).await.display_name, "Cal One");
    assert_eq!(db_step_rewards(&server, cal.id).await[&day.to_string()], 50);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_repeated_id_later_in_the_same_push_is_a_duplicate_of_its_first_copy() {
    let (server, api) = start().await;
    let dee = api.account("dee@example.com").await;
    grant(server.db().pool(), dee.id, 300).await;
    let cap = add_product(&server, "Cap", 100, 5).await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let steps = record_steps(&[walked(day, PHONE, 6)]);
    let order = place_order(Uuid::new_v4(), &[(cap, 1)]);
    let answer = api
        .push(
            &dee,
            device,
            &[steps.clone(), order.clone(), steps.clone(), order.clone()],
        )
        .await;
    assert_eq!(
        statuses(&answer),
        vec![Applied, Applied, Duplicate, Duplicate]
    );
    assert_eq!(answer.results[2].outcome, answer.results[0].outcome);
    assert_eq!(answer.results[3].outcome, answer.results[1].outcome);
    assert_eq!(db_orders(&server, dee.id).await.len(), 1);
    assert_eq!(api.wallet(&dee).await.frozen_coins, 100);
    assert_eq!(db_step_rewards(&server, dee.id).await[&day.to_string()], 60);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn unknown_kinds_and_malformed_payloads_reject_only_their_mutation() {
    let (server, api) = start().await;
    let eli = api.account("eli@example.com").await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let batch = vec![
        mutation("teleport", json!({"to": "mars"})),
        mutation("record_steps", json!({"records": "many"})),
        mutation("record_steps", json!({"records": []})),
        mutation(
            "cancel_order",
            json!({"order_id": Uuid::new_v4(), "client_order_id": Uuid::new_v4()}),
        ),
        mutation("cancel_order", json!({})),
        mutation("place_order", json!({"items": []})),
        update_profile(json!({"daily_step_goal": -5})),
        record_steps(&[walked(day, PHONE, 3)]),
    ];
    let answer = api.push(&eli, device, &batch).await;
    assert_eq!(
        verdicts(&answer),
        vec![
            (Rejected, Some("unknown_kind")),
            (Rejected, Some("invalid_payload")),
            (Rejected, Some("validation_failed")),
            (Rejected, Some("validation_failed")),
            (Rejected, Some("validation_failed")),
            (Rejected, Some("invalid_payload")),
            (Rejected, Some("validation_failed")),
            (Applied, None),
        ]
    );
    assert_eq!(api.me(&eli).await.daily_step_goal, 10_000);
    assert_eq!(db_step_rewards(&server, eli.id).await[&day.to_string()], 30);

    // Sent again, every refusal is answered the same way and nothing applies twice. (An
    // unknown kind has nothing to remember, so it may be refused afresh instead.)
    let again = api.push(&eli, device, &batch).await;
    assert_eq!(statuses(&again)[1..], vec![Duplicate; batch.len() - 1]);
    assert_eq!(outcomes(&again)[1..], outcomes(&answer)[1..]);
    assert!(matches!(again.results[0].status, Duplicate | Rejected));
    assert_eq!(again.results[0].outcome, answer.results[0].outcome);
    assert_eq!(db_step_rewards(&server, eli.id).await[&day.to_string()], 30);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn an_order_after_steps_in_the_same_push_spends_the_coins_they_earned() {
    let (server, api) = start().await;
    let fay = api.account("fay@example.com").await;
    // 9,000 steps pay 90 coins, and the 1k and 5k achievements 10 and 20 more.
    let shoes = add_product(&server, "Shoes", 115, 4).await;
    let device = Uuid::new_v4();
    let client_order_id = Uuid::new_v4();
    let (d1, d2) = (days_ago(1), days_ago(2));

    let batch = vec![
        record_steps(&[walked(d2, PHONE, 4)]),
        record_steps(&[walked(d1, PHONE, 5)]),
        place_order(client_order_id, &[(shoes, 1)]),
    ];
    let answer = api.push(&fay, device, &batch).await;
    assert_eq!(verdicts(&answer), vec![(Applied, None); 3]);
    let earned: i64 = answer.results[..2]
        .iter()
        .map(|r| effect::<RecordStepsResponse>(r).coins_awarded)
        .sum();
    let order: Order = effect(&answer.results[2]);
    assert_eq!((order.status.as_str(), order.total_coins), ("pending", 115));
    assert_eq!(order.client_order_id, client_order_id);
    let wallet = api.wallet(&fay).await;
    assert_eq!((wallet.available_coins, wallet.frozen_coins), (5, 115));

    // The order placed offline is cancelled by the id the device knows; cancelling it again
    // (a new mutation) is an invalid transition, and by a server id nobody has is not found.
    let cancel = cancel_by_client_id(client_order_id);
    let answer = api
        .push(
            &fay,
            device,
            &[
                cancel.clone(),
                cancel_by_order_id(order.id),
                cancel_by_order_id(Uuid::new_v4()),
            ],
        )
        .await;
    assert_eq!(
        verdicts(&answer),
        vec![
            (Applied, None),
            (Rejected, Some("invalid_transition")),
            (Rejected, Some("not_found")),
        ]
    );
    let cancelled: Order = effect(&answer.results[0]);
    assert_eq!(
        (cancelled.id, cancelled.status.as_str()),
        (order.id, "cancelled")
    );
    let wallet = api.wallet(&fay).await;
    assert_eq!((wallet.available_coins, wallet.frozen_coins), (120, 0));
    assert_eq!(
        count(
            &server,
            "SELECT stock::bigint FROM reward_products WHERE id = $1",
            shoes
        )
        .await,
        4
    );
    let again = api.push(&fay, device, &[cancel]).await;
    assert_eq!(statuses(&again), vec![Duplicate]);
    assert_eq!(api.wallet(&fay).await, wallet);
    assert_ledger_ok(&server).await;
    // What the step mutations say they paid is what the wallet received (9,000 steps pay 90,
    // the 1k and 5k achievements 10 and 20).
    assert_eq!(
        earned,
        40 + 50 + 10 + 20,
        "coins_awarded of the step mutations, achievement bonuses included"
    );
}

#[tokio::test]
async fn a_push_carries_1_to_500_mutations() {
    let (server, api) = start().await;
    let gil = api.account("gil@example.com").await;
    let device = Uuid::new_v4();

    let empty = json!({"device_id": device, "mutations": []});
    let (status, body) = api.push_raw(&gil, &empty, Some("1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let too_many: Vec<Mutation> = (0..501)
        .map(|i| update_profile(json!({"display_name": format!("Gil {i}")})))
        .collect();
    let body = json!({"device_id": device, "mutations": too_many});
    let (status, answer) = api.push_raw(&gil, &body, Some("1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(api.me(&gil).await.display_name, "Walker", "nothing applied");

    let most = &too_many[..500];
    let answer = api.push(&gil, device, most).await;
    assert_eq!(statuses(&answer), vec![Applied; 500]);
    assert_eq!(
        api.me(&gil).await.display_name,
        "Gil 499",
        "applied in order"
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM sync_mutations WHERE user_id = $1",
            gil.id
        )
        .await,
        500
    );
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_of_one_user_pushing_at_once_apply_every_effect_once() {
    let (server, api) = start().await;
    api.account("hal@example.com").await;
    let phone_session = api.signed_in("hal@example.com").await;
    let watch_session = api.signed_in("hal@example.com").await;
    let user = phone_session.id;
    grant(server.db().pool(), user, 1000).await;
    let mug = add_product(&server, "Mug", 100, 10).await;
    let (phone, watch) = (Uuid::new_v4(), Uuid::new_v4());
    let (d1, d2, d3) = (days_ago(1), days_ago(2), days_ago(3));

    // Both devices saw day 2 (different totals); each has a day of its own and an order.
    let phone_batch = vec![
        record_steps(&[walked(d3, PHONE, 4)]),
        record_steps(&[walked(d2, PHONE, 6)]),
        place_order(Uuid::new_v4(), &[(mug, 1)]),
        record_steps(&[walked(d2, PHONE, 7)]),
    ];
    let watch_batch = vec![
        record_steps(&[walked(d2, PHONE, 9)]),
        place_order(Uuid::new_v4(), &[(mug, 2)]),
        record_steps(&[walked(d1, PHONE, 3), walked(d2, PHONE, 5)]),
    ];

    // Each device sends its push twice at once (a retry racing the first attempt).
    let mut tasks = JoinSet::new();
    for (session, device, batch) in [
        (&phone_session, phone, &phone_batch),
        (&watch_session, watch, &watch_batch),
    ] {
        for _ in 0..2 {
            let (api, session, batch) = (api.clone(), session.clone(), batch.clone());
            tasks.spawn(async move {
                let answer = api.push(&session, device, &batch).await;
                (device, answer)
            });
        }
    }
    let answers = tasks.join_all().await;

    for (device, batch) in [(phone, &phone_batch), (watch, &watch_batch)] {
        let mine: Vec<&PushResponse> = answers
            .iter()
            .filter(|(d, _)| *d == device)
            .map(|(_, a)| a)
            .collect();
        for (index, mutation) in batch.iter().enumerate() {
            let results: Vec<&MutationResult> = mine.iter().map(|a| &a.results[index]).collect();
            let applied = results.iter().filter(|r| r.status == Applied).count();
            let duplicate = results.iter().filter(|r| r.status == Duplicate).count();
            assert_eq!((applied, duplicate), (1, 1), "{mutation:?}: {results:?}");
            assert_eq!(results[0].outcome, results[1].outcome);
        }
    }

    let orders = db_orders(&server, user).await;
    assert_eq!(orders.len(), 2, "one order per device");
    let wallet = db_wallet(&server, user).await;
    assert_eq!(wallet.frozen_coins, 300);
    assert_eq!(
        db_step_records(&server, user)
            .await
            .into_iter()
            .map(|((day, _), (steps, ..))| (day, steps))
            .collect::<BTreeMap<_, _>>(),
        BTreeMap::from([(d3, 4000), (d2, 9000), (d1, 3000)]),
        "each day holds its largest total"
    );
    assert_eq!(
        db_step_rewards(&server, user).await,
        BTreeMap::from([
            (d3.to_string(), day_coins(4000)),
            (d2.to_string(), day_coins(9000)),
            (d1.to_string(), day_coins(3000)),
        ]),
        "every day paid once for its maximum"
    );
    let bonuses = count(
        &server,
        "SELECT count(*) FROM coin_transactions WHERE user_id = $1 AND kind = 'achievement_bonus'",
        user,
    )
    .await;
    assert_eq!(bonuses, 2, "1k and 5k unlocked once");
    assert_eq!(
        wallet.available_coins,
        1000 - 300 + 40 + 90 + 30 + 10 + 20,
        "{wallet:?}"
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(DISTINCT device_id) FROM sync_mutations WHERE user_id = $1",
            user
        )
        .await,
        2
    );
    // No foreign key checks the stored device (ADR 0018): the push's own check must have
    // left every outcome naming a device of this user.
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM sync_mutations m
             WHERE m.user_id = $1 AND NOT EXISTS
                 (SELECT 1 FROM devices d WHERE d.id = m.device_id AND d.user_id = m.user_id)",
            user
        )
        .await,
        0,
        "every stored outcome names one of the user's devices"
    );
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_device_id_belongs_to_one_account() {
    let (_server, api) = start().await;
    let ivy = api.account("ivy@example.com").await;
    let jon = api.account("jon@example.com").await;
    let device = Uuid::new_v4();

    let registration = json!({
        "device_id": device, "platform": "ios", "os_version": "17.4",
        "app_version": "1.0.0", "model": "iPhone15,2",
    });
    let (status, body) = api.register_device(&ivy, registration.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Registering again (an app update) is fine for the owner.
    let (status, body) = api
        .register_device(
            &ivy,
            json!({"device_id": device, "platform": "ios", "app_version": "1.1.0"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (status, body) = api.register_device(&jon, registration).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "device_taken");
    let push =
        json!({"device_id": device, "mutations": [update_profile(json!({"display_name": "Jon"}))]});
    let (status, body) = api.push_raw(&jon, &push, Some("1")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "device_taken");
    assert_eq!(api.me(&jon).await.display_name, "Walker");

    let (status, body) = api
        .register_device(
            &jon,
            json!({"device_id": Uuid::new_v4(), "platform": "windows"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The owner's pushes from it work.
    let answer = api
        .push(
            &ivy,
            device,
            &[update_profile(json!({"display_name": "Ivy"}))],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied]);
}
