import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from sb3_ddpg_plus import DDPGPlus
from tests.conftest import FAST


class SpaceEnv(gym.Env):
    def __init__(self, action_space):
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = action_space

    def reset(self, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize(
    ("action_space", "message"),
    [
        (spaces.Discrete(3), "Box action space, got Discrete"),
        (spaces.MultiDiscrete([2, 3]), "Box action space"),
        (spaces.Box(-np.inf, np.inf, (2,), np.float32), "finite bounds"),
        (spaces.Box(np.array([-1, -np.inf]), np.array([1, 1]), dtype=np.float32), "finite bounds"),
    ],
)
def test_bad_action_spaces(action_space, message):
    with pytest.raises(ValueError, match=message):
        DDPGPlus("MlpPolicy", SpaceEnv(action_space))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(tau=0.0), ValueError, "tau"),
        (dict(tau=1.5), ValueError, "tau"),
        (dict(gamma=-0.1), ValueError, "gamma"),
        (dict(gamma=float("nan")), ValueError, "gamma"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(actor_learning_rate=-1e-3), ValueError, "actor_learning_rate"),
        (dict(critic_learning_rate="fast"), TypeError, "critic_learning_rate"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=32.5), TypeError, "batch_size"),
        (dict(buffer_size=-5), ValueError, "buffer_size"),
        (dict(train_freq=0), ValueError, "train_freq"),
        (dict(train_freq=(1, "hour")), ValueError, "train_freq"),
        (dict(gradient_steps=-2), ValueError, "gradient_steps"),
        (dict(n_steps=0), ValueError, "n_steps"),
        (dict(policy_delay=0), ValueError, "policy_delay"),
        (dict(target_policy_noise=-0.2), ValueError, "target_policy_noise"),
        (dict(n_critics=0), ValueError, "n_critics"),
        (dict(critic_weight_decay=-1.0), ValueError, "critic_weight_decay"),
        (dict(param_noise_adaption_interval=0), ValueError, "param_noise_adaption_interval"),
        (dict(action_noise={"type": "brown", "sigma": 0.1}), ValueError, "action noise type"),
        (dict(action_noise={"type": "normal", "sigma": -1.0}), ValueError, "sigma"),
        (dict(action_noise={"type": "normal", "sigma": [0.1, 0.2]}), ValueError, "shape"),
        (dict(action_noise={"type": "normal", "sigma": 0.1, "schedule": {"type": "step"}}), ValueError, "schedule type"),
        (dict(action_noise="normal"), TypeError, "action_noise"),
        (dict(param_noise={"initial_stddev": -1}), ValueError, "initial_stddev"),
        (dict(policy_kwargs=[64, 64]), TypeError, "policy_kwargs"),
        (dict(manual_backward="yes"), TypeError, "manual_backward"),
        (dict(check_numerics=1), TypeError, "check_numerics"),
        (dict(policy="LstmPolicy"), ValueError, "LstmPolicy"),
    ],
)
def test_bad_hyperparameters(kwargs, error, message):
    kwargs = {"policy": "MlpPolicy", **kwargs}
    with pytest.raises(error, match=message):
        DDPGPlus(env="Pendulum-v1", **kwargs)


def test_nan_check_names_the_tensor_and_step():
    class NaNRewardEnv(SpaceEnv):
        def __init__(self):
            super().__init__(spaces.Box(-1, 1, (1,), np.float32))
            self.t = 0

        def step(self, action):
            self.t += 1
            reward = float("nan") if self.t == 30 else 0.0
            return np.zeros(2, np.float32), reward, False, False, {}

    model = DDPGPlus("MlpPolicy", NaNRewardEnv(), check_numerics=True, **FAST)
    with pytest.raises(FloatingPointError, match="rewards at timestep 30"):
        model.learn(100)


def test_nan_observation_detected():
    class NaNObsEnv(SpaceEnv):
        def __init__(self):
            super().__init__(spaces.Box(-1, 1, (1,), np.float32))

        def step(self, action):
            return np.full(2, np.nan, np.float32), 0.0, False, False, {}

    model = DDPGPlus("MlpPolicy", NaNObsEnv(), check_numerics=True, **FAST)
    with pytest.raises(FloatingPointError, match="observations at timestep 1"):
        model.learn(10)


def test_unreadable_model_file(tmp_path):
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(Exception) as info:
        DDPGPlus.load(bad)
    assert "zip" in str(info.value).lower() or "model.zip" in str(info.value)
    with pytest.raises(FileNotFoundError):
        DDPGPlus.load(tmp_path / "missing.zip")
