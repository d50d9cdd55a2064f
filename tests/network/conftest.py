"""Fixtures of the networking data-path tests (real namespaces, see netns_fixtures)."""

from raftkube.testing.netns_fixtures import make_netns_cluster, netns_cluster

__all__ = ["make_netns_cluster", "netns_cluster"]
