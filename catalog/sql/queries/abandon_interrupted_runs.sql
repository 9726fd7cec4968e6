UPDATE crawl_runs
SET status = 'failed', error = 'interrupted: the process ended before the run was closed'
WHERE status = 'running';
