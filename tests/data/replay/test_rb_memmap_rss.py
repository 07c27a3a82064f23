"""A disk-backed storage larger than the memory budget keeps the process RSS low."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import LazyMemmapStorage, ReplayBuffer


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
def test_atari_frames_fill_and_sample_with_bounded_rss(tmp_path):
    frames, chunk = 30_000, 500  # 30k x 4x84x84 uint8 = 0.85 GB on disk
    td = TensorDict(
        {
            "pixels": torch.randint(0, 255, (chunk, 4, 84, 84), dtype=torch.uint8),
            "action": torch.zeros(chunk, dtype=torch.int64),
        },
        [chunk],
    )
    base = _rss_mb()
    peak = base
    storage = LazyMemmapStorage(frames, scratch_dir=tmp_path / "atari", release_bytes=64 << 20)
    with storage:
        rb = ReplayBuffer(storage=storage, batch_size=256)
        for _ in range(frames // chunk):
            rb.extend(td)
            peak = max(peak, _rss_mb())
        for _ in range(60):
            batch = rb.sample()
            peak = max(peak, _rss_mb())
        assert batch["pixels"].shape == (256, 4, 84, 84)
        # rows read back are the rows written (all chunks were the same batch)
        idx = torch.tensor([0, chunk + 7, frames - 1])
        got = storage.get(idx)["pixels"]
        assert torch.equal(got, td["pixels"][idx % chunk])
    # far below the 0.85 GB the files hold
    assert peak - base < 300, f"RSS grew by {peak - base:.0f} MB"
