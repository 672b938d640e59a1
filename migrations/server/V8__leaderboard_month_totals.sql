-- Incremental leaderboards: every user's verified steps per calendar month, kept exact by
-- statement triggers on step_days in the same transaction as each change (a report, a
-- backfilled or reviewed old day, a bulk COPY). The monthly board reads the current month's
-- rows and the all-time board sums a user's months, so the nightly rebuild no longer sums
-- every day ever recorded. A full rebuild (the admin refresh) recomputes this table from
-- step_days and repairs any row that differs.

CREATE TABLE step_month_totals (
    month   date NOT NULL CHECK (extract(day FROM month) = 1),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Positive once a statement ends: a month whose steps fall to zero loses its row, so the
    -- table equals a recomputation from step_days (months with steps only).
    steps   bigint NOT NULL CHECK (steps >= 0),
    -- The monthly board reads one month; the all-time board reads them all.
    PRIMARY KEY (month, user_id)
);

-- Moves each (month, user) by its delta: up makes the row if the month had no steps; down
-- can only take steps the month holds (they were counted in it), and a month left at zero
-- loses its row. Each step runs as its own statement, so it sees the changes of concurrent
-- transactions that committed meanwhile and applies the delta to the latest total.
CREATE FUNCTION step_month_totals_apply(months date[], users uuid[], deltas bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO step_month_totals AS t (month, user_id, steps)
    SELECT d.month, d.user_id, d.delta
    FROM unnest(months, users, deltas) AS d(month, user_id, delta)
    WHERE d.delta > 0
    ORDER BY 1, 2
    ON CONFLICT (month, user_id) DO UPDATE SET steps = t.steps + EXCLUDED.steps;
    UPDATE step_month_totals t SET steps = t.steps + d.delta
    FROM unnest(months, users, deltas) AS d(month, user_id, delta)
    WHERE d.delta < 0 AND t.month = d.month AND t.user_id = d.user_id;
    DELETE FROM step_month_totals t
    USING unnest(months, users, deltas) AS d(month, user_id, delta)
    WHERE d.delta < 0 AND t.month = d.month AND t.user_id = d.user_id AND t.steps = 0;
END;
$$;

-- New days add their steps to their month.
CREATE FUNCTION step_month_totals_add_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    months date[];
    users  uuid[];
    deltas bigint[];
BEGIN
    SELECT array_agg(month ORDER BY month, user_id), array_agg(user_id ORDER BY month, user_id),
           array_agg(steps ORDER BY month, user_id)
    INTO months, users, deltas
    FROM (SELECT date_trunc('month', n.day)::date AS month, n.user_id,
                 sum(n.verified_steps)::bigint AS steps
          FROM inserted_days n
          GROUP BY 1, 2
          HAVING sum(n.verified_steps) > 0) d;
    IF months IS NOT NULL THEN
        PERFORM step_month_totals_apply(months, users, deltas);
    END IF;
    RETURN NULL;
END;
$$;

-- Changed days move their month by the difference (a review can lower an old day; a day
-- can change long after its month ended).
CREATE FUNCTION step_month_totals_apply_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    months date[];
    users  uuid[];
    deltas bigint[];
BEGIN
    SELECT array_agg(month ORDER BY month, user_id), array_agg(user_id ORDER BY month, user_id),
           array_agg(delta ORDER BY month, user_id)
    INTO months, users, deltas
    FROM (SELECT month, user_id, sum(steps)::bigint AS delta
          FROM (SELECT date_trunc('month', n.day)::date AS month, n.user_id,
                       n.verified_steps::bigint AS steps
                FROM changed_days_new n
                UNION ALL
                SELECT date_trunc('month', o.day)::date, o.user_id, -o.verified_steps::bigint
                FROM changed_days_old o) changes
          GROUP BY month, user_id
          HAVING sum(steps) <> 0) d;
    IF months IS NOT NULL THEN
        PERFORM step_month_totals_apply(months, users, deltas);
    END IF;
    RETURN NULL;
END;
$$;

-- Deleted days take their steps out of their month.
CREATE FUNCTION step_month_totals_remove_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    months date[];
    users  uuid[];
    deltas bigint[];
BEGIN
    SELECT array_agg(month ORDER BY month, user_id), array_agg(user_id ORDER BY month, user_id),
           array_agg(-steps ORDER BY month, user_id)
    INTO months, users, deltas
    FROM (SELECT date_trunc('month', o.day)::date AS month, o.user_id,
                 sum(o.verified_steps)::bigint AS steps
          FROM deleted_days o
          GROUP BY 1, 2
          HAVING sum(o.verified_steps) > 0) d;
    IF months IS NOT NULL THEN
        PERFORM step_month_totals_apply(months, users, deltas);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER step_days_month_totals_insert AFTER INSERT ON step_days
    REFERENCING NEW TABLE AS inserted_days
    FOR EACH STATEMENT EXECUTE FUNCTION step_month_totals_add_inserted();
CREATE TRIGGER step_days_month_totals_update AFTER UPDATE ON step_days
    REFERENCING OLD TABLE AS changed_days_old NEW TABLE AS changed_days_new
    FOR EACH STATEMENT EXECUTE FUNCTION step_month_totals_apply_updated();
CREATE TRIGGER step_days_month_totals_delete AFTER DELETE ON step_days
    REFERENCING OLD TABLE AS deleted_days
    FOR EACH STATEMENT EXECUTE FUNCTION step_month_totals_remove_deleted();

-- The months of the days already stored.
INSERT INTO step_month_totals (month, user_id, steps)
SELECT date_trunc('month', day)::date, user_id, sum(verified_steps)
FROM step_days
GROUP BY 1, 2
HAVING sum(verified_steps) > 0;
