"""SampleTask on a natively batched env (PointNavigationEnv(batch_size=[N])): row i is what
the i-th member of a SerialEnv of unbatched envs would be (its seeded task stream, its table
rows, its trial counter), partial resets move only the rows they reset, held-out tables are
laid out per row, the env contract holds, and bad input is named."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.envs import PointNavigationEnv, SerialEnv, TransformedEnv
from streamrl.envs.tasks import NavigationFamily, PendulumFamily, SampleTask
from streamrl.testing import EnvContractTests

TASK_KEYS = [("task", "id"), ("task", "params"), ("task", "new"), ("next", "task", "id"),
             ("next", "task", "params"), ("next", "task", "new"), ("next", "task", "end")]


def _batched(n, max_steps=3, tolerance=0.01, **options):
    return TransformedEnv(PointNavigationEnv(batch_size=[n], max_steps=max_steps,
                                             tolerance=tolerance),
                          SampleTask(NavigationFamily(), **options))


def _serial(n, max_steps=3, tolerance=0.01, first=0, **options):
    """The reference: n unbatched members, member i with table row (first + i) % k first."""
    k = len(options["tasks"]) if options.get("tasks") is not None else None

    def member(i):
        return lambda: TransformedEnv(
            PointNavigationEnv(max_steps=max_steps, tolerance=tolerance),
            SampleTask(NavigationFamily(), first=(first + i) % k if k else 0, **options))

    return SerialEnv(n, [member(i) for i in range(n)])


class _Moves:
    """A fixed policy: row i moves by ``moves[i]`` at every step."""

    def __init__(self, moves):
        self.moves = torch.as_tensor(moves, dtype=torch.float32)

    def __call__(self, td):
        return td.set("action", self.moves.clone())


class TestBatchedNavigationTaskContract(EnvContractTests):
    def make_env(self):
        return _batched(3, resample="trial", episodes_per_trial=2)


def test_row_i_draws_the_task_stream_of_a_member_seeded_seed_plus_i():
    # no early ends (tolerance=None): every row's trials last 6 steps whatever its moves
    options = dict(resample="trial", episodes_per_trial=2, tolerance=None)
    policy = _Moves([[0.1, 0.0], [-0.05, 0.1], [0.0, -0.1]])
    env, ref = _batched(3, **options), _serial(3, **options)
    env.set_seed(11)
    ref.set_seed(11)
    got = env.rollout(14, policy, break_when_any_done=False)
    want = ref.rollout(14, policy, break_when_any_done=False)
    for key in [*TASK_KEYS, ("next", "reward"), ("next", "done")]:
        assert torch.equal(got[key], want[key]), key
    ids = got["task", "id"].squeeze(-1)
    assert ids[:, 0].tolist() == [0, 0, 0] and ids[:, -1].tolist() == [2, 2, 2]  # 3 trials
    params = got["task", "params"]
    assert len({tuple(p) for p in params[:, 0].tolist()}) == 3  # rows draw different tasks
    assert not torch.equal(params[:, 0], params[:, 6])  # and a new one per trial
    # the goals the env moves towards are the rows' tasks
    torch.testing.assert_close(env.base_env.goal, got["next", "task", "params"][:, -1])
    # the same seed repeats the streams, another seed gives others
    env.set_seed(11)
    assert torch.equal(env.rollout(14, policy, break_when_any_done=False)["task", "params"],
                       params)
    env.set_seed(12)
    other = env.rollout(14, policy, break_when_any_done=False)["task", "params"]
    assert torch.equal(other[:2], params[1:])  # seed 12's row i is seed 11's row i + 1
    assert not torch.equal(other[2], params[2])
    ref.close()


def test_without_a_seed_the_rows_draw_different_tasks():
    td = _batched(4).reset()
    assert len({tuple(p) for p in td["task", "params"].tolist()}) == 4


def _partial(env, td, rows):
    td = td.clone()
    td.set("_reset", torch.tensor(rows).reshape(-1, 1))
    return env.reset(td)


def test_a_partial_reset_changes_only_the_tasks_of_the_reset_rows():
    env = _batched(3, seed=0)  # resample="reset": every reset of a row draws its next task
    td = env.reset()
    goal = env.base_env.goal.clone()
    out = _partial(env, td, [True, False, True])
    assert out["task", "id"].flatten().tolist() == [1, 0, 1]
    assert out["task", "new"].flatten().tolist() == [True, False, True]
    assert torch.equal(out["task", "params"][1], td["task", "params"][1])
    assert not torch.equal(out["task", "params"][0], td["task", "params"][0])
    assert torch.equal(env.base_env.goal[1], goal[1])
    torch.testing.assert_close(env.base_env.goal, out["task", "params"])
    out = _partial(env, out, [False, True, False])  # row 1 now draws its 2nd task
    assert out["task", "id"].flatten().tolist() == [1, 1, 1]
    assert out["task", "new"].flatten().tolist() == [False, True, False]

    trials = _batched(2, seed=0, resample="trial", episodes_per_trial=2)
    td = trials.reset()
    first = td["task", "params"].clone()
    td = _partial(trials, td, [True, False])  # row 0's 2nd episode: the same task
    assert td["task", "id"].flatten().tolist() == [0, 0]
    assert td["task", "new"].flatten().tolist() == [False, False]
    assert torch.equal(td["task", "params"], first)
    td = _partial(trials, td, [True, False])  # row 0's 3rd episode: a new trial; row 1 untouched
    assert td["task", "id"].flatten().tolist() == [1, 0]
    assert td["task", "new"].flatten().tolist() == [True, False]
    assert torch.equal(td["task", "params"][1], first[1])
    td = _partial(trials, td, [False, True])  # row 1's 2nd episode: still its first task
    assert td["task", "id"].flatten().tolist() == [1, 0]


def test_trials_are_counted_per_row_when_rows_end_episodes_at_different_steps():
    # every goal is (0.1, 0): row 0 reaches it in one step (terminated), row 1 stands still
    # and is truncated after 3; trials of 2 episodes
    table = torch.tensor([[0.1, 0.0]] * 4)
    options = dict(tasks=table, resample="trial", episodes_per_trial=2)
    policy = _Moves([[0.1, 0.0], [0.0, 0.0]])
    env, ref = _batched(2, **options), _serial(2, **options)
    env.set_seed(0)
    ref.set_seed(0)
    got = env.rollout(12, policy, break_when_any_done=False)
    want = ref.rollout(12, policy, break_when_any_done=False)
    for key in [*TASK_KEYS, ("next", "reward"), ("next", "done"), ("next", "terminated")]:
        assert torch.equal(got[key], want[key]), key
    done = got["next", "done"].squeeze(-1)
    assert done[0].all() and done[1].nonzero().flatten().tolist() == [2, 5, 8, 11]
    end = got["next", "task", "end"].squeeze(-1)
    assert end[0].nonzero().flatten().tolist() == [1, 3, 5, 7, 9, 11]
    assert end[1].nonzero().flatten().tolist() == [5, 11]
    new = got["task", "new"].squeeze(-1)
    assert new[0].nonzero().flatten().tolist() == [0, 2, 4, 6, 8, 10]
    assert new[1].nonzero().flatten().tolist() == [0, 6]
    # table rows in order per row, row i from row i: row 0 takes 0, 1, 2, 3, 0, 1
    assert got["task", "id"][0].flatten().tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1]
    assert got["task", "id"][1].flatten().tolist() == [1] * 6 + [2] * 6
    env.close()
    ref.close()


def test_held_out_tables_are_laid_out_per_row_and_start_again_when_seeded():
    table = torch.tensor([[0.1, 0.2], [0.3, 0.4], [-0.1, -0.2]])
    env = _batched(4, tasks=table, first=2, resample="never")
    td = env.reset()
    assert td["task", "id"].flatten().tolist() == [2, 0, 1, 2]  # row i: (first + i) % 3
    assert torch.equal(td["task", "params"], table[[2, 0, 1, 2]])
    torch.testing.assert_close(env.base_env.goal, table[[2, 0, 1, 2]])
    assert env.reset()["task", "id"].flatten().tolist() == [2, 0, 1, 2]  # "never" keeps them
    walking = _batched(3, tasks=table)  # resample="reset": each row walks the table
    assert [walking.reset()["task", "id"].flatten().tolist() for _ in range(3)] == [
        [0, 1, 2], [1, 2, 0], [2, 0, 1]]
    walking.set_seed(5)  # seeding starts the rows again at their first rows
    assert walking.reset()["task", "id"].flatten().tolist() == [0, 1, 2]


def test_apply_sets_only_the_given_rows():
    env = PointNavigationEnv(batch_size=[3])
    family = NavigationFamily()
    family.apply(env, torch.tensor([[0.4, -0.4]]), rows=torch.tensor([1]))
    assert env.goal.tolist() == [[0.0, 0.0], [0.4000000059604645, -0.4000000059604645],
                                 [0.0, 0.0]]
    family.apply(env, torch.tensor([[0.1, 0.1], [0.2, 0.2]]), rows=torch.tensor([2, 0]))
    torch.testing.assert_close(env.goal, torch.tensor([[0.2, 0.2], [0.4, -0.4], [0.1, 0.1]]))
    family.apply(env, torch.tensor([0.3, 0.3]))  # without rows: one goal for every row
    assert env.goal.tolist() == [0.30000001192092896] * 2


def test_bad_input_is_named():
    gym_family = TransformedEnv(PointNavigationEnv(batch_size=[2]), SampleTask(PendulumFamily()))
    with pytest.raises(TypeError, match=r"expected a family with target 'env' or an unbatched "
                                        r"GymEnv under it .*found PointNavigationEnv with "
                                        r"batch_size \[2\] and PendulumFamily \(target 'gym'\)"):
        gym_family.reset()
    env = _batched(2, seed=0)
    td = env.reset()
    td.set("_reset", torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"expected a '_reset' mask of 2 rows \(batch_size "
                                         r"\[2\]\), found shape \[2, 3\]"):
        env.reset(td)
    fresh = _batched(2, seed=0)
    with pytest.raises(RuntimeError, match="step before the first reset"):
        fresh.step(TensorDict({"observation": torch.zeros(2, 2), "step": torch.zeros(
            2, 1, dtype=torch.int64), "action": torch.zeros(2, 2)}, [2]))
