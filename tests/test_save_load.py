import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ddpg_plus import DDPGPlus, DDPGPlusPolicy, DDPGPlusReplayBuffer
from sb3_ddpg_plus.policies import Actor
from tests.conftest import FAST

OPTIONS = [
    dict(),
    dict(action_noise={"type": "ornstein-uhlenbeck", "sigma": 0.3}, n_steps=3),
    dict(param_noise={"initial_stddev": 0.1, "desired_action_stddev": 0.1}, optimize_memory_usage=True),
    dict(
        policy_kwargs=dict(net_arch=[16, 16], n_critics=2),
        policy_delay=2,
        target_policy_noise=0.2,
        target_noise_clip=0.5,
        actor_learning_rate=1e-4,
    ),
    dict(policy_kwargs=dict(net_arch=dict(pi=[16], qf=[24, 8]), actor_layer_norm=True, critic_layer_norm=True)),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_save_load_same_actions_and_parameters(tmp_path, options):
    kwargs = {**FAST, **options}
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **kwargs)
    model.learn(150)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(10, 3)).astype(np.float32)
    actions, _ = model.predict(obs)
    params = model.get_parameters()
    model.save(tmp_path / "model.zip")

    loaded = DDPGPlus.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    new_actions, _ = loaded.predict(obs)
    np.testing.assert_array_equal(actions, new_actions)
    loaded_params = loaded.get_parameters()
    for name, state in params.items():
        for key, value in state.items():
            if isinstance(value, th.Tensor):
                assert th.equal(value, loaded_params[name][key]), (name, key)
    for attribute in (
        "gamma",
        "tau",
        "policy_delay",
        "target_policy_noise",
        "actor_learning_rate",
        "n_steps",
        "num_timesteps",
    ):
        assert getattr(loaded, attribute) == getattr(model, attribute)
    assert loaded.policy_kwargs == model.policy_kwargs
    # keeps training
    loaded.learn(60, reset_num_timesteps=False)
    assert loaded.num_timesteps == model.num_timesteps + 60


def test_set_parameters_round_trip():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    other = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=1, **FAST)
    other.set_parameters(model.get_parameters())
    obs = np.zeros((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(obs)[0], other.predict(obs)[0])


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_replay_buffer_save_load(tmp_path, optimize_memory_usage):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", optimize_memory_usage=optimize_memory_usage, n_steps=2, seed=0, **FAST)
    model.learn(120)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    new = DDPGPlus("MlpPolicy", "Pendulum-v1", optimize_memory_usage=optimize_memory_usage, n_steps=2, seed=0, **FAST)
    new.load_replay_buffer(tmp_path / "buffer.pkl")
    assert isinstance(new.replay_buffer, DDPGPlusReplayBuffer)
    old, loaded = model.replay_buffer, new.replay_buffer
    assert loaded.size() == old.size()
    np.testing.assert_array_equal(loaded._flags, old._flags)
    np.testing.assert_array_equal(loaded._positions, old._positions)
    np.testing.assert_array_equal(loaded._obs[""], old._obs[""])
    np.random.seed(0)
    a = old.sample(16)
    np.random.seed(0)
    b = loaded.sample(16)
    for x, y in zip(a, b, strict=True):
        if x is not None:
            assert th.equal(x, y)


def test_policy_and_actor_save_load(tmp_path):
    model = DDPGPlus(
        "MlpPolicy", "Pendulum-v1", seed=0, **{**FAST, "policy_kwargs": dict(net_arch=[16, 16], actor_layer_norm=True)}
    )
    obs = np.zeros((3, 3), dtype=np.float32)
    model.policy.save(tmp_path / "policy.pth")
    policy = DDPGPlusPolicy.load(tmp_path / "policy.pth")
    np.testing.assert_array_equal(policy.predict(obs)[0], model.predict(obs)[0])
    assert policy.actor_layer_norm and not policy.critic_layer_norm
    model.actor.save(tmp_path / "actor.pth")
    actor = Actor.load(tmp_path / "actor.pth")
    assert actor.layer_norm
    np.testing.assert_array_equal(actor.predict(obs)[0], model.predict(obs)[0])


def test_load_with_vec_env_and_n_envs_change(tmp_path):
    model = DDPGPlus("MlpPolicy", DummyVecEnv([lambda: gym.make("Pendulum-v1")] * 2), seed=0, **FAST)
    model.learn(100)
    model.save(tmp_path / "model.zip")
    loaded = DDPGPlus.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    loaded.learn(50)
    assert loaded.n_envs == 1


def test_noise_state_is_saved(tmp_path):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", action_noise={"type": "ou", "sigma": 0.3}, seed=0, **FAST)
    model.learn(120)
    model.save(tmp_path / "model.zip")
    loaded = DDPGPlus.load(tmp_path / "model.zip")
    np.testing.assert_array_equal(loaded.action_noise.noise_prev, model.action_noise.noise_prev)
    # the noise continues the same random sequence
    np.testing.assert_array_equal(loaded.action_noise(), model.action_noise())
