"""raftkube: a container orchestrator in the shape of Kubernetes on its own Raft log."""

__version__ = "0.1.0"
