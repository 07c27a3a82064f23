"""streamrl._utils: TorchRL's torchrl._utils helpers (timeit, compile_with_warmup, logger...)."""

from __future__ import annotations

import logging
import time

import pytest
import torch

import streamrl
from streamrl import _utils
from streamrl._utils import (
    compile_with_warmup,
    get_available_device,
    rl_warnings,
    seed_generator,
    strtobool,
    timeit,
)


@pytest.fixture(autouse=True)
def _clean_timers():
    timeit.erase()
    yield
    timeit.erase()


def test_timeit_context_decorator_and_start_accumulate_per_name():
    with timeit("a"):
        time.sleep(0.01)
    with timeit("a"):
        pass

    @timeit("b")
    def f(x):
        return x + 1

    assert [f(1), f(2), f(3)] == [2, 3, 4]
    t = timeit("c").start()
    time.sleep(0.005)
    assert t.elapsed() >= 0.004
    span = t.stop()
    assert span >= 0.004
    assert (timeit.count("a"), timeit.count("b"), timeit.count("c"), timeit.count("z")) == (2, 3, 1, 0)
    total = timeit.todict(percall=False)
    per_call = timeit.todict()
    assert set(total) == {"a", "b", "c"}
    assert total["a"] >= 0.01 and per_call["a"] == pytest.approx(total["a"] / 2)
    assert set(timeit.todict(prefix="time")) == {"time/a", "time/b", "time/c"}


def test_timeit_records_when_the_block_raises():
    with pytest.raises(ZeroDivisionError):
        with timeit("boom"):
            raise ZeroDivisionError
    assert timeit.count("boom") == 1


def test_timeit_print_logs_every_row(caplog):
    with timeit("x"):
        pass
    logger = logging.getLogger("streamrl")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="streamrl"):
            text = timeit.print(prefix="p")
    finally:
        logger.removeHandler(caplog.handler)
    assert text.startswith("p/x took") and "1 calls" in text
    assert "p/x took" in caplog.text
    timeit.erase()
    assert timeit.print() == "" and timeit.todict() == {}


def test_timeit_printevery_prints_num_prints_times(monkeypatch):
    printed = []
    monkeypatch.setattr(timeit, "print", classmethod(lambda cls, prefix=None: printed.append(prefix) or ""))
    with timeit("x"):
        pass
    for _ in range(10):
        timeit.printevery(num_prints=2, total_count=10, prefix="it")
    assert printed == ["it", "it"]
    with pytest.raises(ValueError, match="num_prints >= 1"):
        timeit.printevery(0, 10)


def test_timeit_bad_input():
    with pytest.raises(TypeError, match="non-empty str"):
        timeit("")
    with pytest.raises(RuntimeError, match="not started"):
        timeit("never").elapsed()


def test_compile_with_warmup_runs_eagerly_then_compiles(monkeypatch):
    compiled_with = []

    def fake_compile(fn, **kwargs):
        compiled_with.append(kwargs)
        return lambda *a, **k: ("compiled", fn(*a, **k))

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = torch.nn.Linear(3, 2)
    run = compile_with_warmup(model, warmup=2, mode="reduce-overhead")
    x = torch.ones(3)
    first, second = run(x), run(x)
    assert isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
    tag, out = run(x)
    assert tag == "compiled" and torch.equal(out, model(x))
    run(x)
    assert compiled_with == [{"mode": "reduce-overhead"}]  # compiled once


def test_compile_with_warmup_as_decorator_and_zero_warmup(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: lambda *a: ("compiled", fn(*a)))

    @compile_with_warmup(warmup=0)
    def f(x):
        return x * 2

    assert f(3) == ("compiled", 6)
    with pytest.raises(ValueError, match="warmup must be an int >= 0"):
        compile_with_warmup(f, warmup=-1)
    with pytest.raises(TypeError, match="callable model"):
        compile_with_warmup(3)


def test_compile_with_warmup_with_the_real_compiler():
    calls = []

    def double(x):
        calls.append(1)
        return 2 * x

    run = compile_with_warmup(double, warmup=1, backend="eager")
    outs = [run(torch.arange(3.0)) for _ in range(3)]
    assert all(torch.equal(o, torch.tensor([0.0, 2.0, 4.0])) for o in outs)


def test_implement_for_picks_the_installed_version():
    @_utils.implement_for("torch", from_version="1.0")
    def which():
        return "new"

    @_utils.implement_for("torch", from_version=None, to_version="1.0")
    def which():  # noqa: F811
        return "old"

    assert which() == "new"

    @_utils.implement_for("a_module_that_is_not_installed_xyz")
    def missing():
        return 1

    with pytest.raises(ModuleNotFoundError):
        missing()


def test_logger_and_switches(monkeypatch):
    assert _utils.logger.name == "streamrl"
    assert streamrl.logger is _utils.logger and streamrl.streamrl_logger is _utils.logger
    monkeypatch.setenv("RL_WARNINGS", "0")
    assert rl_warnings() is False
    monkeypatch.setenv("RL_WARNINGS", "yes")
    assert rl_warnings() is True
    assert isinstance(_utils.VERBOSE, bool) and isinstance(_utils.RL_WARNINGS, bool)
    assert (strtobool("TRUE"), strtobool(" off ")) == (True, False)
    with pytest.raises(ValueError, match="expected one of"):
        strtobool("maybe")


def test_devices_and_seeds():
    assert get_available_device() == torch.device(get_available_device(return_str=True))
    chain = [seed_generator(7)]
    chain.append(seed_generator(chain[-1]))
    assert chain == [seed_generator(7), seed_generator(seed_generator(7))]
    assert len(set(chain)) == 2 and all(0 <= s < 2**32 for s in chain)
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_generator(1.5)


def test_top_level_names_are_torchrl_s():
    assert streamrl.timeit is timeit and streamrl.compile_with_warmup is compile_with_warmup
    assert streamrl.implement_for is _utils.implement_for
    assert streamrl.is_dynamo_compiling() is False
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        streamrl.nope  # noqa: B018
