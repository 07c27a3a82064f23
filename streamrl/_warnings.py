"""The one warning category streamrl emits (tests turn it into an error)."""


class StreamRLWarning(UserWarning):
    """A warning raised by streamrl itself."""
