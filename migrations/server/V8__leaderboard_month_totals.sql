-- Incremental leaderboards: every user's verified steps per calendar month, kept exact by
-- triggers on step_days in the same transaction as each change (a report, a
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

-- Moves one user's month by `delta` steps: up makes the row if the month had no steps;
-- down can only take steps the month holds (they were counted in it), and a month left at
-- zero loses its row. Each statement sees the latest committed total (READ COMMITTED).
CREATE FUNCTION step_month_totals_move(month_start date, user_uuid uuid, delta bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    remaining bigint;
BEGIN
    IF delta > 0 THEN
        INSERT INTO step_month_totals AS t (month, user_id, steps)
        VALUES (month_start, user_uuid, delta)
        ON CONFLICT (month, user_id) DO UPDATE SET steps = t.steps + EXCLUDED.steps;
    ELSIF delta < 0 THEN
        UPDATE step_month_totals SET steps = steps + delta
        WHERE month = month_start AND user_id = user_uuid
        RETURNING steps INTO remaining;
        IF remaining = 0 THEN
            DELETE FROM step_month_totals
            WHERE month = month_start AND user_id = user_uuid AND steps = 0;
        END IF;
    END IF;
END;
$$;

-- New days add their steps to their month: one set-based upsert per statement, so a COPY
-- of millions of days costs one aggregate, and an upsert that only updated costs a scan of
-- an empty transition table.
CREATE FUNCTION step_month_totals_add_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO step_month_totals AS t (month, user_id, steps)
    SELECT date_trunc('month', n.day)::date, n.user_id, sum(n.verified_steps)
    FROM inserted_days n
    GROUP BY 1, 2
    HAVING sum(n.verified_steps) > 0
    ORDER BY 1, 2
    ON CONFLICT (month, user_id) DO UPDATE SET steps = t.steps + EXCLUDED.steps;
    RETURN NULL;
END;
$$;

-- A changed day moves its month by the difference (a review can lower an old day; a day can
-- change long after its month ended), or, if its key changed, leaves its old month for its
-- new one. Row-level: the step path changes one to a few days per statement, and a row
-- trigger costs a fraction of a statement trigger with transition tables.
CREATE FUNCTION step_month_totals_apply_changed_day() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_month date := date_trunc('month', OLD.day)::date;
    new_month date := date_trunc('month', NEW.day)::date;
BEGIN
    IF old_month = new_month AND OLD.user_id = NEW.user_id THEN
        PERFORM step_month_totals_move(new_month, NEW.user_id,
                                       NEW.verified_steps::bigint - OLD.verified_steps);
    ELSE
        PERFORM step_month_totals_move(old_month, OLD.user_id, -OLD.verified_steps::bigint);
        PERFORM step_month_totals_move(new_month, NEW.user_id, NEW.verified_steps::bigint);
    END IF;
    RETURN NULL;
END;
$$;

-- A deleted day takes its steps out of its month.
CREATE FUNCTION step_month_totals_remove_deleted_day() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM step_month_totals_move(date_trunc('month', OLD.day)::date, OLD.user_id,
                                   -OLD.verified_steps::bigint);
    RETURN NULL;
END;
$$;

CREATE TRIGGER step_days_month_totals_insert AFTER INSERT ON step_days
    REFERENCING NEW TABLE AS inserted_days
    FOR EACH STATEMENT EXECUTE FUNCTION step_month_totals_add_inserted();
-- Only days whose steps or key changed (a day that only paid coins does not call it).
CREATE TRIGGER step_days_month_totals_update AFTER UPDATE ON step_days
    FOR EACH ROW
    WHEN (OLD.verified_steps IS DISTINCT FROM NEW.verified_steps
          OR OLD.day IS DISTINCT FROM NEW.day OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION step_month_totals_apply_changed_day();
CREATE TRIGGER step_days_month_totals_delete AFTER DELETE ON step_days
    FOR EACH ROW WHEN (OLD.verified_steps > 0)
    EXECUTE FUNCTION step_month_totals_remove_deleted_day();

-- The months of the days already stored.
INSERT INTO step_month_totals (month, user_id, steps)
SELECT date_trunc('month', day)::date, user_id, sum(verified_steps)
FROM step_days
GROUP BY 1, 2
HAVING sum(verified_steps) > 0;
