"""pipelines/maml_navigation.py: a tiny run writes its run dir and resumes exactly; each task's
rows act with that task's adapted parameters; the policy-gradient data of a batch is the
hand-computed one; a second-order step differs from a first-order one; bad fields and
mismatched checkpoints are named before any work."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.checkpoint import CheckpointError
from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
MAML = load_pipeline(ROOT / "pipelines" / "maml_navigation.py")

TINY = dict(meta_batch_size=2, episodes_per_task=3, max_steps=10, hidden=8, iterations=4,
            eval_interval=2, eval_tasks=2, eval_steps=2, logger="none")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return state["policy"]


def test_a_tiny_run_writes_its_run_dir_and_resumes_exactly(tmp_path):
    config = MAML.MAMLConfig(**TINY)
    result = MAML.train(config, run_dir=tmp_path / "a")
    assert result.iterations == 4 and result.frames == 4 * 2 * (2 * 3 * 10)
    assert [it for it, _ in result.evaluations] == [2, 4] and len(result.eval_returns) == 3
    from streamrl.train import read_metrics
    rows = read_metrics(tmp_path / "a")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["eval_return/step_2"] is not None and rows[0].get("eval_return") is None
    assert rows[3]["eval_return"] == rows[3]["eval_return/step_1"]  # after inner_steps steps

    half = dataclasses.replace(config, iterations=2)
    MAML.train(half, run_dir=tmp_path / "b")
    resumed = MAML.train(config, run_dir=tmp_path / "b", resume=tmp_path / "b" / "checkpoint.pt")
    assert resumed.iterations == 4
    straight, again = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for key, value in straight.items():
        torch.testing.assert_close(again[key], value, rtol=0, atol=0)
    assert resumed.eval_returns == result.eval_returns
    assert [r["iteration"] for r in read_metrics(tmp_path / "b")] == [1, 2, 3, 4]


def test_a_checkpoint_of_another_config_or_at_the_budget_is_refused(tmp_path):
    config = MAML.MAMLConfig(**{**TINY, "iterations": 1})
    MAML.train(config, run_dir=tmp_path)
    other = dataclasses.replace(config, inner_lr=0.5, iterations=2)
    with pytest.raises(CheckpointError, match="inner_lr"):
        MAML.train(other, resume=tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="already at the budget iterations=1"):
        MAML.train(config, resume=tmp_path / "checkpoint.pt")
    assert MAML.main(["--iterations", "2", "--inner-lr", "0.5", "--no-progress", "--resume",
                      str(tmp_path / "checkpoint.pt"), "--no-files"]) == 2


def test_each_tasks_rows_act_with_its_parameters():
    config = MAML.MAMLConfig(**TINY)
    net, taskwise, actor = MAML.make_policy(config)
    rollouts = MAML.TaskRollouts(config, actor, taskwise, 2)
    try:
        params = TensorDict.from_module(net).detach().expand(2).clone()
        names = [k for k, _ in net.named_parameters()]
        bias = tuple(names[-2].split("."))  # the MLP's output bias: the Gaussian's mean
        params.get(bias)[0] = torch.tensor([50.0, 50.0])
        params.get(bias)[1] = torch.tensor([-50.0, -50.0])
        played = rollouts.play(torch.zeros(2, 2), params)
        actions = played.data["action"]  # [tasks, episodes * steps, 2]
        assert bool((actions[0] > 40).all()) and bool((actions[1] < -40).all())
        # the env clips each move to 0.1, so a task's rows end 1.0 away on each axis
        assert played.mean_return < 0 and taskwise.task_params is None
    finally:
        rollouts.close()


def test_policy_gradient_data_is_the_hand_computed_one():
    # 2 tasks x 2 episodes x 2 steps; rewards per row, gamma 0.5
    reward = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0], [2.0, 2.0]]).unsqueeze(-1)
    done = torch.tensor([[False, True]] * 4).unsqueeze(-1)
    batch = TensorDict({"observation": torch.arange(16.0).reshape(4, 2, 2),
                        "action": -torch.arange(16.0).reshape(4, 2, 2),
                        "next": {"reward": reward, "done": done}}, [4, 2])
    data = MAML.task_data(batch, 2, 0.5)
    assert data.batch_size == (2,) and data["observation"].shape == (2, 4, 2)
    # returns-to-go: [2, 2], [3, 0], [0, 0], [3, 2]; baseline per task and step:
    # task 0 [2.5, 1.0], task 1 [1.5, 1.0] -> advantages [-.5, 1, .5, -1], [-1.5, -1, 1.5, 1]
    raw = torch.tensor([[-0.5, 1.0, 0.5, -1.0], [-1.5, -1.0, 1.5, 1.0]])
    expected = (raw - raw.mean(1, keepdim=True)) / (raw.std(1, keepdim=True) + 1e-8)
    torch.testing.assert_close(data["advantage"], expected)
    torch.testing.assert_close(data["action"][1, 0], torch.tensor([-8.0, -9.0]))


def test_the_outer_gradient_goes_through_the_inner_step():
    grads = {}
    for first_order in (False, True):
        torch.manual_seed(0)
        config = MAML.MAMLConfig(**TINY, first_order=first_order)
        net, taskwise, actor = MAML.make_policy(config)
        rollouts = MAML.TaskRollouts(config, actor, taskwise, 2)
        try:
            torch.manual_seed(1)
            adapted, plays = MAML.adapt_and_play(config, net, rollouts, config.train_tasks(1), 1,
                                                 first_order)
        finally:
            rollouts.close()
        assert len(plays) == 2 and adapted.batch_size == (2,)
        loss = MAML.maml_task_losses(net, adapted, MAML.policy_gradient_loss, plays[-1].data)
        grads[first_order] = torch.autograd.grad(loss.mean(), list(net.parameters()))
    assert not all(torch.allclose(a, b) for a, b in zip(grads[False], grads[True]))


def test_training_tasks_are_seeded_and_eval_tasks_fixed():
    config = MAML.MAMLConfig(**TINY)
    assert torch.equal(config.train_tasks(3), config.train_tasks(3))
    assert not torch.equal(config.train_tasks(3), config.train_tasks(4))
    assert not torch.equal(config.train_tasks(3),
                           dataclasses.replace(config, seed=1).train_tasks(3))
    assert torch.equal(config.eval_table(), dataclasses.replace(config, seed=1).eval_table())
    assert bool((config.eval_table().abs() <= 0.5).all())


def test_bad_fields_are_named():
    with pytest.raises(ValueError, match=r"episodes_per_task must be >= 2 .* found 1"):
        MAML.MAMLConfig(episodes_per_task=1)
    with pytest.raises(ValueError, match=r"MAMLConfig.inner_steps must be an int >= 0, found -1"):
        MAML.MAMLConfig(inner_steps=-1)
    with pytest.raises(ValueError, match=r"MAMLConfig.gamma must be in \[0, 1\], found 1.5"):
        MAML.MAMLConfig(gamma=1.5)
    with pytest.raises(ValueError, match=r"MAMLConfig.inner_lr must be > 0, found 0"):
        MAML.MAMLConfig(inner_lr=0)


def test_the_graph_draws():
    graph = MAML.build_graph(["--meta-batch-size", "2", "--episodes-per-task", "2"])
    assert "rollout" in set(graph.nodes)
