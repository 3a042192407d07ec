"""Publish the marts to a read-only analysts file (work in progress)."""
