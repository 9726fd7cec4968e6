-- Adapters in subfolders of a repo (PEFT's named adapters, a trainer's checkpoints) are experts of their own
-- downstream of the crawl too (issue 14): fingerprints and cluster members are keyed by (repo_id, subfolder),
-- '' for the adapter at a repo's root, as adapters are since 005. Candidates name their members by adapter id
-- (the repo id, with '/<subfolder>' for one in a subfolder) in their JSON `members`: no change of schema.

CREATE TABLE adapter_fingerprints_007 (
    repo_id        VARCHAR NOT NULL,
    subfolder      VARCHAR NOT NULL DEFAULT '',  -- the adapter's folder in the repo; '' at its root
    sha            VARCHAR NOT NULL,
    version        INTEGER NOT NULL,
    base_model     VARCHAR NOT NULL,
    status         VARCHAR NOT NULL CHECK (status IN ('ok', 'failed')),
    reason         VARCHAR,
    norm           DOUBLE,
    module_count   INTEGER,
    parameter_count BIGINT,
    sketch_size    INTEGER,
    sketch_seed    INTEGER,
    PRIMARY KEY (repo_id, subfolder, sha, version)
);
INSERT INTO adapter_fingerprints_007 BY NAME SELECT * FROM adapter_fingerprints;
DROP TABLE adapter_fingerprints;
ALTER TABLE adapter_fingerprints_007 RENAME TO adapter_fingerprints;

CREATE TABLE module_fingerprints_007 (
    repo_id     VARCHAR NOT NULL,
    subfolder   VARCHAR NOT NULL DEFAULT '',
    sha         VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    module      VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,
    d_in        BIGINT NOT NULL,
    d_out       BIGINT NOT NULL,
    norm        DOUBLE NOT NULL,
    sigma_1     DOUBLE NOT NULL,
    sigma_ratio DOUBLE NOT NULL,
    prototype   FLOAT[] NOT NULL,
    sketch      FLOAT[] NOT NULL,
    PRIMARY KEY (repo_id, subfolder, sha, version, module)
);
INSERT INTO module_fingerprints_007 BY NAME SELECT * FROM module_fingerprints;
DROP TABLE module_fingerprints;
ALTER TABLE module_fingerprints_007 RENAME TO module_fingerprints;

CREATE TABLE cluster_members_007 (
    clustering_id VARCHAR NOT NULL,
    repo_id       VARCHAR NOT NULL,
    subfolder     VARCHAR NOT NULL DEFAULT '',
    sha           VARCHAR NOT NULL,
    cluster       INTEGER NOT NULL,
    PRIMARY KEY (clustering_id, repo_id, subfolder)
);
INSERT INTO cluster_members_007 BY NAME SELECT * FROM cluster_members;
DROP TABLE cluster_members;
ALTER TABLE cluster_members_007 RENAME TO cluster_members;
