import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ddpg_plus import DDPGPlus
from tests.conftest import FAST

NOISES = [
    dict(),
    dict(action_noise={"type": "normal", "sigma": 0.2}),
    dict(action_noise={"type": "ornstein-uhlenbeck", "sigma": 0.3}),
    dict(param_noise={"initial_stddev": 0.1, "desired_action_stddev": 0.1}, param_noise_adaption_interval=10),
    dict(policy_kwargs=dict(net_arch=[16, 16], n_critics=2), policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5),
]


def train(n_envs, options, seed=7):
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=50)] * n_envs)
    model = DDPGPlus("MlpPolicy", env, seed=seed, **(FAST | options))
    model.learn(200)
    return model


@pytest.mark.parametrize("n_envs", [1, 2])
@pytest.mark.parametrize("options", NOISES)
def test_same_seed_same_parameters(n_envs, options):
    first, second = train(n_envs, options), train(n_envs, options)
    for (name, a), b in zip(first.policy.state_dict().items(), second.policy.state_dict().values(), strict=True):
        assert th.equal(a, b), name
    np.testing.assert_array_equal(first.replay_buffer._actions, second.replay_buffer._actions)


def test_different_seed_different_parameters():
    first, second = train(1, NOISES[1], seed=1), train(1, NOISES[1], seed=2)
    assert not th.equal(next(first.actor.parameters()), next(second.actor.parameters()))
