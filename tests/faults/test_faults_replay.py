"""Fault injection for replay buffers: bad inputs and bad checkpoint files.

The promise checked throughout: a call that fails raises a clear error (``ValueError``,
``TypeError``, ``IndexError`` or ``RuntimeError`` naming what was expected and what was
found) and leaves the buffer exactly as it was: length, stored rows, sampler state (RNG,
priorities), writer cursor and write count, compared as a full snapshot before and after.
Loading also runs no code from a file. Buffers: plain, prioritized, slice and prioritized
slice samplers over tensor, memory-mapped and list storages.
"""

import itertools
import os
import random
import re
import shutil
from functools import partial

import pytest
import torch
from faults_replay_helpers import (
    SAMPLERS,
    STORAGES,
    Marker,
    assert_same,
    evil_pickle,
    make_buffer,
    rows,
    snapshot,
)
from tensordict import TensorDict

from streamrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    MinSize,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    ReplayBufferEnsemble,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
    TensorStorageCheckpointer,
)

KINDS = list(itertools.product(SAMPLERS, STORAGES))
TENSOR_KINDS = [(s, k) for s, k in KINDS if k != "list"]
PRIORITIZED = [(s, k) for s, k in KINDS if "prioritized" in s]
ERRORS = (ValueError, TypeError, IndexError, RuntimeError)


def _fails_cleanly(rb, call, match=None, error=ERRORS, what="the call"):
    """``call()`` raises ``error`` (message matching ``match``); ``rb`` is unchanged."""
    before = snapshot(rb)
    try:
        call()
    except error as err:
        assert match is None or re.search(match, str(err)), (
            f"{what}: message {str(err)!r} does not match {match!r}")
    else:
        pytest.fail(f"{what}: did not raise {error}")
    assert_same(before, snapshot(rb), f"snapshot after {what}")


def _bad_batches():
    good = rows(torch.arange(100, 105))
    return {
        "missing key": (good.exclude("obs"), "missing key.*'obs'"),
        "unexpected key": (good.clone().set("extra", torch.zeros(5)), "unexpected key.*'extra'"),
        "wrong shape": (good.clone().set("obs", torch.zeros(5, 4)), r"'obs' expected item shape \(3,\)"),
        "wrong dtype": (good.clone().set("obs", torch.zeros(5, 3, dtype=torch.float64)),
                        "'obs' expected .*float32.*found .*float64"),
        "nested wrong shape": (good.clone().set(("next", "reward"), torch.zeros(5, 2)),
                               r"\('next', 'reward'\) expected item shape \(1,\)"),
        "no batch dim": (good[0], "batch dim"),
        "a tensor": (torch.zeros(5, 3), "holds TensorDicts, found a tensor"),
        "a string": ("rows", "found str"),
    }


# -- add / extend ---------------------------------------------------------------------------
@pytest.mark.parametrize("sampler,storage", TENSOR_KINDS)
@pytest.mark.parametrize("bad", list(_bad_batches()))
def test_extend_bad_batch_writes_nothing(sampler, storage, bad, tmp_path):
    """Fault: ``extend`` of a batch with a missing or extra key, a wrong shape or dtype (also
    nested), no batch dim, or not a TensorDict. Promise: an error naming the key, what was
    expected and what was found; nothing written. Check: full snapshot before/after."""
    rb = make_buffer(sampler, storage, tmp_path)
    data, match = _bad_batches()[bad]
    _fails_cleanly(rb, partial(rb.extend, data), match)


@pytest.mark.parametrize("sampler,storage", TENSOR_KINDS)
def test_add_bad_item_writes_nothing(sampler, storage, tmp_path):
    """Fault: ``add`` of an item with a wrong shape, or of a non-tensor object. Promise: a
    clear error, nothing written. Check: snapshot."""
    rb = make_buffer(sampler, storage, tmp_path)
    _fails_cleanly(rb, lambda: rb.add(rows([7])[0].set("obs", torch.zeros(4))),
                   r"expected item shape \(3,\)")
    _fails_cleanly(rb, lambda: rb.add(object()), "found object")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_list_storage_refuses_non_sequences(sampler, tmp_path):
    """Fault: ``extend`` of a list storage with an object that is not a sequence. Promise:
    ``TypeError`` naming the type found; nothing written. Check: snapshot."""
    rb = make_buffer(sampler, "list", tmp_path)
    _fails_cleanly(rb, partial(rb.extend, 42), "found int", TypeError)


