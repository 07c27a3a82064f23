"""Wrappers around third-party environment libraries."""
