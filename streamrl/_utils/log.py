"""streamrl's logger and the environment switches that tune what it says.

``RL_LOGGING_LEVEL`` sets the level of :data:`logger` (default ``INFO``), ``VERBOSE`` turns on
the extra messages a few components print, and ``RL_WARNINGS`` (default on) lets streamrl emit
its warnings. The names are TorchRL's, so a script that reads them keeps working.
"""

from __future__ import annotations

import logging
import os
import sys

_TRUE = ("y", "yes", "t", "true", "on", "1")
_FALSE = ("n", "no", "f", "false", "off", "0")


def strtobool(value: str) -> bool:
    """``"yes"``/``"true"``/``"1"``... -> True, ``"no"``/``"false"``/``"0"``... -> False.

    >>> strtobool("On"), strtobool("0")
    (True, False)
    """
    if not isinstance(value, str):
        raise TypeError(f"strtobool needs a str, found {type(value).__name__}")
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected one of {_TRUE + _FALSE} (any case), found {value!r}")


def _make_logger() -> logging.Logger:
    log = logging.getLogger("streamrl")
    level_name = os.environ.get("RL_LOGGING_LEVEL", "INFO").upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise ValueError(
            f"RL_LOGGING_LEVEL must name a logging level (DEBUG, INFO, WARNING, ERROR, "
            f"CRITICAL), found {level_name!r}"
        )
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s [%(name)s][%(levelname)s] %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    return log


logger = _make_logger()
"""The ``streamrl`` :class:`logging.Logger` (``from streamrl._utils import logger``)."""

VERBOSE: bool = strtobool(os.environ.get("VERBOSE", str(logger.isEnabledFor(logging.DEBUG))))
"""Whether the ``VERBOSE`` environment variable asks for extra messages."""

RL_WARNINGS: bool = strtobool(os.environ.get("RL_WARNINGS", "1"))
"""Whether the ``RL_WARNINGS`` environment variable (default on) lets streamrl warn."""


def rl_warnings() -> bool:
    """Whether streamrl may warn, as the ``RL_WARNINGS`` environment variable says now.

    >>> isinstance(rl_warnings(), bool)
    True
    """
    return strtobool(os.environ.get("RL_WARNINGS", "1"))
