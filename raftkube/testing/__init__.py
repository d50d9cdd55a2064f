"""raftkube.testing."""
