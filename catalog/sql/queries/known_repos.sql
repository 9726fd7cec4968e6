-- What the crawler needs to plan a crawl, per repo: its listing fingerprint and stats, and what its
-- adapters (one per folder) were read at. The status is the one that most calls for a re-read.
SELECT
    r.repo_id,
    r.listing_digest,
    r.removed,
    s.downloads,
    s.likes,
    max(a.sha) AS sha,
    CASE
        WHEN bool_or(a.status = 'failed') THEN 'failed'
        WHEN bool_or(a.status = 'gated') THEN 'gated'
        WHEN bool_or(a.status = 'forbidden') THEN 'forbidden'
        WHEN bool_or(a.status = 'ok') THEN 'ok'
        ELSE min(a.status)
    END AS status,
    min(a.reader_version) AS reader_version,
    coalesce(bool_and(a.weights_verified) FILTER (WHERE a.status = 'ok'), false) AS weights_verified,
    max(a.credentials) AS credentials
FROM hub_repos r
LEFT JOIN adapters a USING (repo_id)
LEFT JOIN repo_stats s USING (repo_id)
GROUP BY r.repo_id, r.listing_digest, r.removed, s.downloads, s.likes
ORDER BY r.repo_id;
