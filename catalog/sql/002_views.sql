-- Views for the questions users ask first. Removed repos are left out of all of them.

-- One row per adapter repo with what a user filters on.
CREATE VIEW adapter_overview AS
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
    r.downloads,
    r.likes,
    r.sha,
    r.last_modified,
    (SELECT list(d.dataset_id ORDER BY d.dataset_id) FROM card_datasets d WHERE d.repo_id = r.repo_id) AS datasets
FROM hub_repos r
JOIN adapters a USING (repo_id)
WHERE NOT r.removed;

CREATE VIEW adapters_per_base_model AS
SELECT
    base_model,
    count(*) AS adapters,
    count(*) FILTER (WHERE status = 'ok') AS usable,
    count(*) FILTER (WHERE status <> 'ok') AS broken,
    list(DISTINCT r ORDER BY r) FILTER (WHERE r IS NOT NULL) AS ranks,
    sum(downloads)::BIGINT AS downloads
FROM adapter_overview
GROUP BY base_model
ORDER BY adapters DESC, base_model;

CREATE VIEW adapters_per_license AS
SELECT
    coalesce(license, 'unknown') AS license,
    count(*) AS adapters,
    count(*) FILTER (WHERE status = 'ok') AS usable
FROM adapter_overview
GROUP BY 1
ORDER BY adapters DESC, license;

CREATE VIEW broken_adapters AS
SELECT repo_id, base_model, status, reason, sha
FROM adapter_overview
WHERE status <> 'ok'
ORDER BY status, repo_id;

CREATE VIEW broken_reasons AS
SELECT status, reason, count(*) AS adapters
FROM broken_adapters
GROUP BY status, reason
ORDER BY adapters DESC, status, reason;
