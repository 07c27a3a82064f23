"""Exploration modules: act only under RANDOM (or none set), anneal, respect specs and masks."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential

from streamrl.data.specs import Bounded, Categorical, Composite, OneHot, Unbounded
from streamrl.modules import (
    AdditiveGaussianModule,
    EGreedyModule,
    ExplorationType,
    OrnsteinUhlenbeckProcessModule,
    QValueActor,
    set_exploration_type,
)

_QUIET = [ExplorationType.MODE, ExplorationType.MEAN, ExplorationType.DETERMINISTIC]


def _modules():
    box = Bounded(-1.0, 1.0, shape=(2,))
    return [
        (EGreedyModule(OneHot(4), eps_init=1.0), torch.zeros(64, 4, dtype=torch.long).index_fill(1, torch.tensor([0]), 1)),
        (EGreedyModule(Categorical(4), eps_init=1.0), torch.zeros(64, dtype=torch.long)),
        (AdditiveGaussianModule(box), torch.zeros(64, 2)),
        (OrnsteinUhlenbeckProcessModule(box, sigma=5.0, dt=1.0), torch.zeros(64, 2)),
    ]


@pytest.mark.parametrize("index", range(4))
def test_acts_only_under_random(index):
    module, action = _modules()[index]
    for kind in _QUIET:
        with set_exploration_type(kind):
            td = module(TensorDict({"action": action.clone()}, [64]))
        assert torch.equal(td["action"], action), kind
    with set_exploration_type(ExplorationType.RANDOM):
        td = module(TensorDict({"action": action.clone()}, [64]))
    assert not torch.equal(td["action"], action)
    # no exploration type set behaves as RANDOM
    td = module(TensorDict({"action": action.clone()}, [64]))
    assert not torch.equal(td["action"], action)


class TestEGreedy:
    def test_annealing_and_state_dict(self):
        module = EGreedyModule(Categorical(3), eps_init=1.0, eps_end=0.2, annealing_num_steps=8)
        module.step(4)
        assert module.eps.item() == pytest.approx(0.6)
        module.step(100)
        assert module.eps.item() == pytest.approx(0.2)
        fresh = EGreedyModule(Categorical(3), eps_init=1.0, eps_end=0.2, annealing_num_steps=8)
        fresh.load_state_dict(module.state_dict())
        assert fresh.eps.item() == pytest.approx(0.2)

    def test_eps_zero_is_greedy_and_rate(self):
        torch.manual_seed(0)
        module = EGreedyModule(Categorical(2), eps_init=0.0, eps_end=0.0)
        action = torch.zeros(1000, dtype=torch.long)
        assert torch.equal(module(TensorDict({"action": action.clone()}, [1000]))["action"], action)
        module = EGreedyModule(Categorical(2), eps_init=0.5, eps_end=0.5)
        changed = (module(TensorDict({"action": action.clone()}, [1000]))["action"] != 0)
        # explored half the time, and a random action differs from 0 half of those times
        assert 0.18 < changed.float().mean().item() < 0.32

    @pytest.mark.parametrize("spec", [OneHot(5), Categorical(5)])
    def test_respects_spec_and_mask(self, spec):
        torch.manual_seed(0)
        mask = torch.zeros(200, 5, dtype=torch.bool)
        mask[:, 3] = True
        mask[:100, 1] = True
        greedy = spec.zero((200,))
        module = EGreedyModule(Composite(action=spec), eps_init=1.0, action_mask_key="mask")
        td = module(TensorDict({"action": greedy, "mask": mask}, [200]))
        assert spec.is_in(td["action"])
        index = td["action"].long().argmax(-1) if isinstance(spec, OneHot) else td["action"]
        assert mask.gather(-1, index.unsqueeze(-1)).all()
        assert (index[100:] == 3).all() and (index[:100] == 1).any()

    def test_bounded_spec_and_errors(self):
        spec = Bounded(0.0, 2.0, shape=(3,))
        td = EGreedyModule(spec, eps_init=1.0)(TensorDict({"action": torch.zeros(10, 3)}, [10]))
        assert spec.is_in(td["action"]) and (td["action"] > 0).any()
        with pytest.raises(TypeError, match="Unbounded"):
            EGreedyModule(Unbounded(shape=(2,)))
        with pytest.raises(ValueError, match="annealing_num_steps"):
            EGreedyModule(Categorical(2), annealing_num_steps=0)
        with pytest.raises(ValueError, match="eps must be"):
            EGreedyModule(Categorical(2), eps_init=2.0)
        module = EGreedyModule(OneHot(3), action_mask_key="mask")
        with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
            module(TensorDict({"action": torch.zeros(4, 3, dtype=torch.long),
                               "mask": torch.ones(4, 2, dtype=torch.bool)}, [4]))
        with pytest.raises(KeyError, match="action"):
            EGreedyModule(OneHot(3))(TensorDict({}, [4]))

    def test_after_qvalue_actor(self):
        policy = TensorDictSequential(
            QValueActor(torch.nn.Linear(4, 3), spec=OneHot(3)), EGreedyModule(OneHot(3), 1.0)
        )
        td = TensorDict({"observation": torch.randn(32, 4)}, [32])
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            greedy = policy(td.clone())
        torch.testing.assert_close(greedy["action"].long().argmax(-1),
                                   greedy["action_value"].argmax(-1))
        explored = policy(td.clone())
        assert OneHot(3).is_in(explored["action"])


class TestGaussian:
    def test_sigma_annealing_and_scale(self):
        torch.manual_seed(0)
        module = AdditiveGaussianModule(Bounded(-100.0, 100.0, shape=(1,)), sigma_init=2.0,
                                        sigma_end=0.5, annealing_num_steps=3)
        noise = module(TensorDict({"action": torch.zeros(20000, 1)}, [20000]))["action"]
        assert noise.std().item() == pytest.approx(2.0, rel=0.05)
        module.step(3)
        assert module.sigma.item() == pytest.approx(0.5)
        noise = module(TensorDict({"action": torch.zeros(20000, 1)}, [20000]))["action"]
        assert noise.std().item() == pytest.approx(0.5, rel=0.05)

    def test_bounds(self):
        spec = Bounded(torch.tensor([0.0, -1.0]), torch.tensor([0.5, 1.0]))
        module = AdditiveGaussianModule(spec, sigma_init=10.0)
        td = module(TensorDict({"action": torch.zeros(100, 2)}, [100]))
        assert spec.is_in(td["action"])
        unsafe = AdditiveGaussianModule(None, sigma_init=10.0, safe=False)
        assert unsafe(TensorDict({"action": torch.zeros(100, 2)}, [100]))["action"].abs().max() > 1
        with pytest.raises(ValueError, match="needs the action spec"):
            AdditiveGaussianModule(None)


class TestOrnsteinUhlenbeck:
    def test_state_in_tensordict_and_reset(self):
        torch.manual_seed(0)
        ou = OrnsteinUhlenbeckProcessModule(Bounded(-10.0, 10.0, shape=(2,)), eps_init=1.0,
                                            theta=0.0, sigma=1.0, dt=1.0)
        td = ou(TensorDict({"action": torch.zeros(3, 2)}, [3]))
        first = td["next", "_ou_prev_noise"]
        torch.testing.assert_close(td["action"], first)  # starts from zero noise
        # carried state: with theta=0 the noise is a random walk from the previous value
        torch.manual_seed(1)
        step = TensorDict({"action": torch.zeros(3, 2), "_ou_prev_noise": first,
                           "is_init": torch.tensor([[False], [True], [False]])}, [3])
        out = ou(step)
        torch.manual_seed(1)
        increments = torch.randn(3, 2)
        expected = first + increments
        expected[1] = increments[1]  # reset row restarts from zero
        torch.testing.assert_close(out["action"], expected)
        torch.testing.assert_close(out["next", "_ou_prev_noise"], expected)

    def test_mean_reversion_and_bounds(self):
        ou = OrnsteinUhlenbeckProcessModule(Bounded(-1.0, 1.0, shape=(1,)), theta=0.5, sigma=0.0,
                                            dt=1.0)
        td = ou(TensorDict({"action": torch.zeros(2, 1),
                            "_ou_prev_noise": torch.tensor([[4.0], [-4.0]])}, [2]))
        torch.testing.assert_close(td["next", "_ou_prev_noise"], torch.tensor([[2.0], [-2.0]]))
        assert td["action"].tolist() == [[1.0], [-1.0]]  # projected into the spec
        with pytest.raises(ValueError, match=r"_ou_prev_noise.*\(2, 3\).*\(2, 1\)"):
            ou(TensorDict({"action": torch.zeros(2, 1), "_ou_prev_noise": torch.zeros(2, 3)}, [2]))


def test_ou_noise_carries_over_in_env_loop():
    """In a real env loop (step + step_mdp) the noise is a correlated process, restarted
    where InitTracker marks a new episode."""
    from streamrl.envs import TransformedEnv
    from streamrl.envs.libs.gym import GymEnv
    from streamrl.envs.transforms import InitTracker
    from streamrl.envs.utils import step_mdp
    from streamrl.modules import Actor

    torch.manual_seed(0)
    env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())
    env.set_seed(0)
    ou = OrnsteinUhlenbeckProcessModule(env.action_spec, theta=0.0, sigma=1.0, dt=1.0,
                                        eps_init=0.01, eps_end=0.01)
    policy = TensorDictSequential(Actor(lambda obs: torch.zeros(1), in_keys=["observation"]), ou)
    td = env.reset()
    expected = torch.zeros(1)
    for t in range(5):
        torch.manual_seed(100 + t)
        increment = torch.randn(1)
        torch.manual_seed(100 + t)
        policy(td)
        # theta=0, sigma=1, dt=1: a random walk carried from step to step (restarted at reset)
        expected = increment if t == 0 else expected + increment
        torch.testing.assert_close(td["_ou_prev_noise"], expected)
        env.step(td)
        td = step_mdp(td)
    td["is_init"] = torch.ones_like(td["is_init"])
    torch.manual_seed(3)
    policy(td)
    torch.manual_seed(3)
    torch.testing.assert_close(td["_ou_prev_noise"], torch.randn(1))
    env.close()


def test_egreedy_on_unbatched_input():
    module = EGreedyModule(Categorical(2), eps_init=1.0, eps_end=1.0)
    torch.manual_seed(0)
    seen = set()
    for _ in range(50):
        td = module(TensorDict({"action": torch.tensor(0)}, []))
        assert td["action"].shape == ()
        seen.add(int(td["action"]))
    assert seen == {0, 1}


def test_exploration_modules_keep_a_composite_spec():
    from streamrl.data.specs import Bounded, Composite, OneHot
    from streamrl.modules import (
        AdditiveGaussianModule,
        EGreedyModule,
        OrnsteinUhlenbeckProcessModule,
    )

    leaf = Bounded(-1.0, 1.0, shape=(2,))
    for cls in (AdditiveGaussianModule, OrnsteinUhlenbeckProcessModule):
        module = cls(leaf)
        assert module.spec == Composite(action=leaf) and module.action_spec == leaf
    given = Composite(agents=Composite(action=leaf))
    module = AdditiveGaussianModule(given, action_key=("agents", "action"))
    assert module.spec == given and module.action_spec == leaf
    assert EGreedyModule(OneHot(3)).spec == Composite(action=OneHot(3))


@pytest.mark.parametrize("spec", [OneHot(3), Categorical(3)])
def test_egreedy_draws_random_actions_only_when_a_row_explores(spec):
    # eps 0: the coin flips are the only draw (the generator moves as by them alone), and
    # the greedy actions pass through; eps 1: flips then random actions, as before
    module = EGreedyModule(spec, eps_init=0.0, eps_end=0.0)
    greedy = spec.rand((5,))
    torch.manual_seed(7)
    out = module(TensorDict({"action": greedy.clone()}, [5]))["action"]
    assert torch.equal(out, greedy)
    after = torch.rand(3)
    torch.manual_seed(7)
    torch.rand(5)
    assert torch.equal(after, torch.rand(3))

    module = EGreedyModule(spec, eps_init=1.0, eps_end=1.0)
    torch.manual_seed(7)
    out = module(TensorDict({"action": greedy.clone()}, [5]))["action"]
    torch.manual_seed(7)
    torch.rand(5)
    assert torch.equal(out, spec.rand((5,)))
