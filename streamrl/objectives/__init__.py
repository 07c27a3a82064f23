"""streamrl.objectives."""

__all__: list[str] = []
