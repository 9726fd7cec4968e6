-- The recycling pipeline: what was learnt from each adapter's weights (fingerprints), how the adapters
-- of a base model were grouped (clusterings), what was built from them (candidates), how each candidate
-- scored on a task suite (evaluations) and which ones were registered in MLflow (registrations).
--
-- Every key is a content hash: a fingerprint is keyed by the commit it was computed at, a clustering by
-- its members' commits and settings, a candidate by what it computes from which commits, an evaluation by
-- the candidate, the suite's content and the scoring settings. Re-running on unchanged inputs finds every
-- key present and writes nothing.

CREATE TABLE adapter_fingerprints (
    repo_id        VARCHAR NOT NULL,
    sha            VARCHAR NOT NULL,         -- the commit the weights were downloaded at
    version        INTEGER NOT NULL,         -- of the fingerprinting rules; a new version recomputes
    base_model     VARCHAR NOT NULL,
    status         VARCHAR NOT NULL CHECK (status IN ('ok', 'failed')),
    reason         VARCHAR,                  -- why it failed (download, refused by the loader, ...)
    norm           DOUBLE,                   -- Frobenius norm of the whole update, sqrt(sum_m ||dW_m||^2)
    module_count   INTEGER,
    parameter_count BIGINT,
    sketch_size    INTEGER,                  -- k of the k x k sketches
    sketch_seed    INTEGER,
    PRIMARY KEY (repo_id, sha, version)
);

CREATE TABLE module_fingerprints (
    repo_id     VARCHAR NOT NULL,
    sha         VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    module      VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,
    d_in        BIGINT NOT NULL,
    d_out       BIGINT NOT NULL,
    norm        DOUBLE NOT NULL,             -- ||dW||_F of the module (scale folded in)
    sigma_1     DOUBLE NOT NULL,             -- top singular value of dW
    sigma_ratio DOUBLE NOT NULL,             -- sigma_2 / sigma_1: near 1 means a weak Arrow prototype
    prototype   FLOAT[] NOT NULL,            -- Arrow prototype (d_in), canonical sign
    sketch      FLOAT[] NOT NULL,            -- (O_out^T B)(A O_in), k x k row-major
    PRIMARY KEY (repo_id, sha, version, module)
);

CREATE TABLE clusterings (
    clustering_id   VARCHAR PRIMARY KEY,     -- hash of the members' commits and the settings
    base_model      VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,        -- 'mbc' (k-means on the update geometry)
    similarity      VARCHAR NOT NULL,        -- 'sketch': cosine estimated from the stored sketches
    k               INTEGER NOT NULL,
    silhouette      DOUBLE,
    silhouette_by_k JSON,
    members         INTEGER NOT NULL,
    settings        JSON NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE cluster_members (
    clustering_id VARCHAR NOT NULL,
    repo_id       VARCHAR NOT NULL,
    sha           VARCHAR NOT NULL,
    cluster       INTEGER NOT NULL,
    PRIMARY KEY (clustering_id, repo_id)
);

CREATE TABLE candidates (
    candidate_key  VARCHAR PRIMARY KEY,      -- hash of kind, method, settings, members' commits, base commit
    base_model     VARCHAR NOT NULL,
    base_revision  VARCHAR,
    name           VARCHAR NOT NULL,         -- for people: 'cluster2-ties', 'arrow-all', 'base', a repo id
    kind           VARCHAR NOT NULL,         -- base, expert, merge, arrow, phatgoose
    method         VARCHAR,                  -- merge method
    clustering_id  VARCHAR,                  -- the clustering it was built from, if any
    cluster        INTEGER,                  -- its cluster within that clustering
    members        JSON NOT NULL,            -- ["repo_id@sha", ...] in library / merge order
    settings       JSON NOT NULL,            -- merge options or router and gate-training settings
    artifact       VARCHAR,                  -- folder under ZOO_HOME/candidates (adapter or library); NULL for base
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE evaluations (
    eval_key             VARCHAR PRIMARY KEY, -- hash of the candidate, the suite's content and the settings
    candidate_key        VARCHAR NOT NULL,
    base_model           VARCHAR NOT NULL,
    suite_name           VARCHAR NOT NULL,
    suite_hash           VARCHAR NOT NULL,
    settings             JSON NOT NULL,       -- max examples per task, device, ...
    held_in_exact_match  DOUBLE,
    held_out_exact_match DOUBLE,
    held_in_nll          DOUBLE,
    held_out_nll         DOUBLE,
    held_in_tasks        INTEGER,
    held_out_tasks       INTEGER,
    build_s              DOUBLE,
    eval_s               DOUBLE,
    peak_mb              DOUBLE,
    memory               VARCHAR,             -- how peak_mb was measured
    routing              JSON,                -- mean routing accuracies of a routed candidate
    evaluated_at         TIMESTAMPTZ NOT NULL,
    mlflow_run_id        VARCHAR              -- set once the run is logged
);

CREATE TABLE evaluation_tasks (
    eval_key       VARCHAR NOT NULL,
    task           VARCHAR NOT NULL,
    split          VARCHAR NOT NULL,
    n              INTEGER NOT NULL,
    exact_match    DOUBLE,
    nll            DOUBLE,
    routing_skill  DOUBLE,                    -- fraction of tokens routed to an expert of the task's skill
    routing_family DOUBLE,
    routing_experts JSON,                     -- {member repo id: share of top-1 routing decisions}
    PRIMARY KEY (eval_key, task)
);

CREATE TABLE registrations (
    model_name           VARCHAR NOT NULL,
    version              INTEGER NOT NULL,
    eval_key             VARCHAR NOT NULL,
    candidate_key        VARCHAR NOT NULL,
    mlflow_run_id        VARCHAR NOT NULL,
    held_out_exact_match DOUBLE,
    held_out_nll         DOUBLE,
    registered_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model_name, version)
);

-- The leaderboard is a query: every evaluated candidate with its split means and cost, best first.
CREATE VIEW leaderboard AS
SELECT
    e.base_model,
    e.suite_name,
    row_number() OVER (PARTITION BY e.base_model, e.suite_hash
                       ORDER BY e.held_out_exact_match DESC NULLS LAST, e.held_out_nll ASC NULLS LAST,
                                c.name) AS rank,
    c.name AS candidate,
    c.kind,
    c.method,
    json_array_length(c.members) AS members,
    round(e.held_in_exact_match, 4) AS held_in_em,
    round(e.held_out_exact_match, 4) AS held_out_em,
    round(e.held_in_nll, 4) AS held_in_nll,
    round(e.held_out_nll, 4) AS held_out_nll,
    round(e.build_s + e.eval_s, 2) AS seconds,
    round(e.peak_mb, 1) AS peak_mb,
    e.candidate_key,
    e.eval_key,
    e.mlflow_run_id,
    e.suite_hash
FROM evaluations e
JOIN candidates c USING (candidate_key);

-- The champion of each registered model: its latest registration (a version is registered only when it
-- beats the previous champion on held-out mean).
CREATE VIEW champions AS
SELECT r.model_name, r.version, c.name AS candidate, c.kind, r.held_out_exact_match, r.held_out_nll,
       r.candidate_key, r.mlflow_run_id, r.registered_at
FROM registrations r
JOIN candidates c USING (candidate_key)
QUALIFY row_number() OVER (PARTITION BY r.model_name ORDER BY r.registered_at DESC, r.version DESC) = 1;
