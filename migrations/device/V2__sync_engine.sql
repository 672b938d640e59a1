-- The on-device store, version 2: the shape the device library (outbox, engine, cache) works
-- with.
--
-- Version 1 laid the tables out before the device library existed; nothing but tests wrote to
-- its cache tables. This migration:
--   * keeps the device's own data: step observations and queued mutations are carried over,
--     owned by the user signed in at the time (rows with nobody signed in are kept under the
--     nil user id and are never pushed);
--   * keeps the device id;
--   * rebuilds every cache table in the shape of the wire protocol and resets the pull cursor,
--     so the next sync refetches a snapshot (caches hold only what the server said, so
--     nothing of the user's is lost).
--
-- Every table is STRICT. Timestamps are RFC 3339 text in UTC, dates 'YYYY-MM-DD', coins
-- INTEGER, JSON documents text checked by json_valid().

-- The device: its id is generated once and never changes, whoever signs in.
CREATE TABLE device_identity (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    device_id TEXT NOT NULL CHECK (length(device_id) = 36),
    created_at TEXT NOT NULL
) STRICT;

INSERT INTO device_identity (device_id, created_at)
SELECT device_id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now') FROM sync_state;

-- Step observations, per user: the highest day total the device saw for each
-- (local date, source). A max-register: it only grows.
CREATE TABLE device_steps (
    user_id TEXT NOT NULL CHECK (length(user_id) = 36),
    local_date TEXT NOT NULL CHECK (date(local_date) IS local_date),
    source TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    steps INTEGER NOT NULL CHECK (steps >= 0),
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (user_id, local_date, source)
) STRICT, WITHOUT ROWID;

INSERT INTO device_steps (user_id, local_date, source, steps, recorded_at)
SELECT coalesce((SELECT user_id FROM sync_state), '00000000-0000-0000-0000-000000000000'),
       local_date, source, steps, recorded_at
FROM step_records;

DROP TABLE step_records;

-- Mutations waiting for the server, per user, pushed in `sequence` order.
--   state 'queued':  never sent; a record_steps mutation may still take more records.
--   state 'sent':    sent at least once without a stored answer; never edited again (the
--                    server may have applied it), re-sent byte for byte from `payload`.
--   state 'applied': the server applied it (or answered `duplicate`); kept only until a pull
--                    brings the wallet and orders that include its effect, then deleted.
-- A rejected mutation is deleted and recorded in `rejections`.
-- `payload` is NULL only for a queued record_steps mutation, whose records are in
-- `outbox_steps` until it is first sent. `hold_coins` is what a place_order holds (from the
-- cached prices); `order_ref` the client_order_id a place_order or cancel_order names.
CREATE TABLE outbox_v2 (
    mutation_id TEXT NOT NULL PRIMARY KEY CHECK (length(mutation_id) = 36),
    user_id TEXT NOT NULL CHECK (length(user_id) = 36),
    sequence INTEGER NOT NULL CHECK (sequence > 0),
    kind TEXT NOT NULL
        CHECK (kind IN ('record_steps', 'place_order', 'cancel_order', 'update_profile')),
    payload TEXT CHECK (payload IS NULL OR json_valid(payload)),
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'applied')),
    hold_coins INTEGER NOT NULL DEFAULT 0 CHECK (hold_coins >= 0),
    order_ref TEXT CHECK (order_ref IS NULL OR length(order_ref) = 36),
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error_code TEXT,
    CHECK (payload IS NOT NULL OR (kind = 'record_steps' AND state = 'queued'))
) STRICT;

-- Version 1 rows were complete mutations: they are carried over as sent (never edited).
INSERT INTO outbox_v2 (mutation_id, user_id, sequence, kind, payload, state, created_at,
                       attempts, last_error_code)
SELECT mutation_id,
       coalesce((SELECT user_id FROM sync_state), '00000000-0000-0000-0000-000000000000'),
       sequence, kind, payload, 'sent', created_at, attempts, last_error_code
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;

CREATE UNIQUE INDEX outbox_by_sequence ON outbox (sequence);
CREATE INDEX outbox_by_user ON outbox (user_id, state, sequence);

-- The records of queued (never sent) record_steps mutations: one row per (date, source), the
-- latest total. Frozen into the mutation's payload when it is first sent.
CREATE TABLE outbox_steps (
    mutation_id TEXT NOT NULL REFERENCES outbox (mutation_id) ON DELETE CASCADE,
    local_date TEXT NOT NULL CHECK (date(local_date) IS local_date),
    source TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    steps INTEGER NOT NULL CHECK (steps >= 0),
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (mutation_id, local_date, source)
) STRICT, WITHOUT ROWID;

CREATE INDEX outbox_steps_by_day ON outbox_steps (local_date, source);

-- Mutations the server refused, for the app to show. Never sent again.
CREATE TABLE rejections (
    mutation_id TEXT NOT NULL PRIMARY KEY CHECK (length(mutation_id) = 36),
    user_id TEXT NOT NULL CHECK (length(user_id) = 36),
    kind TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    order_ref TEXT,
    rejected_at TEXT NOT NULL
) STRICT;

