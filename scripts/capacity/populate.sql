-- Run on an empty database migrated to the latest version, with pgcrypto:
--   createdb fitkart_capacity && fitkart-sync-server migrate   (DATABASE_URL=.../fitkart_capacity)
--   psql -d fitkart_capacity -c "CREATE EXTENSION pgcrypto" -f scripts/capacity/populate.sql -f scripts/capacity/measure.sql
-- Sample rows for docs/scaling.md: 5,000 users, 30 days each, a phone and a watch source every day; four
-- syncs a day, each paying a step reward and storing one mutation outcome; four refresh-token
-- rotations a day.
\set users 5000
\set days 30
INSERT INTO users (id, email, password_hash, display_name, last_login_at, change_version)
SELECT gen_random_uuid(), 'walker' || i || '@example.com',
       '$argon2id$v=19$m=19456,t=2,p=1$' || encode(gen_random_bytes(16), 'base64') || '$' || encode(gen_random_bytes(32), 'base64'),
       'Walker ' || i, now(), 600
FROM generate_series(1, :users) i;
INSERT INTO change_versions (user_id, version) SELECT id, 600 FROM users;
INSERT INTO wallets (user_id, available_coins, lifetime_earned, change_version) SELECT id, 0, 0, 600 FROM users;
INSERT INTO devices (id, user_id, platform, os_version, app_version, model)
SELECT gen_random_uuid(), id, 'ios', '18.1', '2.4.0', 'iPhone15,2' FROM users;
INSERT INTO step_records (user_id, day, source, steps, verified_steps, device_id, report_count,
    first_recorded_at, last_recorded_at, change_version, cadence_anchor_at, cadence_anchor_steps)
SELECT u.id, current_date - d, s.source, 8000 + (random() * 4000)::int, 8000, dv.id, 6,
       now() - make_interval(days => d), now() - make_interval(days => d), d * 20,
       now() - make_interval(days => d), 7900
FROM users u JOIN devices dv ON dv.user_id = u.id
CROSS JOIN generate_series(1, :days) d
CROSS JOIN (VALUES ('healthkit'), ('watch')) s(source)
;
INSERT INTO step_days (user_id, day, verified_steps, coins_paid, change_version)
SELECT u.id, current_date - d, 8000 + (random() * 4000)::int, 80, d * 20
FROM users u CROSS JOIN generate_series(1, :days) d;
INSERT INTO coin_transactions (user_id, wallet_id, kind, available_delta, frozen_delta,
    available_after, frozen_after, reference_type, reference_id, idempotency_key, description,
    change_version, created_at)
SELECT w.user_id, w.id, 'step_reward', 20, 0, (d * 4 + k) * 20, 0, 'step_day',
       (current_date - d)::text,
       'step_reward:' || w.user_id || ':' || (current_date - d) || ':' || k * 20,
       'Steps on ' || (current_date - d), d * 20 + k,
       now() - make_interval(days => d, hours => k * 4)
FROM wallets w CROSS JOIN generate_series(1, :days) d CROSS JOIN generate_series(1, 4) k;
INSERT INTO sync_mutations (user_id, mutation_id, device_id, kind, payload_hash, outcome, result,
    client_created_at, applied_at)
SELECT u.id, gen_random_uuid(), dv.id, 'record_steps', gen_random_bytes(32), 'applied',
       jsonb_build_object('status', 'applied', 'result', jsonb_build_object(
           'coins_awarded', 20, 'achievements_unlocked', '[]'::jsonb,
           'results', jsonb_build_array(jsonb_build_object('index', 0, 'date', (current_date - d)::text,
               'source', 'healthkit', 'status', 'accepted', 'steps', 8123, 'verified_steps', 8123,
               'coins_awarded', 20)))),
       now() - make_interval(days => d, hours => k * 4), now() - make_interval(days => d, hours => k * 4)
FROM users u JOIN devices dv ON dv.user_id = u.id
CROSS JOIN generate_series(1, :days) d CROSS JOIN generate_series(1, 4) k;
INSERT INTO refresh_tokens (user_id, family_id, token_hash, device_id, user_agent, ip_address,
    expires_at, used_at, created_at)
SELECT u.id, u.id, gen_random_bytes(32), dv.id, 'FitKart/2.4.0 (iOS 18.1; iPhone15,2)',
       '203.0.113.7', now() + interval '30 days' - make_interval(days => d), now(),
       now() - make_interval(days => d, hours => k * 4)
FROM users u JOIN devices dv ON dv.user_id = u.id
CROSS JOIN generate_series(1, :days) d CROSS JOIN generate_series(1, 4) k;
VACUUM ANALYZE;
