"""Shared pytest fixtures."""

import os

import pytest
import torch

# TorchRL scripts (they import torchrl): run by tests/torchrl_ports/test_ports.py, never imported
collect_ignore_glob = ["torchrl_ports/scripts/*"]

# streamrl's TorchRL-style reminders (e.g. a loss with target parameters but no target
# updater) are for users; the suite builds such losses on purpose. Tests of the reminders
# turn them back on with monkeypatch.setenv("RL_WARNINGS", "1").
os.environ.setdefault("RL_WARNINGS", "0")


@pytest.fixture(autouse=True)
def _restore_distribution_validation():
    # torch.compile turns torch.distributions' argument validation off for the whole process
    # (dynamo sets Distribution's default); tests that compile must not change what later
    # tests see
    before = torch.distributions.Distribution._validate_args
    yield
    torch.distributions.Distribution.set_default_validate_args(before)


@pytest.fixture(scope="module")
def ray_local(request):
    """A local Ray (2 CPUs) for the test module, shut down after it; the module, and the
    modules its ``RAY_BY_VALUE`` names, are sent to Ray's workers by value."""
    from tests.ray_support import local_ray

    by_value = (request.module.__name__, *getattr(request.module, "RAY_BY_VALUE", ()))
    with local_ray(*by_value) as ray:
        yield ray


@pytest.fixture
def ray(ray_local):
    """Ray, checked after the test: no actor of the test is left."""
    from tests.ray_support import assert_no_actors

    yield ray_local
    assert_no_actors(ray_local)
