-- Renamed repos: removed under their old id, which points to the new one.
UPDATE hub_repos
SET removed = true, renamed_to = m.new_id
FROM (SELECT unnest($old_ids::VARCHAR[]) AS old_id, unnest($new_ids::VARCHAR[]) AS new_id) m
WHERE hub_repos.repo_id = m.old_id;