@pytest.mark.parametrize("sampler,storage", PRIORITIZED)
@pytest.mark.parametrize("value,match", [
    (float("nan"), "NaN"), (-1.0, ">= 0"), (float("inf"), "finite"),
])
def test_extend_bad_initial_priority_writes_nothing(sampler, storage, value, match, tmp_path):
    """Fault: a batch whose priority entry (``td_error``) holds NaN, a negative value or inf.
    Promise: ``ValueError`` before anything is written (no rows, no priorities, same
    cursor). Check: snapshot."""
    rb = make_buffer(sampler, storage, tmp_path)
    data = rows(torch.arange(100, 105)).set("td_error", torch.tensor([1.0, 2.0, value, 1.0, 1.0]))
    _fails_cleanly(rb, partial(rb.extend, data), match, ValueError)


# -- update_priority ------------------------------------------------------------------------
@pytest.mark.parametrize("sampler,storage", PRIORITIZED)
@pytest.mark.parametrize("index,priority,error,match", [
    ([0, 1], [float("nan"), 1.0], ValueError, "NaN"),
    ([0, 1], [-0.5, 1.0], ValueError, ">= 0"),
    ([0, 1], [float("inf"), 1.0], ValueError, "finite"),
    ([0, 1, 2], [1.0, 2.0], ValueError, "3 indices"),
    ([0, 64], [1.0, 1.0], IndexError, "64 out of range"),
    ([-1], [1.0], IndexError, "-1 out of range"),
    ([0.5, 1.0], [1.0, 1.0], TypeError, "integer"),
    ([True, False], [1.0, 1.0], TypeError, "integer"),
])
def test_update_priority_bad_input_changes_nothing(sampler, storage, index, priority, error,
                                                   match, tmp_path):
    """Fault: ``update_priority`` with NaN / negative / inf priorities, index and priority
    lengths that differ, out-of-range or non-integer indices. Promise: the error names the
    problem and no priority changes (the trees are updated only after every check). Check:
    snapshot (priorities are in the sampler state)."""
    rb = make_buffer(sampler, storage, tmp_path)
    _fails_cleanly(rb, lambda: rb.update_priority(torch.tensor(index), torch.tensor(priority)),
                   match, error)


@pytest.mark.parametrize("sampler", ["random", "slice"])
def test_update_priority_without_priorities_is_refused(sampler, tmp_path):
    """Fault: ``update_priority`` on a buffer whose sampler has no priorities. Promise:
    ``TypeError`` naming the sampler. Check: snapshot."""
    rb = make_buffer(sampler, "tensor", tmp_path)
    _fails_cleanly(rb, lambda: rb.update_priority(torch.tensor([0]), torch.tensor([1.0])),
                   "has no priorities", TypeError)


# -- sample ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler,storage", KINDS)
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "10"])
def test_sample_bad_batch_size_changes_nothing(sampler, storage, batch_size, tmp_path):
    """Fault: ``sample`` with a batch size of 0, negative, a float, a bool or a string.
    Promise: ``ValueError`` naming the value; the sampler's RNG does not advance. Check:
    snapshot (the RNG state is part of it)."""
    rb = make_buffer(sampler, storage, tmp_path)
    _fails_cleanly(rb, partial(rb.sample, batch_size), "batch_size must be a positive int",
                   ValueError)


@pytest.mark.parametrize("sampler,storage", KINDS)
def test_sample_empty_buffer(sampler, storage, tmp_path):
    """Fault: ``sample`` of a buffer that holds nothing. Promise: ``RuntimeError`` saying the
    buffer is empty. Check: snapshot."""
    rb = make_buffer(sampler, storage, tmp_path, n=0)
    _fails_cleanly(rb, partial(rb.sample, 10), "empty", RuntimeError)


@pytest.mark.parametrize("sampler", ["slice", "prioritized_slice"])
def test_sample_slice_batch_not_a_multiple(sampler, tmp_path):
    """Fault: a slice sampler asked for a batch that is not a multiple of ``slice_len``.
    Promise: ``ValueError`` naming both numbers; the RNG does not advance. Check: snapshot."""
    rb = make_buffer(sampler, "tensor", tmp_path)
    _fails_cleanly(rb, partial(rb.sample, 7), "7 is not a multiple of slice_len=5", ValueError)