CREATE INDEX rejections_by_user ON rejections (user_id, rejected_at);

-- Who is signed in and where the pull stands. One row; `user_id` NULL when signed out.
-- `pull_cursor` NULL: the next pull fetches a snapshot. `reset_cache` 1: the cache tables are
-- emptied in the transaction that applies the next pulled page (a refetched snapshot replaces
-- the old cache in one commit). `registered_user_id`: the user this device was registered for
-- with POST /devices.
CREATE TABLE sync_state_v2 (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    user_id TEXT CHECK (user_id IS NULL OR length(user_id) = 36),
    registered_user_id TEXT,
    pull_cursor TEXT,
    reset_cache INTEGER NOT NULL DEFAULT 0 CHECK (reset_cache IN (0, 1)),
    has_synced INTEGER NOT NULL DEFAULT 0 CHECK (has_synced IN (0, 1)),
    last_synced_at TEXT,
    last_error_code TEXT
) STRICT;

INSERT INTO sync_state_v2 (user_id) SELECT user_id FROM sync_state;
DROP TABLE sync_state;
ALTER TABLE sync_state_v2 RENAME TO sync_state;

-- The cache: only what the server said, for the signed-in user. Emptied when another user
-- signs in and when a snapshot is refetched.
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE user_achievements;
DROP TABLE achievements;
DROP TABLE coin_transactions;
DROP TABLE wallet;
DROP TABLE profile;
DROP TABLE products;
DROP TABLE leaderboard_entries;
DROP TABLE settings;

-- The profile (a protocol UserProfile document).
CREATE TABLE profile (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    user_id TEXT NOT NULL CHECK (length(user_id) = 36),
    body TEXT NOT NULL CHECK (json_valid(body))
) STRICT;

CREATE TABLE wallet (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    available_coins INTEGER NOT NULL CHECK (available_coins >= 0),
    frozen_coins INTEGER NOT NULL CHECK (frozen_coins >= 0),
    lifetime_earned INTEGER NOT NULL CHECK (lifetime_earned >= 0),
    lifetime_spent INTEGER NOT NULL CHECK (lifetime_spent >= 0)
) STRICT;

CREATE TABLE coin_transactions (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    kind TEXT NOT NULL,
    available_delta INTEGER NOT NULL,
    frozen_delta INTEGER NOT NULL,
    available_after INTEGER NOT NULL CHECK (available_after >= 0),
    frozen_after INTEGER NOT NULL CHECK (frozen_after >= 0),
    reference_type TEXT,
    reference_id TEXT,
    description TEXT,
    created_at TEXT NOT NULL
) STRICT;

CREATE INDEX coin_transactions_newest_first ON coin_transactions (created_at DESC, id DESC);

-- The server's step records: its highest total, verified part and status per (date, source).
CREATE TABLE server_steps (
    local_date TEXT NOT NULL CHECK (date(local_date) IS local_date),
    source TEXT NOT NULL,
    steps INTEGER NOT NULL CHECK (steps >= 0),
    verified_steps INTEGER NOT NULL CHECK (verified_steps >= 0),
    status TEXT NOT NULL,
    PRIMARY KEY (local_date, source)
) STRICT, WITHOUT ROWID;

-- Achievement definitions (shared), the user's unlocks, and progress as the server last
-- computed it (GET /achievements).
CREATE TABLE achievements (
    code TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    icon TEXT,
    criteria TEXT NOT NULL CHECK (json_valid(criteria)),
    bonus_coins INTEGER NOT NULL CHECK (bonus_coins >= 0),
    is_active INTEGER NOT NULL CHECK (is_active IN (0, 1))
) STRICT;

CREATE TABLE achievement_unlocks (
    code TEXT NOT NULL PRIMARY KEY,
    unlocked_at TEXT NOT NULL
) STRICT;

CREATE TABLE achievement_progress (
    code TEXT NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL,
    progress INTEGER NOT NULL,
    target INTEGER NOT NULL
) STRICT;

-- The reward catalogue (a protocol Product document per row).
CREATE TABLE products (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    coin_price INTEGER NOT NULL CHECK (coin_price >= 0),
    is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
    body TEXT NOT NULL CHECK (json_valid(body))
) STRICT;

-- The user's orders as the server confirmed them (a protocol Order document per row).
CREATE TABLE orders (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    client_order_id TEXT NOT NULL UNIQUE CHECK (length(client_order_id) = 36),
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL CHECK (json_valid(body))
) STRICT;

CREATE INDEX orders_newest_first ON orders (created_at DESC, id DESC);

-- The leaderboard of each period as last fetched (a protocol Leaderboard document).
CREATE TABLE leaderboards (
    period TEXT NOT NULL PRIMARY KEY CHECK (period IN ('weekly', 'monthly', 'all_time')),
    fetched_at TEXT NOT NULL,
    body TEXT NOT NULL CHECK (json_valid(body))
) STRICT;

-- Public settings (coin rate, daily cap, ...), each value a JSON document.
CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL CHECK (json_valid(value))
) STRICT;
