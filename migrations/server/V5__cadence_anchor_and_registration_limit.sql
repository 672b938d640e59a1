-- Anti-cheat hardening: a cadence anchor per step record, and a registration rate limit.

-- The last reading of a (user, day, source) that was taken inside its day: the time it was
-- taken (clamped into the day and to its arrival) and the total it claimed. Every increase is
-- judged against this anchor: a total may exceed the anchor's by at most the hard cadence
-- times the minutes from the anchor to this reading (clamped into the day and to its arrival).
-- A reading taken after its day ended judges against the same anchor and does not move it, so
-- a past day's total may still grow the next morning, yet no sequence of reports can claim
-- more steps than the day's real elapsed time allows. NULL: no anchor yet (the start of the
-- day with 0 steps).
ALTER TABLE step_records
    ADD COLUMN cadence_anchor_at    timestamptz,
    ADD COLUMN cadence_anchor_steps integer CHECK (cadence_anchor_steps >= 0),
    ADD CONSTRAINT step_records_cadence_anchor_check
        CHECK ((cadence_anchor_at IS NULL) = (cadence_anchor_steps IS NULL));

-- Accounts created, counted per client address within a window like failed sign-ins, so one
-- address cannot mass-register across server instances.
ALTER TABLE auth_failures DROP CONSTRAINT auth_failures_scope_check;
ALTER TABLE auth_failures ADD CONSTRAINT auth_failures_scope_check
    CHECK (scope IN ('account', 'address', 'registration'));
