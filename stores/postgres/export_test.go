package pgstore

// CleanupSQL is the batch that Cleanup runs, for tests that check its plan.
const CleanupSQL = cleanupSQL
