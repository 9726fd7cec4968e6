UPDATE hub_repos
SET removed = true
WHERE repo_id IN (SELECT unnest($repo_ids::VARCHAR[]));
