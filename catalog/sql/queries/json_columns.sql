SELECT column_name
FROM duckdb_columns()
WHERE schema_name = 'main' AND table_name = $table_name AND data_type = 'JSON';
