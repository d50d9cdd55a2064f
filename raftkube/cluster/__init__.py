"""Bringing clusters up and down: `raftkube up` / `raftkube down` on one machine."""
