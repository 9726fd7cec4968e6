-- What the real hub taught the crawler (issue 14):
--  * repos are renamed: a removed repo may point to the id it moved to (hub_repos.renamed_to);
--  * repos are found in several ways: how each was (hub_repos.discovered_by);
--  * downloads and likes move daily: they live in repo_stats, so that a re-crawl of an unchanged hub
--    rewrites nothing else;
--  * access depends on the credentials: 'gated' and 'forbidden' adapters are read again when a crawl
--    runs with other credentials than those recorded (adapters.credentials, never the token itself);
--  * a repo may hold several adapters in subfolders: adapters and their modules are keyed by
--    (repo_id, subfolder), '' for the adapter at the repo's root.

ALTER TABLE crawl_runs ADD COLUMN renamed INTEGER NOT NULL DEFAULT 0;       -- removed repos that moved to another id
ALTER TABLE crawl_runs ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;  -- 429 answers (pacing keeps them rare)
ALTER TABLE hub_repos ADD COLUMN renamed_to VARCHAR;        -- the id a removed repo now redirects to
ALTER TABLE hub_repos ADD COLUMN discovered_by VARCHAR[];   -- 'peft', 'base_model:adapter', 'adapter_config.json'

CREATE TABLE repo_stats (
    repo_id   VARCHAR PRIMARY KEY,
    downloads BIGINT,
    likes     BIGINT
);
INSERT INTO repo_stats SELECT repo_id, downloads, likes FROM hub_repos;
ALTER TABLE hub_repos DROP COLUMN downloads;
ALTER TABLE hub_repos DROP COLUMN likes;
UPDATE hub_repos SET listing_digest = NULL;                 -- the digest no longer covers the stats

CREATE TABLE adapters_005 (
    repo_id             VARCHAR NOT NULL,
    subfolder           VARCHAR NOT NULL DEFAULT '',  -- the adapter's folder in the repo; '' at its root
    sha                 VARCHAR NOT NULL,
    reader_version      INTEGER NOT NULL,
    status              VARCHAR NOT NULL CHECK (status IN ('ok', 'unsupported', 'invalid', 'failed', 'gated', 'forbidden')),
    reason              VARCHAR,
    credentials         VARCHAR,            -- of a gated/forbidden read: 'anonymous' or a one-way digest of the token
    peft_type           VARCHAR,
    r                   INTEGER,
    lora_alpha          DOUBLE,
    use_rslora          BOOLEAN,
    use_dora            BOOLEAN,
    target_modules      VARCHAR[],
    target_regex        VARCHAR,
    rank_pattern        JSON,
    alpha_pattern       JSON,
    fan_in_fan_out      BOOLEAN,
    bias                VARCHAR,
    task_type           VARCHAR,
    declared_base_model VARCHAR,
    config              JSON,
    weight_file         VARCHAR,
    weight_bytes        BIGINT,
    dtype               VARCHAR,
    parameter_count     BIGINT,
    module_count        INTEGER,
    base_check          VARCHAR,
    weights_verified    BOOLEAN NOT NULL,
    PRIMARY KEY (repo_id, subfolder)
);
INSERT INTO adapters_005 BY NAME SELECT * FROM adapters;
DROP TABLE adapters;
ALTER TABLE adapters_005 RENAME TO adapters;

CREATE TABLE adapter_modules_005 (
    repo_id   VARCHAR NOT NULL,
    subfolder VARCHAR NOT NULL DEFAULT '',
    module    VARCHAR NOT NULL,
    rank      INTEGER NOT NULL,
    d_in      BIGINT NOT NULL,
    d_out     BIGINT NOT NULL,
    dtype     VARCHAR NOT NULL,
    alpha     DOUBLE,
    scale     DOUBLE,
    PRIMARY KEY (repo_id, subfolder, module)
);
INSERT INTO adapter_modules_005 BY NAME SELECT * FROM adapter_modules;
DROP TABLE adapter_modules;
ALTER TABLE adapter_modules_005 RENAME TO adapter_modules;

-- One row per adapter at a repo's root, as before (the pipeline downstream keys adapters by repo_id).
CREATE OR REPLACE VIEW adapter_overview AS
SELECT
    r.repo_id,
    coalesce(r.base_models[1], a.declared_base_model) AS base_model,
    r.license,
    a.status,
    a.reason,
    a.r,
    a.lora_alpha,
    a.use_rslora,
    a.target_modules,
    a.target_regex,
    a.task_type,
    a.dtype,
    a.parameter_count,
    a.weight_bytes,
    a.base_check,
    s.downloads,
    s.likes,
    r.sha,
    r.last_modified,
    (SELECT list(d.dataset_id ORDER BY d.dataset_id) FROM card_datasets d WHERE d.repo_id = r.repo_id) AS datasets
FROM hub_repos r
JOIN adapters a ON a.repo_id = r.repo_id AND a.subfolder = ''
LEFT JOIN repo_stats s ON s.repo_id = r.repo_id
WHERE NOT r.removed;

-- Every adapter, those in subfolders included, keyed by (repo_id, subfolder).
CREATE VIEW adapter_folders AS
SELECT
    r.repo_id,
    a.subfolder,
    coalesce(r.base_models[1], a.declared_base_model) AS base_model,
    a.status,
    a.reason,
    a.r,
    a.base_check,
    a.sha
FROM hub_repos r
JOIN adapters a USING (repo_id)
WHERE NOT r.removed;

-- Where each removed repo went, when it was renamed rather than deleted.
CREATE VIEW renamed_repos AS
SELECT repo_id AS old_id, renamed_to AS new_id
FROM hub_repos
WHERE removed AND renamed_to IS NOT NULL
ORDER BY old_id;
