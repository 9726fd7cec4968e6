-- Supported adapters of one base model, at the commit the crawl read, with the datasets their cards name.
SELECT o.repo_id, a.sha, o.datasets
FROM adapter_overview o
JOIN adapters a ON a.repo_id = o.repo_id AND a.subfolder = ''  -- the root adapter: what adapter_overview shows
WHERE o.status = 'ok' AND o.base_model = $base_model
ORDER BY o.repo_id;
