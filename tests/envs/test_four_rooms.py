"""FourRoomsEnv: the env contract, the layout (104 cells, four rooms joined by hallways), the
moves (slips at the given rate, walls block), the goal (reward 1, terminated; per row;
moved), seeded starts, bad input."""

from __future__ import annotations

import pytest
import torch

from streamrl.envs import FourRoomsEnv
from streamrl.envs.custom.four_rooms import EAST_HALLWAY
from streamrl.testing import EnvContractTests


class TestOneAgentContract(EnvContractTests):
    def make_env(self):
        return FourRoomsEnv(max_steps=20, seed=0)


class TestBatchContract(EnvContractTests):
    def make_env(self):
        return FourRoomsEnv(goal=torch.tensor([[7, 9], [10, 2], [1, 1]]), max_steps=20,
                            batch_size=[3], seed=0)


def _place(env, cells):
    td = env.reset()
    td["position"] = torch.as_tensor(cells).reshape(*env.batch_size, 2).clone()
    return td


def test_the_layout_has_four_rooms_joined_by_four_hallways():
    env = FourRoomsEnv(seed=0)
    assert env.num_cells == 104 and env.free.shape == (13, 13)
    # flood fill from the north-west room through free cells reaches all 104
    seen, todo = {(1, 1)}, [(1, 1)]
    while todo:
        r, c = todo.pop()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            cell = (r + dr, c + dc)
            if env.free[cell] and cell not in seen:
                seen.add(cell)
                todo.append(cell)
    assert len(seen) == 104
    hallways = [(3, 6), (10, 6), (6, 2), (7, 9)]
    for cell in hallways:  # the doorways in the walls between the rooms
        assert env.free[cell]
    assert EAST_HALLWAY in hallways


def test_moves_slip_at_the_given_rate_and_walls_block():
    env = FourRoomsEnv(batch_size=[4000], seed=1)
    td = _place(env, [[3, 3]] * 4000)  # the middle of the north-west room
    td["action"] = torch.full((4000,), 3)  # right
    out = env.step(td)["next"]["position"]
    moved = out - torch.tensor([3, 3])
    right = (moved == torch.tensor([0, 1])).all(-1).float().mean()
    assert abs(float(right) - 2 / 3) < 0.03
    for direction in ([-1, 0], [1, 0], [0, -1]):  # each other direction ~1/9
        share = (moved == torch.tensor(direction)).all(-1).float().mean()
        assert abs(float(share) - 1 / 9) < 0.02
    sure = FourRoomsEnv(slip=0.0, batch_size=[2], seed=0)
    td = _place(sure, [[1, 1], [1, 5]])  # in the corner; next to the wall at column 6
    td["action"] = torch.tensor([0, 3])  # up into the wall; right into the wall
    assert sure.step(td)["next"]["position"].tolist() == [[1, 1], [1, 5]]


def test_the_goal_rewards_one_and_ends_the_episode():
    env = FourRoomsEnv(slip=0.0, batch_size=[2], goal=torch.tensor([[7, 9], [1, 2]]), seed=0)
    td = _place(env, [[6, 9], [1, 1]])
    td["action"] = torch.tensor([1, 3])  # down into the east hallway; right onto (1, 2)
    out = env.step(td)["next"]
    assert out["reward"].flatten().tolist() == [1.0, 1.0]
    assert out["terminated"].all() and not out["truncated"].any()
    td = _place(env, [[5, 9], [3, 3]])
    td["action"] = torch.tensor([1, 1])
    out = env.step(td)["next"]
    assert out["reward"].flatten().tolist() == [0.0, 0.0] and not out["done"].any()
    assert out["observation"].sum(-1).tolist() == [1.0, 1.0]
    assert env.cell_index(out["position"]).tolist() == out["observation"].argmax(-1).tolist()


def test_starts_are_seeded_uniform_and_never_the_goal():
    env = FourRoomsEnv(batch_size=[5000], seed=3)
    cells = env.cell_index(env.reset()["position"])
    assert not (cells == env.cell_index(torch.tensor(EAST_HALLWAY))).any()
    counts = torch.bincount(cells, minlength=104).float()
    assert (counts > 0).sum() == 103 and counts.max() < 2 * counts[counts > 0].mean()

    def right(td):
        return td.set("action", torch.full((8,), 3))

    runs = [FourRoomsEnv(batch_size=[8], seed=seed).rollout(30, right, break_when_any_done=False)
            for seed in (5, 5, 6)]
    assert torch.equal(runs[0]["position"], runs[1]["position"])  # starts and slips seeded
    assert not torch.equal(runs[0]["position"], runs[2]["position"])


def test_the_goal_can_be_moved_between_episodes():
    env = FourRoomsEnv(slip=0.0, seed=0)
    env.goal = (10, 10)  # the paper's transfer: a cell of the lower-right room
    td = _place(env, [10, 9])
    td["action"] = torch.tensor(3)
    assert env.step(td)["next"]["reward"].item() == 1.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"goal must be a free cell of the four rooms, found "
                                         r"\[0, 0\]"):
        FourRoomsEnv(goal=(0, 0))
    with pytest.raises(ValueError, match=r"found \[13, 2\] \(a wall or outside"):
        FourRoomsEnv(goal=(13, 2))
    with pytest.raises(ValueError, match=r"shape \[2\] or \[3, 2\], found \[3\]"):
        FourRoomsEnv(goal=(1, 1, 1), batch_size=[3])
    with pytest.raises(ValueError, match="slip must be a probability in"):
        FourRoomsEnv(slip=1.5)
    with pytest.raises(ValueError, match="max_steps must be an int >= 1, found 0"):
        FourRoomsEnv(max_steps=0)
