"""streamrl.envs."""

__all__: list[str] = []
