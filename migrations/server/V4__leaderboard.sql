-- Leaderboards: the indexes the board rebuilds and reads need.

-- The weekly and monthly rebuilds sum step_days over a range of days
-- (WHERE day >= period_start AND day < period_end) for every user.
CREATE INDEX step_days_day_idx ON step_days (day);

-- Board reads close up the ranks of users deleted since the last rebuild; this finds the
-- deleted accounts without scanning every live one.
CREATE INDEX users_deleted_idx ON users (id) WHERE deleted_at IS NOT NULL;
