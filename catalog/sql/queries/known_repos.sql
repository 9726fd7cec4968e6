-- What the crawler needs to plan a crawl: each repo's listing fingerprint and what its adapter was read at.
SELECT
    r.repo_id,
    r.listing_digest,
    r.removed,
    a.sha,
    a.status,
    a.reader_version,
    a.weights_verified
FROM hub_repos r
LEFT JOIN adapters a USING (repo_id)
ORDER BY r.repo_id;
