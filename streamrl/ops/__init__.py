"""streamrl.ops."""

__all__: list[str] = []
