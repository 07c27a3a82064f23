"""streamrl.modules."""

__all__: list[str] = []
