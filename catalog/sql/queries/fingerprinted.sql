-- Adapters (repo, folder, commit) already fingerprinted under a version, failed ones included, with their sketch settings.
SELECT repo_id, subfolder, sha, status, sketch_size, sketch_seed FROM adapter_fingerprints WHERE version = $version;
