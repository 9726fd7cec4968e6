-- Candidates that could not be built or scored (a bad adapter, a router that fails to fit): the reason is
-- kept beside the candidates that succeeded, so a scaled-out run fails only the candidates concerned.
-- A later success does not delete the row; `failed_at` says when it happened.
CREATE TABLE candidate_failures (
    candidate_key VARCHAR NOT NULL,
    step          VARCHAR NOT NULL CHECK (step IN ('build', 'evaluate')),
    reason        VARCHAR NOT NULL,
    failed_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (candidate_key, step)
);
