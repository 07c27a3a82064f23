"""Replay buffers: storages, samplers, writers, rate limiters and loaders."""

__all__: list[str] = []
