-- (repo, commit) pairs already fingerprinted under a version, failed ones included, with their sketch settings.
SELECT repo_id, sha, status, sketch_size, sketch_seed FROM adapter_fingerprints WHERE version = $version;
