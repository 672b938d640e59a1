-- The on-device store of fitkart-core, version 1.
--
-- Two kinds of data live here:
--   * the device's own data: step observations (step_records) and the queue of mutations
--     waiting to be pushed (outbox), plus the sync bookkeeping (sync_state);
--   * a cache of server state (profile, wallet, coin_transactions, achievements,
--     user_achievements, products, orders, order_items, leaderboard_entries, settings),
--     written only from what the server returned. Pending local effects are derived from the
--     outbox, never written into the cache tables.
--
-- Conventions: ids are UUIDs as lowercase text; timestamps are RFC 3339 text in UTC;
-- local dates are 'YYYY-MM-DD'; coins are INTEGER (never REAL); JSON is text checked by
-- json_valid(); booleans are INTEGER 0/1. Tables with a single row use a `singleton` key that
-- can only be 1. Schema changes are new migration files, never edits to this one.

-- Step records queued on the device: one day total per (local date, source), as HealthKit or
-- Health Connect report it. `steps` is a max-register (it only grows); the sync engine
-- writes it with max(old, new). `acknowledged_steps` is the total the server last confirmed.
CREATE TABLE step_records (
    local_date TEXT NOT NULL CHECK (date(local_date) IS local_date),
    source TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    steps INTEGER NOT NULL CHECK (steps >= 0),
    recorded_at TEXT NOT NULL,
    acknowledged_steps INTEGER NOT NULL DEFAULT 0 CHECK (acknowledged_steps >= 0),
    verification_status TEXT NOT NULL DEFAULT 'pending'
        CHECK (verification_status IN ('pending', 'verified', 'flagged', 'rejected')),
    PRIMARY KEY (local_date, source)
) STRICT, WITHOUT ROWID;

-- Mutations waiting to be pushed, sent in `sequence` order. `mutation_id` is generated on the
-- device and is the server's idempotency key. The sync engine assigns `sequence` as one more
-- than the largest queued one, under the single writer connection.
CREATE TABLE outbox (
    mutation_id TEXT NOT NULL PRIMARY KEY CHECK (length(mutation_id) = 36),
    sequence INTEGER NOT NULL CHECK (sequence > 0),
    kind TEXT NOT NULL
        CHECK (kind IN ('record_steps', 'place_order', 'cancel_order', 'update_profile')),
    payload TEXT NOT NULL CHECK (json_valid(payload)),
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error_code TEXT,
    next_attempt_at TEXT
) STRICT;

CREATE UNIQUE INDEX outbox_by_sequence ON outbox (sequence);

-- The signed-in user's profile, as the server last sent it.
CREATE TABLE profile (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    user_id TEXT NOT NULL CHECK (length(user_id) = 36),
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    daily_step_goal INTEGER NOT NULL CHECK (daily_step_goal > 0),
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    updated_at TEXT NOT NULL
) STRICT;

-- The user's wallet, as the server last sent it.
CREATE TABLE wallet (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    available_coins INTEGER NOT NULL CHECK (available_coins >= 0),
    frozen_coins INTEGER NOT NULL CHECK (frozen_coins >= 0),
    lifetime_earned INTEGER NOT NULL CHECK (lifetime_earned >= 0),
    lifetime_spent INTEGER NOT NULL CHECK (lifetime_spent >= 0),
    updated_at TEXT NOT NULL
) STRICT;

-- The user's coin ledger entries (append-only on the server). Each moves coins between the
-- available and frozen balances and records both balances after it.
CREATE TABLE coin_transactions (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    kind TEXT NOT NULL CHECK (kind IN (
        'step_reward', 'achievement_bonus', 'order_hold', 'order_capture', 'order_release',
        'refund', 'admin_adjustment'
    )),
    available_delta INTEGER NOT NULL,
    frozen_delta INTEGER NOT NULL,
    available_after INTEGER NOT NULL CHECK (available_after >= 0),
    frozen_after INTEGER NOT NULL CHECK (frozen_after >= 0),
    reference TEXT,
    created_at TEXT NOT NULL
) STRICT;

