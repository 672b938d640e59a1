//! What an import does: the first night creates the catalogue, the next night creates,
//! updates and deactivates exactly what changed, and SKUs moving between products.

use super::*;

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn first_import_creates_the_catalogue_from_a_shopify_export() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let seeded = seeded_products(&db).await;
    let version_before = shared_version(&db).await;

    let report = harness.import(NIGHT_ONE).await;
    assert_eq!(counts(&report), (8, 0, 0), "{report:?}");
    assert_eq!(report.skipped.len(), 3, "{:#?}", report.skipped);
    let skipped = report.skipped.join("\n");
    assert!(
        skipped.contains(&format!(
            "product {BANDS_BAD_PRICE} \"Resistance Bands Set\": skipped"
        )) && skipped.contains("\"12,99\" is not a decimal amount"),
        "{skipped}"
    );
    assert!(
        skipped.contains(&format!("product {STICKERS_FREE}"))
            && skipped.contains("is not positive"),
        "{skipped}"
    );
    assert!(
        skipped.contains(&format!(
            "product {BOTTLE_TAKEN_SKU} \"Insulated Bottle 750 ml\": imported without its SKU \"FK-BOTTLE-750\""
        )),
        "{skipped}"
    );

    let version = shared_version(&db).await;
    assert_eq!(
        version,
        version_before + 1,
        "one catalogue version per import"
    );

    let backpack = stored(&db, BACKPACK).await.unwrap();
    assert_eq!(
        backpack,
        Stored {
            name: "Trail Runner Backpack 12L".into(),
            handle: Some("trail-runner-backpack-12l".into()),
            sku: Some("RL-TRB12-BLK".into()),
            description:
                "Light & tough: 12 L of storage for long runs. Hydration sleeve Reflective trim"
                    .into(),
            category: "Bags".into(),
            coin_price: 49_990,
            stock: 8,
            images: vec![
                image("trail-backpack-black.jpg"),
                image("trail-backpack-back.jpg")
            ],
            is_active: true,
            deleted: false,
            change_version: version,
        },
        "an oversold variant (-2) counts as none: 5 + 3 + 0"
    );

    let socks = stored(&db, SOCKS).await.unwrap();
    assert_eq!(
        socks.description,
        "Soft merino wool – no blisters, no smell. Sizes: S (36–38), M (39–42), L (43–46)."
    );
    assert_eq!((socks.coin_price, socks.stock), (14_500, 60));

    let roller = stored(&db, FOAM_ROLLER).await.unwrap();
    assert_eq!(roller.name, "Foam Roller – 45 cm");
    assert_eq!(
        roller.description,
        "Roll it out Your calves will <3 it. “Best roller I've owned” — a happy customer."
    );
    assert_eq!(
        (roller.coin_price, roller.stock),
        (24_950, 16),
        "the first variant's price"
    );

    let gloves = stored(&db, GLOVES_DRAFT).await.unwrap();
    assert!(!gloves.is_active, "a draft is imported inactive");
    assert_eq!((gloves.coin_price, gloves.stock), (19_990, 0));
    assert!(gloves.images.is_empty());

    let bottle = stored(&db, BOTTLE_TAKEN_SKU).await.unwrap();
    assert_eq!(bottle.sku, None, "the seed's product keeps FK-BOTTLE-750");
    assert_eq!((bottle.coin_price, bottle.stock), (18_000, 40));

    let strap = stored(&db, CHEST_STRAP).await.unwrap();
    assert_eq!(
        strap.description,
        "ANT+ & Bluetooth® Smart. Battery: CR2032 (included)"
    );
    assert_eq!(strap.images.len(), 3);
    assert_eq!(strap.coin_price, 59_950);

    let gift = stored(&db, GIFT_CARD).await.unwrap();
    assert_eq!(gift.category, "uncategorised");
    assert_eq!(gift.sku, None, "an empty SKU is no SKU");
    assert_eq!(gift.description, "", "a null body_html");
    assert_eq!((gift.coin_price, gift.stock), (25_000, 100));

    assert!(stored(&db, JUMP_ROPE).await.is_some());
    assert_eq!(stored(&db, BANDS_BAD_PRICE).await, None);
    assert_eq!(stored(&db, STICKERS_FREE).await, None);
    assert_eq!(
        seeded_products(&db).await,
        seeded,
        "seeded products untouched"
    );

    let logs = import_logs(&db).await;
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(log.get::<_, Option<Uuid>>(0), Some(harness.admin_id));
    assert_eq!(log.get::<_, String>(1), "reward_products");
    assert_eq!(log.get::<_, Option<String>>(2).as_deref(), Some("upload"));
    assert_eq!(
        log.get::<_, Value>(3),
        json!({"created": 8, "updated": 0, "deactivated": 0, "skipped": 3})
    );
    assert_eq!(
        log.get::<_, Option<String>>(4).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(log.get::<_, Option<String>>(5).as_deref(), Some(USER_AGENT));

    // The same export again changes nothing, not even a version.
    let again = harness.import(NIGHT_ONE).await;
    assert_eq!(counts(&again), (0, 0, 0));
    assert_eq!(
        again.skipped, report.skipped,
        "the same entries are reported"
    );
    assert_eq!(shared_version(&db).await, version);
    assert_eq!(stored(&db, BACKPACK).await.unwrap(), backpack);
    assert_eq!(import_logs(&db).await.len(), 2, "one audit row per import");
}

