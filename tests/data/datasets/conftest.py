"""A private Minari datasets directory and cache root for each test."""

from __future__ import annotations

import pytest

from tests.data.datasets.dataset_support import use_private_roots


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    """A private ``MINARI_DATASETS_PATH``; caches go to a private root too."""
    return use_private_roots(tmp_path, monkeypatch)