CREATE INDEX coin_transactions_newest_first ON coin_transactions (created_at DESC, id DESC);

-- Achievement definitions (shared catalogue data). `kind` is left open so a kind the server
-- adds later still caches on an older app.
CREATE TABLE achievements (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    kind TEXT NOT NULL,
    threshold INTEGER NOT NULL CHECK (threshold >= 0),
    coin_bonus INTEGER NOT NULL CHECK (coin_bonus >= 0),
    icon TEXT,
    sort_order INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
) STRICT;

-- The user's progress towards each achievement; `unlocked_at` is set once it unlocked.
CREATE TABLE user_achievements (
    achievement_id TEXT NOT NULL PRIMARY KEY
        REFERENCES achievements (id) ON DELETE CASCADE,
    progress INTEGER NOT NULL DEFAULT 0 CHECK (progress >= 0),
    unlocked_at TEXT
) STRICT;

-- The reward catalogue (shared catalogue data). `images` is a JSON array of URLs.
CREATE TABLE products (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    coin_price INTEGER NOT NULL CHECK (coin_price >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    images TEXT NOT NULL DEFAULT '[]'
        CHECK (json_valid(images) AND json_type(images) = 'array'),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    updated_at TEXT NOT NULL
) STRICT;

CREATE INDEX products_active_by_category ON products (category, name) WHERE active = 1;

-- The user's redemption orders, as the server confirmed them. `client_order_id` is the
-- mutation id of the place_order mutation that created the order.
CREATE TABLE orders (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    order_code TEXT NOT NULL UNIQUE,
    client_order_id TEXT NOT NULL UNIQUE CHECK (length(client_order_id) = 36),
    status TEXT NOT NULL CHECK (status IN (
        'pending', 'confirmed', 'processing', 'shipped', 'delivered', 'cancelled', 'refunded'
    )),
    total_coins INTEGER NOT NULL CHECK (total_coins >= 0),
    shipping_address TEXT NOT NULL CHECK (json_valid(shipping_address)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE INDEX orders_newest_first ON orders (created_at DESC, id DESC);

-- The lines of an order, with the product name and price as they were when it was placed.
CREATE TABLE order_items (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id TEXT NOT NULL CHECK (length(product_id) = 36),
    product_name TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_coins INTEGER NOT NULL CHECK (unit_price_coins >= 0)
) STRICT;

CREATE INDEX order_items_by_order ON order_items (order_id);

-- Leaderboard pages the app last fetched, one set of rows per period.
CREATE TABLE leaderboard_entries (
    period TEXT NOT NULL CHECK (period IN ('weekly', 'monthly', 'all_time')),
    rank INTEGER NOT NULL CHECK (rank > 0),
    user_id TEXT NOT NULL CHECK (length(user_id) = 36),
    display_name TEXT NOT NULL,
    steps INTEGER NOT NULL CHECK (steps >= 0),
    is_me INTEGER NOT NULL DEFAULT 0 CHECK (is_me IN (0, 1)),
    PRIMARY KEY (period, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX leaderboard_by_period_and_rank ON leaderboard_entries (period, rank);

-- Server settings the app needs (coin rate, daily cap, ...), each value a JSON document.
CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL CHECK (json_valid(value)),
    updated_at TEXT NOT NULL
) STRICT;

-- Sync bookkeeping, present once a user signed in on this device. `pull_cursor` is opaque
-- (NULL: no pull yet, the next pull fetches a snapshot). `last_error_code` is a
-- machine-readable code, never a message with personal data.
CREATE TABLE sync_state (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    user_id TEXT NOT NULL CHECK (length(user_id) = 36),
    device_id TEXT NOT NULL CHECK (length(device_id) = 36),
    pull_cursor TEXT,
    last_push_at TEXT,
    last_pull_at TEXT,
    last_error_code TEXT
) STRICT;
