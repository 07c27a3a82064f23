"""MuJoCo's OpenGL backend on a machine without a display.

MuJoCo (and dm_control, which wraps it) read ``MUJOCO_GL`` once, when they are first
imported; unset, they try a windowing backend (GLFW) that cannot render without a display.
:func:`ensure_gl_backend` (called when a MuJoCo-backed env is built, before MuJoCo is
imported) picks a headless backend where the user chose none: ``egl`` when libEGL is
installed, else ``osmesa``. Importing streamrl changes nothing. :func:`render_error` turns a failed first
render into an error that says what to set.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

# the libraries each headless backend loads
_HEADLESS = (("egl", "EGL"), ("osmesa", "OSMesa"))


def ensure_gl_backend() -> str | None:
    """Set ``MUJOCO_GL`` to a headless backend when it is unset, there is no display and
    MuJoCo was not imported yet (it would not read the variable again). Returns the backend
    in effect (None: MuJoCo picks its own)."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return chosen
    if "mujoco" in sys.modules:
        return None
    for backend, lib in _HEADLESS:
        if ctypes.util.find_library(lib):
            os.environ["MUJOCO_GL"] = backend
            return backend
    return None


def render_error(what: str, err: BaseException) -> RuntimeError:
    """The error raised when ``what`` could not render its first frame."""
    found = os.environ.get("MUJOCO_GL")
    return RuntimeError(
        f"{what} could not render a frame ({type(err).__name__}: {err}). Rendering MuJoCo "
        "without a display needs MUJOCO_GL=egl (libEGL) or MUJOCO_GL=osmesa (libOSMesa), set "
        f"before mujoco is first imported; found MUJOCO_GL={found!r}"
    )
