-- The hub crawl: what each crawl did (crawl_runs), what the hub holds (hub_repos and the datasets
-- their cards name, card_datasets), what each adapter repo contains (adapters, adapter_modules), and
-- which repos each complete listing returned (listing_members, so that a repo that vanished from the
-- hub can be marked removed).
--
-- Only crawl_runs holds per-run facts (times, counts). Every other table describes the hub as of its
-- commits, so re-crawling an unchanged hub leaves their content byte-for-byte equal.

CREATE TABLE crawl_runs (
    run_id        VARCHAR PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    endpoint      VARCHAR NOT NULL,
    query         JSON NOT NULL,            -- base models, search, author, limit, mode
    status        VARCHAR NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    seen          INTEGER NOT NULL DEFAULT 0, -- repos the listing returned
    new           INTEGER NOT NULL DEFAULT 0, -- not in the catalog before
    updated       INTEGER NOT NULL DEFAULT 0, -- known, but at another commit (or needing a re-read)
    unchanged     INTEGER NOT NULL DEFAULT 0, -- known at the same commit: not fetched
    failed        INTEGER NOT NULL DEFAULT 0, -- fetch failed after retries; re-tried next crawl
    removed       INTEGER NOT NULL DEFAULT 0, -- gone from the hub since the previous complete listing
    http_requests BIGINT NOT NULL DEFAULT 0,
    error         VARCHAR                   -- why the run failed, when it did
);

CREATE TABLE hub_repos (
    repo_id        VARCHAR PRIMARY KEY,
    sha            VARCHAR,
    listing_digest VARCHAR,                 -- fingerprint of the listing entry: unchanged rows are not rewritten
    last_modified  TIMESTAMPTZ,
    created_at     TIMESTAMPTZ,
    author         VARCHAR,
    downloads      BIGINT,
    likes          BIGINT,
    license        VARCHAR,
    tags           VARCHAR[],
    library_name   VARCHAR,
    pipeline_tag   VARCHAR,
    base_models    VARCHAR[],               -- the card's base_model (one or several)
    gated          VARCHAR,                 -- 'false', 'auto' or 'manual'
    private        BOOLEAN,
    card_data      JSON,                    -- the README's YAML front matter
    files          VARCHAR[],               -- file names as listed (never used as local paths)
    removed        BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE adapters (
    repo_id             VARCHAR PRIMARY KEY,
    sha                 VARCHAR NOT NULL,   -- the commit these facts were read at
    reader_version      INTEGER NOT NULL,   -- version of the crawler's reading rules; older rows are re-read
    status              VARCHAR NOT NULL CHECK (status IN ('ok', 'unsupported', 'invalid', 'failed')),
    reason              VARCHAR,            -- why not ok
    peft_type           VARCHAR,
    r                   INTEGER,
    lora_alpha          DOUBLE,
    use_rslora          BOOLEAN,
    use_dora            BOOLEAN,
    target_modules      VARCHAR[],          -- module-name suffixes, as in the config
    target_regex        VARCHAR,            -- when the config targets modules by regex instead
    rank_pattern        JSON,
    alpha_pattern       JSON,
    fan_in_fan_out      BOOLEAN,
    bias                VARCHAR,
    task_type           VARCHAR,
    declared_base_model VARCHAR,            -- base_model_name_or_path of the config
    config              JSON,               -- adapter_config.json as read (NaN/Infinity kept as strings)
    weight_file         VARCHAR,
    weight_bytes        BIGINT,
    dtype               VARCHAR,            -- of the LoRA tensors; 'mixed' when they differ
    parameter_count     BIGINT,
    module_count        INTEGER,
    base_check          VARCHAR,            -- shapes vs the base model: 'fits', 'mismatch' or 'unchecked: <why>'
    weights_verified    BOOLEAN NOT NULL    -- every value was read and found finite (--verify-weights)
);

CREATE TABLE adapter_modules (
    repo_id         VARCHAR NOT NULL,
    module          VARCHAR NOT NULL,       -- base-model module name, e.g. model.layers.0.self_attn.q_proj
    rank            INTEGER NOT NULL,
    d_in            BIGINT NOT NULL,
    d_out           BIGINT NOT NULL,
    dtype           VARCHAR NOT NULL,
    alpha           DOUBLE,                 -- after alpha_pattern
    scale           DOUBLE,                 -- alpha / r, or alpha / sqrt(r) with rsLoRA
    PRIMARY KEY (repo_id, module)
);

CREATE TABLE card_datasets (
    repo_id    VARCHAR NOT NULL,
    dataset_id VARCHAR NOT NULL,            -- as named by the card's `datasets`
    PRIMARY KEY (repo_id, dataset_id)
);

CREATE TABLE listing_members (
    scope   VARCHAR NOT NULL,               -- endpoint + canonical query of a complete listing
    repo_id VARCHAR NOT NULL,
    PRIMARY KEY (scope, repo_id)
);
