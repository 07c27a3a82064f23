"""Tensor specs: shapes, dtypes, domains and bounds of env inputs and outputs."""

__all__: list[str] = []
