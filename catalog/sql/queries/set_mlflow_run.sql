UPDATE evaluations SET mlflow_run_id = $run_id WHERE eval_key = $eval_key;
