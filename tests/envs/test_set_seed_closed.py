"""``set_seed`` on a closed env raises EnvClosedError naming the call and the env (GymEnv,
SerialEnv, ParallelEnv, TransformedEnv, views), before any work."""

import pytest

from streamrl.envs import EnvClosedError, ParallelEnv, SerialEnv, StepCounter, TransformedEnv
from streamrl.envs.libs.gym import GymEnv


def make():
    return GymEnv("CartPole-v1")


CASES = {
    "gym": make,
    "serial": lambda: SerialEnv(2, make),
    "parallel": lambda: ParallelEnv(2, make),
    "transformed": lambda: TransformedEnv(make(), StepCounter()),
    "transformed-parallel": lambda: TransformedEnv(ParallelEnv(2, make), StepCounter()),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("started", [True, False])
def test_set_seed_after_close_raises(name, started):
    env = CASES[name]()
    if started:
        assert env.set_seed(3) == 3 + max(1, env.batch_size.numel())
    env.close()
    outer = type(env).__name__
    with pytest.raises(EnvClosedError, match=rf"set_seed\(7\): expected an open {outer}, found "
                                             "a closed one"):
        env.set_seed(7)
    with pytest.raises(EnvClosedError, match="set_seed"):
        env.set_seed(None)


def test_set_seed_of_transformed_env_whose_base_env_was_closed():
    base = SerialEnv(2, make)
    env = TransformedEnv(base, StepCounter())
    env.set_seed(0)
    base.close()
    with pytest.raises(EnvClosedError, match=r"expected an open TransformedEnv.*SerialEnv is closed"):
        env.set_seed(1)
    env.close()


@pytest.mark.parametrize("cls", [SerialEnv, ParallelEnv])
def test_set_seed_of_a_view_after_its_parent_closed(cls):
    env = cls(3, make)
    view = env[1:]
    assert view.set_seed(5) == 7
    env.close()
    with pytest.raises(EnvClosedError, match=rf"set_seed\(5\): expected an open .*{cls.__name__}"):
        view.set_seed(5)
