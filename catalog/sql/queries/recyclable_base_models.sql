-- Base models with at least $min_adapters supported adapters (in subfolders too): what `recycle` works on by default.
SELECT base_model, count(*) AS adapters
FROM adapter_folders
WHERE status = 'ok' AND base_model IS NOT NULL
GROUP BY base_model
HAVING count(*) >= $min_adapters
ORDER BY adapters DESC, base_model;
