"""raftkubectl commands (kubectl-shaped) over the SDK."""
