-- Supported adapters of one base model, at the commit the crawl read, with the datasets their cards name.
SELECT o.repo_id, a.sha, o.datasets
FROM adapter_overview o
JOIN adapters a USING (repo_id)
WHERE o.status = 'ok' AND o.base_model = $base_model
ORDER BY o.repo_id;