# -- load_state_dict / loads ----------------------------------------------------------------
def test_failed_load_leaves_buffer_as_it_was_regression(tmp_path):
    """Fault (issue 14 regression): the state of a 20-row ``PrioritizedReplayBuffer`` loaded
    into a 10-row ``ReplayBuffer`` (other sampler). Promise: ``ValueError`` naming the
    sampler, and the buffer keeps its own 10 rows, sampler and writer cursor (the storage used
    to be loaded before the sampler state was checked). Check: snapshot."""
    other = PrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(32))
    other.extend(torch.arange(20.0))
    rb = ReplayBuffer(storage=LazyTensorStorage(32))
    rb.extend(-torch.arange(10.0))
    _fails_cleanly(rb, lambda: rb.load_state_dict(other.state_dict()),
                   "sampler state is for 'PrioritizedSampler', expected 'RandomSampler'",
                   ValueError)
    other.dumps(tmp_path / "other.pt")
    _fails_cleanly(rb, partial(rb.loads, tmp_path / "other.pt"), "PrioritizedSampler", ValueError)
    assert rb.storage.get(torch.arange(10)).tolist() == (-torch.arange(10.0)).tolist()


def _mismatched(sampler, storage, tmp_path):
    """States of buffers that differ from ``make_buffer(sampler, storage)`` in one way."""
    other_sampler = "random" if sampler != "random" else "prioritized"
    out = {
        "other sampler": make_buffer(other_sampler, storage, tmp_path / "a", n=30),
        "other capacity": make_buffer(sampler, storage, tmp_path / "b", n=30, size=32),
        "rate limiter": None,
    }
    limited = TensorDictReplayBuffer(storage=LazyTensorStorage(64), sampler=make_buffer(
        sampler, "tensor", tmp_path / "c", n=0).sampler, rate_limiter=MinSize(1))
    limited.extend(rows(torch.arange(30)))
    out["rate limiter"] = limited
    if storage != "list":
        keys = make_buffer(sampler, storage, tmp_path / "d", n=0)
        keys.extend(rows(torch.arange(30)).set("extra", torch.zeros(30)))
        out["other keys"] = keys
        shapes = make_buffer(sampler, storage, tmp_path / "e", n=0)
        shapes.extend(rows(torch.arange(30)).set("obs", torch.zeros(30, 4)))
        out["other shapes"] = shapes
        out["list storage"] = make_buffer(sampler, "list", tmp_path / "f", n=30)
    else:
        out["tensor storage"] = make_buffer(sampler, "tensor", tmp_path / "g", n=30)
    return {k: v.state_dict() for k, v in out.items()}


@pytest.mark.parametrize("sampler,storage", KINDS)
def test_load_mismatched_state_changes_nothing(sampler, storage, tmp_path):
    """Fault: ``load_state_dict`` and ``dumps``/``loads`` of a buffer of another kind: other
    sampler, capacity, keys, shapes, storage kind, or with a rate limiter. Promise:
    ``ValueError`` naming the part that does not fit; every part of the buffer unchanged
    (nothing half-loaded). Check: snapshot."""
    rb = make_buffer(sampler, storage, tmp_path / "rb")
    for name, state in _mismatched(sampler, storage, tmp_path).items():
        _fails_cleanly(rb, partial(rb.load_state_dict, state), None, ValueError, name)
        path = tmp_path / f"{name}.pt"
        torch.save(state, path)
        _fails_cleanly(rb, partial(rb.loads, path), None, ValueError, f"loads of {name}")


