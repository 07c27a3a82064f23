"""Wrappers around third-party environment libraries."""

__all__: list[str] = []
