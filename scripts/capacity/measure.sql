-- Bytes per row of the tables docs/scaling.md models (run after populate.sql).
SELECT t AS table, n AS rows,
       round(heap::numeric / n) AS heap_b_per_row,
       round(idx::numeric / n) AS index_b_per_row,
       round(total::numeric / n) AS total_b_per_row,
       avg_row AS avg_tuple_b
FROM (
  SELECT 'users' t, (SELECT count(*) FROM users) n, pg_table_size('users') heap, pg_indexes_size('users') idx, pg_total_relation_size('users') total, (SELECT round(avg(pg_column_size(x.*))) FROM users x) avg_row
  UNION ALL SELECT 'step_records', (SELECT count(*) FROM step_records),
     (SELECT sum(pg_table_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'step_records'::regclass),
     (SELECT sum(pg_indexes_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'step_records'::regclass),
     (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'step_records'::regclass),
     (SELECT round(avg(pg_column_size(x.*))) FROM step_records x)
  UNION ALL SELECT 'step_days', (SELECT count(*) FROM step_days), pg_table_size('step_days'), pg_indexes_size('step_days'), pg_total_relation_size('step_days'), (SELECT round(avg(pg_column_size(x.*))) FROM step_days x)
  UNION ALL SELECT 'coin_transactions', (SELECT count(*) FROM coin_transactions), pg_table_size('coin_transactions'), pg_indexes_size('coin_transactions'), pg_total_relation_size('coin_transactions'), (SELECT round(avg(pg_column_size(x.*))) FROM coin_transactions x)
  UNION ALL SELECT 'sync_mutations', (SELECT count(*) FROM sync_mutations), pg_table_size('sync_mutations'), pg_indexes_size('sync_mutations'), pg_total_relation_size('sync_mutations'), (SELECT round(avg(pg_column_size(x.*))) FROM sync_mutations x)
  UNION ALL SELECT 'refresh_tokens', (SELECT count(*) FROM refresh_tokens), pg_table_size('refresh_tokens'), pg_indexes_size('refresh_tokens'), pg_total_relation_size('refresh_tokens'), (SELECT round(avg(pg_column_size(x.*))) FROM refresh_tokens x)
  UNION ALL SELECT 'wallets', (SELECT count(*) FROM wallets), pg_table_size('wallets'), pg_indexes_size('wallets'), pg_total_relation_size('wallets'), (SELECT round(avg(pg_column_size(x.*))) FROM wallets x)
  UNION ALL SELECT 'devices', (SELECT count(*) FROM devices), pg_table_size('devices'), pg_indexes_size('devices'), pg_total_relation_size('devices'), (SELECT round(avg(pg_column_size(x.*))) FROM devices x)
  UNION ALL SELECT 'change_versions', (SELECT count(*) FROM change_versions), pg_table_size('change_versions'), pg_indexes_size('change_versions'), pg_total_relation_size('change_versions'), (SELECT round(avg(pg_column_size(x.*))) FROM change_versions x)
) s ORDER BY 1;
