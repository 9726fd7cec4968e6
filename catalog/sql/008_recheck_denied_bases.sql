-- An adapter whose base model refused the crawl's credentials (a gated or private base) is left 'unchecked'
-- against it, and is now read again by a crawl with other credentials, as gated adapters are (issue 14):
-- `adapters.credentials` also records the credentials a base model was refused to. Those recorded before
-- did not say which credentials they were read with: marked 'unknown', the next crawl reads them once more.
UPDATE adapters SET credentials = 'unknown'
WHERE credentials IS NULL
  AND status = 'ok'
  AND regexp_matches(base_check, '^unchecked: base model .* not readable \(.*HTTP 40[13]');  -- 401/403: refused
