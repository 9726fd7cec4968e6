UPDATE crawl_runs
SET finished_at = $finished_at,
    status = $status,
    error = $error,
    seen = $seen,
    new = $new,
    updated = $updated,
    unchanged = $unchanged,
    failed = $failed,
    removed = $removed,
    renamed = $renamed,
    rate_limited = $rate_limited,
    http_requests = $http_requests
WHERE run_id = $run_id;
