"""raftkube.consensus."""
