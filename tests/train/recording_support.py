"""Tiny off-policy checkpoints (seconds to train) for the dataset tooling's tests."""

from __future__ import annotations

from pathlib import Path

from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]

TINY = dict(env_name="Pendulum-v1", frames=400, learning_starts=100, frames_per_batch=50,
            batch_size=32, minibatches_per_sample=4, updates_per_frame=0.25, hidden=32,
            eval_interval=400, eval_episodes=1, rollout_placement="inline", logger="none")

CONFIGS = {"sac_pendulum": "SACConfig", "td3_mujoco": "TD3Config"}


def tiny_checkpoint(pipeline: str, run_dir: Path) -> Path:
    """Train ``pipeline`` (sac_pendulum or td3_mujoco) for 400 Pendulum frames into
    ``run_dir``; its ``checkpoint.pt``."""
    module = load_pipeline(ROOT / "pipelines" / f"{pipeline}.py")
    config = getattr(module, CONFIGS[pipeline])(**TINY)
    module.train(config, run_dir=run_dir)
    return run_dir / "checkpoint.pt"
