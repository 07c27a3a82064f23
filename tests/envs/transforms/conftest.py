"""Fixtures for the transform tests (the env itself is in ``transform_test_envs``)."""

from __future__ import annotations

import pytest
from transform_test_envs import CountingEnv


@pytest.fixture
def counting_env():
    """Factory of CountingEnv instances (closed at the end of the test)."""
    made = []

    def make(**kwargs):
        env = CountingEnv(**kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()
