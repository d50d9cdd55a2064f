"""Command-line entry points: `raftkube` (daemons, cluster tools) and `raftkubectl` (users)."""
