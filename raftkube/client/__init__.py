"""raftkube.client."""
