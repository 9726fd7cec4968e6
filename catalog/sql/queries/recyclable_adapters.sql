-- Supported adapters of one base model (those in subfolders of a repo included), at the commit the crawl
-- read, with the datasets their repo's card names.
SELECT f.repo_id, f.subfolder, f.sha,
       (SELECT list(d.dataset_id ORDER BY d.dataset_id) FROM card_datasets d WHERE d.repo_id = f.repo_id) AS datasets
FROM adapter_folders f
WHERE f.status = 'ok' AND f.base_model = $base_model
ORDER BY f.repo_id, f.subfolder;