#[tokio::test]
async fn the_next_nights_feed_creates_updates_and_deactivates_exactly_what_changed() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let seeded = seeded_products(&db).await;
    harness.import(NIGHT_ONE).await;
    let first_version = shared_version(&db).await;
    let socks_before = stored(&db, SOCKS).await.unwrap();

    let report = harness.import(NEXT_NIGHT).await;
    assert_eq!(
        counts(&report),
        (1, 1, 1),
        "belt new, backpack repriced, rope gone"
    );
    assert_eq!(report.skipped.len(), 3, "{:#?}", report.skipped);
    let version = shared_version(&db).await;
    assert_eq!(version, first_version + 1);

    let rope = stored(&db, JUMP_ROPE)
        .await
        .expect("a product that left the feed is kept: orders reference it");
    assert!(!rope.is_active && !rope.deleted);
    assert_eq!(
        rope.change_version, version,
        "devices pull the deactivation"
    );
    assert_eq!(rope.name, "Smart Jump Rope", "otherwise unchanged");

    let backpack = stored(&db, BACKPACK).await.unwrap();
    assert_eq!((backpack.coin_price, backpack.stock), (44_990, 5));
    assert_eq!(backpack.change_version, version);

    let belt = stored(&db, RUNNING_BELT).await.unwrap();
    assert_eq!(belt.name, "Reflective Running Belt");
    assert_eq!(belt.description, "Fits a phone, keys & a gel.");
    assert_eq!(
        (belt.coin_price, belt.stock, belt.is_active),
        (21_500, 25, true)
    );
    assert_eq!(belt.sku.as_deref(), Some("RRB-SM"));

    assert_eq!(
        stored(&db, SOCKS).await.unwrap(),
        socks_before,
        "an unchanged product is not rewritten"
    );

    // Tomorrow's job runs on the same export: nothing to do.
    let again = harness.import(NEXT_NIGHT).await;
    assert_eq!(counts(&again), (0, 0, 0));
    assert_eq!(shared_version(&db).await, version);

    // Going back to the first export reactivates the rope and retires the belt.
    let back = harness.import(NIGHT_ONE).await;
    assert_eq!(
        counts(&back),
        (0, 2, 1),
        "rope reactivated and backpack repriced; belt retired"
    );
    assert!(stored(&db, JUMP_ROPE).await.unwrap().is_active);
    assert!(!stored(&db, RUNNING_BELT).await.unwrap().is_active);

    assert_eq!(
        seeded_products(&db).await,
        seeded,
        "seeded products untouched"
    );
    let logs = import_logs(&db).await;
    assert_eq!(logs.len(), 4, "one audit row per import");
    assert_eq!(
        logs[1].get::<_, Value>(3),
        json!({"created": 1, "updated": 1, "deactivated": 1, "skipped": 3})
    );
}

#[tokio::test]
async fn skus_move_between_imported_products_and_duplicates_are_reported() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let report = harness
        .import(&feed_with(&[(1, "Left", "SKU-A"), (2, "Right", "SKU-B")]))
        .await;
    assert_eq!(counts(&report), (2, 0, 0));

    // The shop swapped the two SKUs overnight: no unique violation, both rewritten.
    let report = harness
        .import(&feed_with(&[(1, "Left", "SKU-B"), (2, "Right", "SKU-A")]))
        .await;
    assert_eq!(counts(&report), (0, 2, 0), "{report:?}");
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(stored(&db, 1).await.unwrap().sku.as_deref(), Some("SKU-B"));
    assert_eq!(stored(&db, 2).await.unwrap().sku.as_deref(), Some("SKU-A"));

    // A SKU twice in the feed, and a product twice: the first keeps it, the rest is reported.
    let report = harness
        .import(&feed_with(&[
            (1, "Left", "SKU-B"),
            (2, "Right", "SKU-B"),
            (2, "Right again", "SKU-C"),
            (3, "New", "SKU-A"),
        ]))
        .await;
    assert_eq!(counts(&report), (1, 1, 0), "{report:?}");
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    assert!(report.skipped[0].contains("product 2 \"Right again\": it appears more than once"));
    assert!(
        report.skipped[1].contains(
            "product 2 \"Right\": imported without its SKU \"SKU-B\", an earlier product"
        )
    );
    assert_eq!(stored(&db, 2).await.unwrap().sku, None);
    assert_eq!(stored(&db, 3).await.unwrap().sku.as_deref(), Some("SKU-A"));
}