@pytest.mark.parametrize("sampler,storage", KINDS)
def test_load_malformed_state_changes_nothing(sampler, storage, tmp_path):
    """Fault: a state of the right kind with one entry damaged (missing, wrong type, wrong
    shape, out of range, NaN priorities, a cursor past the end). Promise: ``ValueError``
    naming the part and entry; the buffer unchanged. Check: snapshot, for each damage."""
    rb = make_buffer(sampler, storage, tmp_path / "rb")
    good = make_buffer(sampler, storage, tmp_path / "src", n=30).state_dict()

    def damaged():
        yield "not a dict", [1, 2]
        yield "no format", {k: v for k, v in good.items() if k != "format"}
        yield "no sampler", {k: v for k, v in good.items() if k != "sampler"}
        yield "storage len > max_size", {**good, "storage": {**good["storage"], "len": 65}}
        yield "storage len a str", {**good, "storage": {**good["storage"], "len": "30"}}
        yield "writer cursor past the end", {**good, "writer": {**good["writer"], "cursor": 64}}
        yield "writer cursor negative", {**good, "writer": {**good["writer"], "cursor": -1}}
        yield "generator state cut", {**good, "sampler": {
            **good["sampler"], "generator": good["sampler"]["generator"][:10]}}
        if "tensors" in good["storage"]:
            tensors = list(good["storage"]["tensors"])
            tensors[0] = tensors[0][:5]
            yield "too few rows", {**good, "storage": {**good["storage"], "tensors": tensors}}
            tensors = list(good["storage"]["tensors"])
            tensors[1] = tensors[1].double()
            yield "rows of another dtype", {**good, "storage": {**good["storage"],
                                                               "tensors": tensors}}
            yield "bad dtype name", {**good, "storage": {**good["storage"], "dtypes": [
                "torch.evil"] * len(tensors)}}
        else:
            yield "items cut", {**good, "storage": {**good["storage"],
                                                    "items": good["storage"]["items"][:3]}}
        prio = good["sampler"].get("priorities", good["sampler"])
        if "leaves" in prio:
            leaves = prio["leaves"].clone()
            leaves[3] = float("nan")
            bad = {**prio, "leaves": leaves}
            sampler_state = ({**good["sampler"], "priorities": bad}
                             if "priorities" in good["sampler"] else bad)
            yield "NaN priorities", {**good, "sampler": sampler_state}

    for name, state in damaged():
        _fails_cleanly(rb, partial(rb.load_state_dict, state), None, ValueError, name)


def _dumped(rb, tmp_path, directory=False):
    if directory:
        rb.storage.checkpointer = TensorStorageCheckpointer()
    path = tmp_path / ("ckpt" if directory else "ckpt.pt")
    rb.dumps(path)
    return path


