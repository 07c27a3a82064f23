"""Pytest plugin for measuring renamed TorchRL tests against streamrl.

Loaded with ``-p measure_plugin`` (the harness dir is on PYTHONPATH).

* Maps ``streamrl.testing`` (and submodules) to the renamed copy of
  ``torchrl/testing`` found in $MEASURE_TESTING_DIR, without touching the
  streamrl checkout.
* If $MEASURE_STUBS names a json file ``{"module": ["name", ...]}``, installs a
  dummy object for each missing module/name so the test file can be collected.
  A stub used after collection raises ``MeasureStubUsed("STUB <module>.<name>")``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import os
import sys
import types

_TESTING_DIR = os.environ.get("MEASURE_TESTING_DIR")
_COLLECTED = [False]


class MeasureStubUsed(NotImplementedError):
    pass


class _TestingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "streamrl.testing" and not fullname.startswith(
            "streamrl.testing."
        ):
            return None
        rel = fullname.split(".")[2:]
        base = os.path.join(_TESTING_DIR, *rel)
        if os.path.isdir(base):
            return importlib.util.spec_from_file_location(
                fullname,
                os.path.join(base, "__init__.py"),
                submodule_search_locations=[base],
            )
        if os.path.exists(base + ".py"):
            return importlib.util.spec_from_file_location(fullname, base + ".py")
        return None


if _TESTING_DIR:
    sys.meta_path.insert(0, _TestingFinder())


class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _make_stub(f"{cls._stub_qual}.{name}")

    def __instancecheck__(cls, obj):
        return False


def _make_stub(qual):
    def __init__(self, *args, **kwargs):
        if _COLLECTED[0]:
            raise MeasureStubUsed(f"STUB {qual}")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _make_stub(f"{qual}.{name}")()

    def __call__(self, *args, **kwargs):
        if _COLLECTED[0]:
            raise MeasureStubUsed(f"STUB {qual}")
        return _make_stub(qual)()

    def __iter__(self):
        return iter(())

    ns = {
        "__init__": __init__,
        "__getattr__": __getattr__,
        "__call__": __call__,
        "__iter__": __iter__,
        "_stub_qual": qual,
    }
    return _StubMeta(qual.rsplit(".", 1)[-1], (), ns)


def _ensure_module(modname):
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as err:
        if err.name and err.name != modname and not modname.startswith(err.name):
            raise
    except ImportError:
        pass
    parent_name, _, leaf = modname.rpartition(".")
    mod = types.ModuleType(modname)
    mod.__path__ = []
    mod.__getattr__ = lambda n, _m=modname: (
        _make_stub(f"{_m}.{n}")
        if not n.startswith("__")
        else (_ for _ in ()).throw(AttributeError(n))
    )
    sys.modules[modname] = mod
    if parent_name:
        parent = _ensure_module(parent_name)
        setattr(parent, leaf, mod)
    return mod


def _install_stubs(path):
    with open(path) as f:
        stubs = json.load(f)
    for modname, names in stubs.items():
        mod = _ensure_module(modname)
        for name in names:
            try:
                present = hasattr(mod, name)
            except Exception:
                present = False
            if not present:
                setattr(mod, name, _make_stub(f"{modname}.{name}"))


_STUBS = os.environ.get("MEASURE_STUBS")
if _STUBS:
    _install_stubs(_STUBS)


def pytest_collection_finish(session):
    _COLLECTED[0] = True
