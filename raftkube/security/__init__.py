"""Cluster security: PKI, tokens, RBAC, secrets at rest, gRPC authentication, audit log.

Nothing in this package knows the object schema: kinds and verbs are plain strings.
See README.md for the layout `raftkube init` writes and how the API server plugs it in.
"""
