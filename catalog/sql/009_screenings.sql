-- The cheap first pass of an evaluation (successive halving): every candidate's mean target NLL on a small
-- sample of the suite's held-in tasks. Only the candidates that pass it are evaluated in full; the others
-- keep this row, and the leaderboard lists them as screened out.
CREATE TABLE IF NOT EXISTS screenings (
    screen_key VARCHAR PRIMARY KEY,
    candidate_key VARCHAR NOT NULL,
    base_model VARCHAR NOT NULL,
    suite_hash VARCHAR NOT NULL,
    per_task INTEGER NOT NULL,
    examples INTEGER NOT NULL,
    held_in_nll DOUBLE,
    seconds DOUBLE,
    screened_at TIMESTAMPTZ NOT NULL
);
