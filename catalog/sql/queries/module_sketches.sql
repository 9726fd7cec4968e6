-- The stored sketches of the given adapters (repo, folder) at the given commits, for clustering without weights.
SELECT m.repo_id, m.subfolder, m.module, m.sketch
FROM module_fingerprints m
JOIN (SELECT unnest($repo_ids) AS repo_id, unnest($subfolders) AS subfolder, unnest($shas) AS sha) w
  USING (repo_id, subfolder, sha)
WHERE m.version = $version
ORDER BY m.repo_id, m.subfolder, m.module;
