-- The stored sketches of the given adapters at the given commits, for clustering without weights.
SELECT m.repo_id, m.module, m.sketch
FROM module_fingerprints m
JOIN (SELECT unnest($repo_ids) AS repo_id, unnest($shas) AS sha) w USING (repo_id, sha)
WHERE m.version = $version
ORDER BY m.repo_id, m.module;
