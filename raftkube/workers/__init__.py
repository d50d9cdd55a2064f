"""raftkube.workers."""
