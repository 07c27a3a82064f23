"""The ``>>>`` examples in streamrl.modules docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streamrl.modules

_MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(streamrl.modules.__path__, prefix="streamrl.modules.")
)


@pytest.mark.parametrize("name", _MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
