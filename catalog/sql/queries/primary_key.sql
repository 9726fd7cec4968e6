SELECT constraint_column_names
FROM duckdb_constraints()
WHERE schema_name = 'main' AND table_name = $table_name AND constraint_type = 'PRIMARY KEY';
