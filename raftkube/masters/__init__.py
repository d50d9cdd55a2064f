"""raftkube.masters."""
