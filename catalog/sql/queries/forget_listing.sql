DELETE FROM listing_members
WHERE scope = $scope;
