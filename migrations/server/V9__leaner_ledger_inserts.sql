-- Leaner ledger inserts: every coin-paying step report, order and adjustment inserts into
-- coin_transactions, and two things each insert paid for protected or served nothing.
--
-- 1. The foreign key user_id -> users. It is implied: (wallet_id, user_id) references
--    wallets (id, user_id), and wallets.user_id is NOT NULL and references users (id),
--    both ON DELETE RESTRICT. An entry's user therefore has a wallet, and the wallet's user
--    exists and cannot be deleted while the wallet (which the entry in turn protects)
--    exists. The second check cost every insert a lookup and a KEY SHARE lock on the users
--    row: about a fifth of the insert's execution time in EXPLAIN ANALYZE at the medium
--    preset (docs/benchmarks.md, tuning step 11).
--
-- 2. The index (user_id, created_at DESC, id DESC). V3 pages a user's history by
--    ledger_seq (coin_transactions_user_seq_idx), the sync pull reads by change_version
--    (coin_transactions_user_version_idx) and analytics by created_at range (the BRIN
--    index); no query reads this one any more, but every insert still updated it.

ALTER TABLE coin_transactions DROP CONSTRAINT coin_transactions_user_id_fkey;

DROP INDEX coin_transactions_user_created_idx;
