"""EnvBase.*_spec_unbatched: the specs of one sub-env (TorchRL's names)."""

import pytest

from streamrl.envs import GymEnv, SerialEnv, StepCounter, TransformedEnv

NAMES = ["action_spec", "full_action_spec", "observation_spec", "full_observation_spec",
         "reward_spec", "full_reward_spec", "done_spec", "full_done_spec", "full_state_spec"]


@pytest.mark.parametrize("name", NAMES)
def test_batched_env_drops_the_batch_dims(name):
    env = SerialEnv(2, lambda: GymEnv("Pendulum-v1"))
    single = GymEnv("Pendulum-v1")
    try:
        unbatched = getattr(env, f"{name}_unbatched")
        assert unbatched.shape == getattr(single, name).shape
        assert unbatched == getattr(single, name)
    finally:
        env.close()
        single.close()


def test_unbatched_env_and_transforms_count():
    env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter())
    try:
        spec = env.action_spec_unbatched
        assert spec == env.action_spec
        assert "step_count" in env.observation_spec_unbatched.keys()
        assert env.state_spec_unbatched == env.full_state_spec
    finally:
        env.close()