@pytest.mark.parametrize("storage", STORAGES)
def test_loads_truncated_file(storage, tmp_path):
    """Fault: a checkpoint file cut short (at several lengths, down to empty). Promise:
    ``ValueError`` saying it cannot be read; the buffer unchanged. Check: snapshot."""
    path = _dumped(make_buffer("prioritized", storage, tmp_path / "src", n=30), tmp_path)
    raw = path.read_bytes()
    rb = make_buffer("prioritized", storage, tmp_path / "rb")
    for cut in (0, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        path.write_bytes(raw[:cut])
        _fails_cleanly(rb, partial(rb.loads, path), "cannot read the checkpoint", ValueError)


@pytest.mark.parametrize("storage", ["tensor", "list"])
def test_loads_corrupted_file(storage, tmp_path):
    """Fault: random bytes in place of a checkpoint, and single bit flips anywhere in a real
    one (header, pickle, tensor data). Promise: a flip is either detected (``ValueError``;
    every zip record's CRC is checked, so flipped tensor data is caught) or harmless (the
    flipped byte is unused padding and the buffer loads exactly the source's content); never
    a silent load of changed data nor an exception of another type. Check: snapshot on
    failure, loaded content equals the source's on success."""
    src = make_buffer("prioritized", storage, tmp_path / "src", n=30)
    path = _dumped(src, tmp_path)
    raw = path.read_bytes()
    rb = make_buffer("prioritized", storage, tmp_path / "rb")
    path.write_bytes(random.Random(0).randbytes(len(raw)))
    _fails_cleanly(rb, partial(rb.loads, path), "cannot read the checkpoint", ValueError)
    gen = random.Random(1)
    detected = 0
    for _ in range(60):
        flipped = bytearray(raw)
        pos = gen.randrange(len(raw))
        flipped[pos] ^= 1 << gen.randrange(8)
        path.write_bytes(bytes(flipped))
        before = snapshot(rb)
        try:
            rb.loads(path)
        except ValueError:
            detected += 1
            assert_same(before, snapshot(rb))
        else:  # an unused byte: the load must give the source's buffer exactly
            assert_same(snapshot(src, counts=False), snapshot(rb, counts=False))
            rb = make_buffer("prioritized", storage, tmp_path / f"rb{_}")
    assert detected > 30


def test_loads_bit_flip_in_tensor_data_is_detected(tmp_path):
    """Fault: one bit flipped in the stored rows of a checkpoint (``torch.load`` alone reads
    such a file without complaint). Promise: ``ValueError`` naming the corrupted record.
    Check: every flip inside the rows' bytes is refused; snapshot."""
    src = ReplayBuffer(storage=LazyTensorStorage(64))
    src.extend(torch.arange(1000.0, 1040.0))
    path = _dumped(src, tmp_path)
    raw = path.read_bytes()
    data = torch.arange(1000.0, 1040.0).numpy().tobytes()
    start = raw.index(data)
    rb = ReplayBuffer(storage=LazyTensorStorage(64))
    rb.extend(torch.arange(5.0))
    for pos in range(start, start + len(data), 13):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x10
        path.write_bytes(bytes(flipped))
        _fails_cleanly(rb, partial(rb.loads, path), "fails its CRC check", ValueError)


@pytest.mark.parametrize("storage", STORAGES)
def test_loads_malicious_pickle_runs_nothing(storage, tmp_path):
    """Fault: a "checkpoint" that is a pickle whose ``__reduce__`` would create a marker file,
    as a raw pickle and inside a ``torch.save`` archive. Promise: ``ValueError`` (pickle is
    refused, ``weights_only=True``); the marker never appears; the buffer unchanged. Check:
    marker file absent; snapshot."""
    rb = make_buffer("prioritized", storage, tmp_path / "rb")
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.pt"
    raw.write_bytes(evil_pickle(marker))
    _fails_cleanly(rb, partial(rb.loads, raw), "cannot read the checkpoint", ValueError)
    archive = tmp_path / "archive.pt"
    torch.save({"format": "streamrl.replay_buffer/1", "x": Marker(marker)}, archive)
    _fails_cleanly(rb, partial(rb.loads, archive), "cannot read the checkpoint", ValueError)
    assert not marker.exists()


def _flip_a_row_file(path):
    files = sorted((path / "storage" / "data").rglob("*.memmap"))
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0x01
    files[0].write_bytes(bytes(raw))


def test_loads_directory_faults(tmp_path):
    """Fault: a directory checkpoint (storage checkpointer set) with its ``buffer.pt``
    replaced by a malicious pickle, its metadata corrupted, its rows deleted, one bit of its
    memory-mapped rows flipped (caught by the CRC-32 the checkpointer records per file), a
    pickled non-tensor entry planted in the rows, or the state of another sampler. Promise:
    ``ValueError`` (or ``FileNotFoundError`` for a missing file), no code run, the buffer
    unchanged. Check: marker absent; snapshot."""
    src = make_buffer("prioritized", "tensor", tmp_path / "src", n=30)
    good = _dumped(src, tmp_path, directory=True)
    rb = make_buffer("prioritized", "tensor", tmp_path / "rb")
    rb.storage.checkpointer = TensorStorageCheckpointer()
    marker = tmp_path / "pwned"

    def variant(name, damage):
        path = tmp_path / name
        shutil.copytree(good, path)
        damage(path)
        return path

    cases = [
        (variant("evil", lambda p: (p / "buffer.pt").write_bytes(evil_pickle(marker))),
         ValueError),
        (variant("meta", lambda p: (p / "storage" / "storage_metadata.json").write_text("{")),
         ValueError),
        (variant("meta-list", lambda p: (p / "storage" / "storage_metadata.json").write_text(
            "[1]")), ValueError),
        (variant("rows", lambda p: shutil.rmtree(p / "storage" / "data")), ValueError),
        (variant("buffer", lambda p: os.remove(p / "buffer.pt")), FileNotFoundError),
        (variant("flipped", _flip_a_row_file), ValueError),
    ]
    other = make_buffer("random", "tensor", tmp_path / "other", n=30)
    other_dir = _dumped(other, tmp_path / "o", directory=True)
    cases.append((other_dir, ValueError))
    planted = variant("planted", lambda p: None)
    data = TensorDict.load_memmap(planted / "storage" / "data")
    evil = TensorDict({"id": data["id"].clone()}, data.batch_size)
    evil.set_non_tensor("note", Marker(marker))
    shutil.rmtree(planted / "storage" / "data")
    evil.memmap(planted / "storage" / "data")
    cases.append((planted, ValueError))
    for path, error in cases:
        _fails_cleanly(rb, partial(rb.loads, path), None, error, path.name)
    assert not marker.exists()


@pytest.mark.parametrize("storage", ["tensor", "memmap"])
def test_failed_load_into_unallocated_storage_allocates_nothing(storage, tmp_path):
    """Fault: a state that fits the storage but not the sampler, loaded into a buffer that
    was never written. Promise: ``ValueError``; the storage stays unallocated (no schema, no
    memory-mapped files). Check: ``stats()['initialized']`` and the scratch directory."""
    src = make_buffer("random", storage, tmp_path / "src", n=30)
    rb = make_buffer("prioritized", storage, tmp_path / "rb", n=0)
    _fails_cleanly(rb, lambda: rb.load_state_dict(src.state_dict()), "sampler state",
                   ValueError)
    assert rb.stats()["initialized"] is False
    if isinstance(rb.storage, LazyMemmapStorage):
        assert os.listdir(rb.storage.scratch_dir) == []


def test_good_load_after_failed_loads_restores_everything(tmp_path):
    """Fault: several failed loads, then a good one. Promise: the good load gives exactly
    the source buffer (the failures left nothing behind that changes it). Check: snapshots
    of source and loaded buffer equal, and both sample the same next batch."""
    src = make_buffer("prioritized", "tensor", tmp_path / "src", n=30)
    rb = make_buffer("prioritized", "tensor", tmp_path / "rb")
    for state in _mismatched("prioritized", "tensor", tmp_path).values():
        with pytest.raises(ValueError):
            rb.load_state_dict(state)
    rb.load_state_dict(src.state_dict())
    assert_same(snapshot(src, counts=False), snapshot(rb, counts=False))
    assert torch.equal(src.sample()["id"], rb.sample()["id"])


def test_load_damaged_list_items_changes_nothing(tmp_path):
    """Fault: a list-storage state whose items are damaged (a TensorDict entry with keys and
    values of different lengths). Promise: ``ValueError`` naming the items; unchanged."""
    rb = ReplayBuffer(storage=ListStorage(8))
    rb.extend([torch.tensor(1), torch.tensor(2)])
    state = rb.state_dict()
    state["storage"]["items"][0] = {"__tensordict__": [[["a"]], []], "batch_size": []}
    _fails_cleanly(rb, partial(rb.load_state_dict, state), "malformed 'items'", ValueError)


def test_prioritized_td_buffer_inf_priority_in_batch(tmp_path):
    """Fault: ``TensorDictPrioritizedReplayBuffer.extend`` of a batch with an infinite
    ``td_error`` (its priority ** alpha overflows). Promise: ``ValueError`` before any row is
    written (it used to be raised by the sampler after the rows were stored). Check:
    snapshot."""
    rb = TensorDictPrioritizedReplayBuffer(alpha=2.0, beta=0.5, storage=LazyTensorStorage(64))
    rb.extend(rows(torch.arange(10)))
    # finite, but 1e200 ** 2 overflows float64
    data = rows(torch.arange(10, 15)).set(
        "td_error", torch.tensor([1.0, 1e200, 1.0, 1.0, 1.0], dtype=torch.float64))
    _fails_cleanly(rb, partial(rb.extend, data), "overflows", ValueError)


def test_ensemble_load_is_all_or_nothing(tmp_path):
    """Fault: a ``ReplayBufferEnsemble`` state whose second member does not fit (another
    capacity). Promise: ``ValueError``; the first member is not loaded either, and the
    ensemble's generator keeps its state. Check: snapshots of both members and the
    generator state before and after."""
    ens = ReplayBufferEnsemble(make_buffer("random", "tensor", tmp_path / "a"),
                               make_buffer("random", "tensor", tmp_path / "b"),
                               sample_from_all=True, batch_size=10)
    other = ReplayBufferEnsemble(make_buffer("random", "tensor", tmp_path / "c", n=30),
                                 make_buffer("random", "tensor", tmp_path / "d", n=30, size=32),
                                 sample_from_all=True, batch_size=10)
    before = [snapshot(rb) for rb in ens._rbs]
    generator = ens._samplers._generator.get_state()
    with pytest.raises(ValueError, match="max_size 32, this storage 64"):
        ens.load_state_dict(other.state_dict())
    for b, rb in zip(before, ens._rbs):
        assert_same(b, snapshot(rb))
    assert torch.equal(generator, ens._samplers._generator.get_state())
