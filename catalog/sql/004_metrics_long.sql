-- Metrics stored long: one row per (evaluation, task, metric), so a new metric needs no new column.
-- Split means are derived from the task rows (a macro average: every task weighs the same), and ranks
-- are written by the orchestrating code with its one ranking rule (zoo.eval.ranking), never computed
-- here. Existing evaluations move over: their task scores become rows, and their stored split means are
-- checked against the derived ones before the wide columns are dropped (a mismatch stops the migration).

CREATE TABLE evaluation_metrics (
    eval_key VARCHAR NOT NULL,
    task     VARCHAR NOT NULL,
    metric   VARCHAR NOT NULL,               -- a registered metric: exact_match, nll, ...
    value    DOUBLE,                         -- NULL: not measured (e.g. no generation)
    PRIMARY KEY (eval_key, task, metric)
);

INSERT INTO evaluation_metrics
SELECT eval_key, task, 'exact_match', exact_match FROM evaluation_tasks
UNION ALL
SELECT eval_key, task, 'nll', nll FROM evaluation_tasks;

-- The rank of each evaluation among those of its base model and suite, best first.
CREATE TABLE evaluation_ranks (
    eval_key VARCHAR PRIMARY KEY,
    rank     INTEGER NOT NULL
);

CREATE VIEW evaluation_means AS
SELECT t.eval_key, t.split, m.metric, avg(m.value) AS value, count(DISTINCT t.task) AS tasks
FROM evaluation_tasks t
JOIN evaluation_metrics m USING (eval_key, task)
GROUP BY t.eval_key, t.split, m.metric;

CREATE TEMP MACRO same_mean(stored, derived) AS (stored IS NOT DISTINCT FROM derived OR abs(stored - derived) <= 1e-9);
CREATE TEMP TABLE derived_means AS
SELECT eval_key,
       max(value) FILTER (split = 'held-in' AND metric = 'exact_match') AS held_in_exact_match,
       max(value) FILTER (split = 'held-out' AND metric = 'exact_match') AS held_out_exact_match,
       max(value) FILTER (split = 'held-in' AND metric = 'nll') AS held_in_nll,
       max(value) FILTER (split = 'held-out' AND metric = 'nll') AS held_out_nll
FROM evaluation_means
GROUP BY eval_key;
CREATE TEMP TABLE mismatched_means AS
SELECT error('evaluation ' || e.eval_key || ': its stored split means differ from the means of its task rows; '
             || 'delete that evaluation (it is re-scored) and open the catalog again') AS failure
FROM evaluations e
LEFT JOIN derived_means d USING (eval_key)
WHERE NOT (same_mean(e.held_in_exact_match, d.held_in_exact_match)
           AND same_mean(e.held_out_exact_match, d.held_out_exact_match)
           AND same_mean(e.held_in_nll, d.held_in_nll)
           AND same_mean(e.held_out_nll, d.held_out_nll));
DROP TABLE mismatched_means;
DROP TABLE derived_means;
DROP MACRO same_mean;

-- Views read the columns below at query time, so the one that does goes before they are dropped.
DROP VIEW leaderboard;
ALTER TABLE evaluations DROP COLUMN held_in_exact_match;
ALTER TABLE evaluations DROP COLUMN held_out_exact_match;
ALTER TABLE evaluations DROP COLUMN held_in_nll;
ALTER TABLE evaluations DROP COLUMN held_out_nll;
ALTER TABLE evaluation_tasks DROP COLUMN exact_match;
ALTER TABLE evaluation_tasks DROP COLUMN nll;

-- For people: one row per task with every metric in a map (``metrics['exact_match']``).
CREATE VIEW evaluation_scores AS
SELECT t.eval_key, t.task, t.split, t.n,
       map_from_entries(list((m.metric, m.value) ORDER BY m.metric)) AS metrics
FROM evaluation_tasks t
JOIN evaluation_metrics m USING (eval_key, task)
GROUP BY t.eval_key, t.task, t.split, t.n;

-- Every evaluated candidate with its stored rank: the two ranked metrics' split means as columns, every
-- metric's means in the maps ``held_in`` and ``held_out``. ``rank`` is NULL until the orchestrating code
-- ranks the new evaluation (it does whenever it shows or registers from the leaderboard).
CREATE VIEW leaderboard AS
WITH means AS (
    SELECT eval_key,
           map_from_entries(list((metric, value) ORDER BY metric) FILTER (split = 'held-in')) AS held_in,
           map_from_entries(list((metric, value) ORDER BY metric) FILTER (split = 'held-out')) AS held_out
    FROM evaluation_means
    GROUP BY eval_key
)
SELECT
    e.base_model,
    e.suite_name,
    r.rank,
    c.name AS candidate,
    c.kind,
    c.method,
    json_array_length(c.members) AS members,
    round(m.held_in['exact_match'], 4) AS held_in_em,
    round(m.held_out['exact_match'], 4) AS held_out_em,
    round(m.held_in['nll'], 4) AS held_in_nll,
    round(m.held_out['nll'], 4) AS held_out_nll,
    round(e.build_s + e.eval_s, 2) AS seconds,
    round(e.peak_mb, 1) AS peak_mb,
    m.held_in,
    m.held_out,
    e.candidate_key,
    e.eval_key,
    e.mlflow_run_id,
    e.suite_hash
FROM evaluations e
JOIN candidates c USING (candidate_key)
LEFT JOIN means m USING (eval_key)
LEFT JOIN evaluation_ranks r USING (eval_key);
