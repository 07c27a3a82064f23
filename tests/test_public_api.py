"""Every public name imports and is documented; every subpackage has an explicit ``__all__``."""

import importlib
import pkgutil

import pytest

import streamrl

_PACKAGES = sorted(
    m.name
    for m in pkgutil.walk_packages(streamrl.__path__, prefix="streamrl.")
    if m.ispkg and not any(part.startswith("_") for part in m.name.split("."))
)


def test_subpackages_exist():
    for name in ["graph", "data", "envs", "modules", "objectives", "ops", "collectors"]:
        assert f"streamrl.{name}" in _PACKAGES


@pytest.mark.parametrize("package", _PACKAGES)
def test_all_names_import_and_are_documented(package):
    mod = importlib.import_module(package)
    assert mod.__doc__, f"{package} has no module docstring"
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{package} defines no __all__"
    for name in names:
        obj = getattr(mod, name)  # raises if a listed name is missing
        if callable(obj) or isinstance(obj, type):
            assert getattr(obj, "__doc__", None), f"{package}.{name} has no docstring"
