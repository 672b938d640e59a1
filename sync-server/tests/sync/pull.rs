//! Pull: a device's cache, filled by pulls, misses nothing and sees nothing twice.

use super::*;

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_make_a_puller_miss_or_repeat_a_change() {
    let (server, api) = start().await;
    api.account("kim@example.com").await;
    let kim = api.signed_in("kim@example.com").await;
    let pool = server.db().pool().clone();
    grant(&pool, kim.id, 2000).await;
    let pin = add_product(&server, "Pin", 10, 1000).await;
    let done = Arc::new(AtomicBool::new(false));

    let mut pullers = JoinSet::new();
    for limit in [3, 7, 500] {
        let (api, kim, done) = (api.clone(), kim.clone(), done.clone());
        pullers.spawn(async move {
            let mut replica = Replica::default();
            let mut pulls_during_writes = 0;
            for _ in 0..MAX_PAGES {
                // Only a pull that started after every write finished may end the loop.
                let writers_finished = done.load(Ordering::SeqCst);
                let has_more = replica.pull_once(&api, &kim, Some(limit)).await;
                if !writers_finished {
                    pulls_during_writes += 1;
                }
                if writers_finished && !has_more {
                    return (replica, pulls_during_writes);
                }
                if !has_more {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            panic!("the puller never caught up");
        });
    }

    let mut writers = JoinSet::new();
    // Steps from two devices: rising totals over four days, one push per reading.
    for (device, source) in [(Uuid::new_v4(), PHONE), (Uuid::new_v4(), WATCH)] {
        let (api, kim) = (api.clone(), kim.clone());
        writers.spawn(async move {
            for thousands in 1..=8 {
                let readings: Vec<StepReport> = (1..=4)
                    .map(|n| walked(days_ago(n), source, thousands))
                    .collect();
                let answer = api.push(&kim, device, &[record_steps(&readings)]).await;
                assert_eq!(statuses(&answer), vec![Applied]);
            }
        });
    }
    // Orders placed and some cancelled, from a third device.
    {
        let (api, kim) = (api.clone(), kim.clone());
        writers.spawn(async move {
            let device = Uuid::new_v4();
            for i in 0..8 {
                let client_order_id = Uuid::new_v4();
                let answer = api
                    .push(&kim, device, &[place_order(client_order_id, &[(pin, 1)])])
                    .await;
                assert_eq!(verdicts(&answer), vec![(Applied, None)]);
                if i % 2 == 0 {
                    let answer = api
                        .push(&kim, device, &[cancel_by_client_id(client_order_id)])
                        .await;
                    assert_eq!(verdicts(&answer), vec![(Applied, None)]);
                }
            }
        });
    }
    // An admin adjusting the wallet, straight through the ledger.
    {
        let pool = pool.clone();
        writers.spawn(async move {
            for _ in 0..15 {
                grant(&pool, kim.id, 7).await;
            }
        });
    }
    // Profile edits.
    {
        let (api, kim) = (api.clone(), kim.clone());
        writers.spawn(async move {
            let device = Uuid::new_v4();
            for i in 0..5 {
                let answer = api
                    .push(
                        &kim,
                        device,
                        &[update_profile(json!({"display_name": format!("Kim {i}")}))],
                    )
                    .await;
                assert_eq!(statuses(&answer), vec![Applied]);
            }
        });
    }
    writers.join_all().await;
    done.store(true, Ordering::SeqCst);
    let replicas = pullers.join_all().await;

    let ledger_ids = db_ledger_ids(&server, kim.id).await;
    let wallet = db_wallet(&server, kim.id).await;
    let steps = db_step_records(&server, kim.id).await;
    let orders = db_orders(&server, kim.id).await;
    assert_eq!(orders.len(), 8);
    assert_eq!(steps.len(), 8, "four days from two sources");
    for (replica, pulls_during_writes) in &replicas {
        assert!(*pulls_during_writes > 1, "the puller raced the writers");
        replica.assert_nothing_repeated();
        assert_eq!(
            replica.ledger.keys().copied().collect::<BTreeSet<_>>(),
            ledger_ids,
            "a puller saw exactly the ledger the database holds"
        );
        assert_eq!(replica.wallet.as_ref(), Some(&wallet));
        assert_eq!(replica.step_state(), steps);
        assert_eq!(replica.order_states(), orders);
        assert_eq!(
            replica.profile.as_ref().map(|p| p.display_name.as_str()),
            Some("Kim 4")
        );
    }
    assert_ledger_ok(&server).await;
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn pull_pages_whole_versions_until_has_more_is_false() {
    let (server, api) = start().await;
    let lea = api.account("lea@example.com").await;
    let device = Uuid::new_v4();
    // Many versions: a push per day and per rising total, and admin adjustments between.
    for n in 1..=5 {
        for thousands in [2, 4] {
            let answer = api
                .push(
                    &lea,
                    device,
                    &[record_steps(&[walked(days_ago(n), PHONE, thousands)])],
                )
                .await;
            assert_eq!(statuses(&answer), vec![Applied]);
        }
        grant(server.db().pool(), lea.id, 3).await;
    }

    for limit in [1, 4] {
        let mut replica = Replica::default();
        let mut step_versions_by_page: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
        let mut page_index = 0;
        loop {
            let page = api.pull(&lea, replica.cursor.as_deref(), Some(limit)).await;
            for record in &page.changes.step_records {
                step_versions_by_page
                    .entry(record.version)
                    .or_default()
                    .insert(page_index);
            }
            replica.cursor = Some(page.next_cursor.clone());
            replica.apply(page.changes);
            page_index += 1;
            assert!(page_index < MAX_PAGES, "paging never ends");
            if !page.has_more {
                break;
            }
        }
        assert!(page_index > 5, "limit {limit}: only {page_index} pages");
        replica.assert_nothing_repeated();
        for (version, pages) in &step_versions_by_page {
            assert_eq!(
                pages.len(),
                1,
                "version {version} split across pages {pages:?}"
            );
        }
        assert_eq!(
            replica.ledger.keys().copied().collect::<BTreeSet<_>>(),
            db_ledger_ids(&server, lea.id).await
        );
        assert_eq!(replica.step_state(), db_step_records(&server, lea.id).await);
        assert_eq!(replica.wallet, Some(db_wallet(&server, lea.id).await));
        assert!(replica.profile.is_some());
        assert_eq!(replica.achievements.len(), 7, "the seeded achievements");
        assert!(!replica.products.is_empty());

        // Resuming from the last cursor: nothing new, and still no more.
        let tail = api.pull(&lea, replica.cursor.as_deref(), Some(limit)).await;
        assert!(!tail.has_more);
        assert_eq!(tail.changes, Changes::default(), "nothing after the end");
    }

    // With limit 1 every page carries at most one version of the user's rows.
    let mut cursor: Option<String> = None;
    loop {
        let page = api.pull(&lea, cursor.as_deref(), Some(1)).await;
        let versions: BTreeSet<i64> = page
            .changes
            .step_records
            .iter()
            .map(|r| r.version)
            .collect();
        assert!(versions.len() <= 1, "{versions:?}");
        cursor = Some(page.next_cursor);
        if !page.has_more {
            break;
        }
    }
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn a_snapshot_equals_the_sum_of_incremental_pulls() {
    let (server, api) = start().await;
    let max = api.account("max@example.com").await;
    let pool = server.db().pool().clone();
    let device = Uuid::new_v4();
    let (d1, d2) = (days_ago(1), days_ago(2));
    let mut device_cache = Replica::default();
    device_cache.sync(&api, &max, Some(5)).await;

    grant(&pool, max.id, 400).await;
    device_cache.sync(&api, &max, Some(5)).await;
    let answer = api
        .push(&max, device, &[record_steps(&[walked(d2, PHONE, 3)])])
        .await;
    assert_eq!(statuses(&answer), vec![Applied]);
    device_cache.sync(&api, &max, Some(5)).await;
    let mug = add_product(&server, "Mug", 50, 10).await;
    device_cache.sync(&api, &max, Some(5)).await;
    let keep = Uuid::new_v4();
    let drop = Uuid::new_v4();
    let answer = api
        .push(
            &max,
            device,
            &[
                place_order(keep, &[(mug, 1)]),
                place_order(drop, &[(mug, 2)]),
                record_steps(&[walked(d2, PHONE, 6), walked(d1, WATCH, 2)]),
            ],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied; 3]);
    device_cache.sync(&api, &max, Some(5)).await;
    let answer = api
        .push(
            &max,
            device,
            &[
                cancel_by_client_id(drop),
                update_profile(json!({"display_name": "Max Pace", "daily_step_goal": 8000})),
            ],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied; 2]);
    device_cache.sync(&api, &max, Some(5)).await;
    deactivate_product(&server, mug).await;
    grant(&pool, max.id, -25).await;
    let answer = api
        .push(&max, device, &[record_steps(&[walked(d1, WATCH, 7)])])
        .await;
    assert_eq!(statuses(&answer), vec![Applied]);
    device_cache.sync(&api, &max, Some(5)).await;

    let fresh = Replica::snapshot(&api, &max).await;
    device_cache.assert_nothing_repeated();
    fresh.assert_nothing_repeated();
    assert_eq!(device_cache.profile, fresh.profile);
    assert_eq!(
        fresh.profile.as_ref().map(|p| p.display_name.as_str()),
        Some("Max Pace")
    );
    assert_eq!(device_cache.wallet, fresh.wallet);
    assert_eq!(fresh.wallet, Some(db_wallet(&server, max.id).await));
    assert_eq!(device_cache.ledger, fresh.ledger, "the same ledger entries");
    assert_eq!(
        fresh.ledger.keys().copied().collect::<BTreeSet<_>>(),
        db_ledger_ids(&server, max.id).await
    );
    assert_eq!(device_cache.step_state(), fresh.step_state());
    assert_eq!(fresh.step_state(), db_step_records(&server, max.id).await);
    assert_eq!(device_cache.unlocks, fresh.unlocks);
    assert_eq!(
        device_cache.orders, fresh.orders,
        "the same orders, same states"
    );
    assert_eq!(
        fresh.order_states().into_values().collect::<BTreeSet<_>>(),
        BTreeSet::from(["cancelled".to_owned(), "pending".to_owned()])
    );
    assert_eq!(
        device_cache.products.keys().collect::<Vec<_>>(),
        fresh.products.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        device_cache.products[&mug].is_active,
        fresh.products[&mug].is_active
    );
    assert!(!fresh.products[&mug].is_active, "inactive products say so");
    assert_eq!(device_cache.achievements, fresh.achievements);
    assert_eq!(device_cache.settings, fresh.settings);
}

#[tokio::test]
async fn a_fresh_snapshot_holds_the_whole_account_and_the_shared_catalogue() {
    let (server, api) = start().await;
    let nia = api.account("nia@example.com").await;
    grant(server.db().pool(), nia.id, 100).await;
    let mat = add_product(&server, "Yoga mat", 60, 2).await;
    let old = add_product(&server, "Old shirt", 10, 2).await;
    deactivate_product(&server, old).await;
    let day = days_ago(1);
    let answer = api
        .push(
            &nia,
            Uuid::new_v4(),
            &[
                record_steps(&[walked(day, PHONE, 6)]),
                place_order(Uuid::new_v4(), &[(mat, 1)]),
            ],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied; 2]);

    let snapshot = Replica::snapshot(&api, &nia).await;
    snapshot.assert_nothing_repeated();
    let profile = snapshot.profile.as_ref().expect("the profile");
    assert_eq!(
        (profile.id, profile.email.as_str()),
        (nia.id, "nia@example.com")
    );
    assert_eq!(snapshot.wallet, Some(api.wallet(&nia).await));
    let kinds: BTreeSet<&str> = snapshot.ledger.values().map(|t| t.kind.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "admin_adjustment",
            "step_reward",
            "achievement_bonus",
            "order_hold"
        ])
    );
    let record = &snapshot.steps[&(day, PHONE.to_owned())];
    assert_eq!(
        (record.steps, record.verified_steps, record.status.as_str()),
        (6000, 6000, "accepted")
    );
    assert_eq!(
        snapshot
            .unlocks
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["steps_1k", "steps_5k"]
    );
    let order = snapshot.orders.values().next().expect("the order");
    assert_eq!(snapshot.orders.len(), 1);
    assert_eq!(order.items.len(), 1);
    assert_eq!(
        (order.items[0].product_id, order.items[0].quantity),
        (mat, 1)
    );
    assert!(snapshot.products[&mat].is_active);
    assert!(!snapshot.products[&old].is_active);
    assert!(snapshot.products.len() >= 10, "the seeded catalogue too");
    assert_eq!(snapshot.achievements.len(), 7);
    let public: BTreeSet<String> =
        common::rows(&server, "SELECT key FROM settings WHERE is_public", &[])
            .await
            .iter()
            .map(|row| row.get("key"))
            .collect();
    assert!(!public.is_empty());
    assert_eq!(
        snapshot.settings.keys().cloned().collect::<BTreeSet<_>>(),
        public,
        "public settings only"
    );
}

