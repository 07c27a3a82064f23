"""streamrl.collectors."""

__all__: list[str] = []
