SELECT repo_id
FROM listing_members
WHERE scope = $scope
ORDER BY repo_id;
