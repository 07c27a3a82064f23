"""LazyMemmapStorage(auto_cleanup=, device=) and cleanup(); ReplayBuffer(pin_memory=)."""

import os
import subprocess
import sys

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import LazyMemmapStorage, ReplayBuffer


def _fill(storage):
    rb = ReplayBuffer(storage=storage)
    rb.extend(TensorDict({"a": torch.randn(10)}, [10]))
    return rb


def test_cleanup_removes_a_scratch_dir_once(tmp_path):
    d = tmp_path / "mm"
    storage = LazyMemmapStorage(100, scratch_dir=d)
    _fill(storage)
    assert os.listdir(d)
    assert storage.cleanup() is True and not d.exists()
    assert storage.cleanup() is False  # idempotent


def test_cleanup_of_an_unwritten_or_removed_storage(tmp_path):
    assert LazyMemmapStorage(10).cleanup() is False
    d = tmp_path / "gone"
    storage = LazyMemmapStorage(10, scratch_dir=d)
    _fill(storage)
    storage.close()
    os.rename(d, tmp_path / "moved")
    assert storage.cleanup() is False


@pytest.mark.parametrize("auto_cleanup", [None, True, False])
def test_close_removes_the_directory_with_auto_cleanup(tmp_path, auto_cleanup):
    d = tmp_path / "mm"
    storage = LazyMemmapStorage(10, scratch_dir=d, auto_cleanup=auto_cleanup)
    _fill(storage)
    storage.close()
    assert d.exists() == (auto_cleanup is not True)  # a scratch_dir is kept by default
    temp = LazyMemmapStorage(10, auto_cleanup=auto_cleanup)
    _fill(temp)
    temp.close()
    assert os.path.isdir(temp.scratch_dir) == (auto_cleanup is False)
    if auto_cleanup is False:
        assert temp.cleanup() is True
    with pytest.raises(TypeError, match="auto_cleanup"):
        LazyMemmapStorage(10, auto_cleanup="yes")


def test_auto_cleanup_at_process_exit(tmp_path):
    d = tmp_path / "exit"
    script = (
        "import torch; from tensordict import TensorDict\n"
        "from streamrl.data import LazyMemmapStorage, ReplayBuffer\n"
        f"s = LazyMemmapStorage(10, scratch_dir={str(d)!r}, auto_cleanup=True)\n"
        "ReplayBuffer(storage=s).extend(TensorDict({'a': torch.zeros(3)}, [3]))\n"
        "assert s.scratch_dir and __import__('os').listdir(s.scratch_dir)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert not d.exists()


def test_device_is_where_reads_go(tmp_path):
    storage = LazyMemmapStorage(10, scratch_dir=tmp_path / "d", device="cpu")
    rb = _fill(storage)
    assert rb.sample(4)["a"].device.type == "cpu"
    assert storage[:]["a"].shape == (10,)


def test_pin_memory():
    rb = ReplayBuffer(storage=LazyMemmapStorage(10), pin_memory=False, batch_size=2)
    rb.extend(torch.arange(4))
    assert not rb.sample().is_pinned()
    pinned = ReplayBuffer(storage=LazyMemmapStorage(10), pin_memory=True, batch_size=2)
    pinned.extend(torch.arange(4))
    if torch.cuda.is_available():
        assert pinned.sample().is_pinned()
    else:
        with pytest.raises(RuntimeError):
            pinned.sample()
    with pytest.raises(TypeError, match="pin_memory"):
        ReplayBuffer(pin_memory=1)
