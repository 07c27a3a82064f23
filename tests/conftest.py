"""Shared pytest fixtures."""

import faulthandler
import os
import sys

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


def pytest_configure(config):
    _receive_sigint()
    # A native crash (SIGSEGV, SIGABRT...) kills the test process before pytest reports:
    # with STREAMRL_FAULT_LOG set (.ci/test sets it and runs pytest without its own
    # faulthandler plugin), every thread's Python stack goes to that file, which .ci/test
    # prints when pytest fails. pytest's plugin writes to the terminal's stderr, which a
    # captured run can lose.
    path = os.environ.get("STREAMRL_FAULT_LOG")
    if path:
        config._streamrl_fault_log = open(path, "a")  # kept open for the session
        faulthandler.enable(config._streamrl_fault_log, all_threads=True)


# test modules that start a local Ray (a fixture named ray_local, this one or their own, which
# goes through tests.ray_support.local_ray): one module's Ray is kept for the next such module
_local_ray_modules: set[str] = set()


def _module(item) -> str | None:
    module = getattr(item, "module", None)  # doctest items have none
    return None if module is None else module.__name__


def pytest_collection_modifyitems(items):
    _local_ray_modules.update(_module(i) for i in items
                              if "ray_local" in getattr(i, "fixturenames", ()))


def pytest_runtest_setup(item):
    if _module(item) not in _local_ray_modules and "tests.ray_support" in sys.modules:
        sys.modules["tests.ray_support"].release_kept()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    from tests import ray_support

    ray_support.keep_for_next = (nextitem is not None and _module(nextitem) != _module(item)
                                 and _module(nextitem) in _local_ray_modules)
    try:
        yield
    finally:
        ray_support.keep_for_next = False


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


def _receive_sigint() -> None:
    """Give this process Python's SIGINT handler, unblocked, when it was started without it.

    A non-interactive shell starts a background job (``cmd &``) with SIGINT ignored, and an
    ignored or blocked signal is inherited by every process started from here. The Ctrl-C
    tests (``test_keyboard_interrupt_*``, ``test_ctrl_c_*``: in this process, and in runs they
    start and signal) would then fail or wait out their timeout, which says nothing about the
    code. The suite sends SIGINT only to what it started."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