#[tokio::test]
async fn a_user_never_receives_another_users_data() {
    let (server, api) = start().await;
    let ola = api.account("ola@example.com").await;
    let pia = api.account("pia@example.com").await;
    let cup = add_product(&server, "Cup", 20, 10).await;
    let day = days_ago(1);
    for (who, thousands) in [(&ola, 4), (&pia, 7)] {
        grant(server.db().pool(), who.id, 100).await;
        let answer = api
            .push(
                who,
                Uuid::new_v4(),
                &[
                    record_steps(&[walked(day, PHONE, thousands)]),
                    place_order(Uuid::new_v4(), &[(cup, 1)]),
                    update_profile(json!({"display_name": format!("Walker {thousands}")})),
                ],
            )
            .await;
        assert_eq!(statuses(&answer), vec![Applied; 3]);
    }

    for (me, other) in [(&ola, &pia), (&pia, &ola)] {
        // Both a snapshot and an incremental chain.
        let snapshot = Replica::snapshot(&api, me).await;
        let mut paged = Replica::default();
        paged.sync(&api, me, Some(2)).await;
        for replica in [&snapshot, &paged] {
            assert_eq!(replica.profile.as_ref().map(|p| p.id), Some(me.id));
            assert_eq!(
                replica.ledger.keys().copied().collect::<BTreeSet<_>>(),
                db_ledger_ids(&server, me.id).await
            );
            let theirs = db_ledger_ids(&server, other.id).await;
            assert!(!theirs.is_empty());
            assert!(
                replica.ledger.keys().all(|id| !theirs.contains(id)),
                "another user's ledger entry"
            );
            let their_orders = db_orders(&server, other.id).await;
            assert!(
                replica
                    .orders
                    .keys()
                    .all(|id| !their_orders.contains_key(id)),
                "another user's order"
            );
            assert_eq!(
                replica.order_states(),
                db_orders(&server, me.id).await,
                "own orders only"
            );
            assert_eq!(replica.step_state(), db_step_records(&server, me.id).await);
            assert_eq!(replica.wallet, Some(db_wallet(&server, me.id).await));
        }
    }
}
