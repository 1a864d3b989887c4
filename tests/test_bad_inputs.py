import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import DDPG

from sb3_ddpg_plus import DDPGPlus, DDPGPlusPolicy
from sb3_ddpg_plus.hyperparams import load_hyperparams
from sb3_ddpg_plus.validation import DDPGPlusInputError, check_net_arch, check_train_freq
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
    # SB3 asserts: code written for it catches AssertionError, and still does
    with pytest.raises(AssertionError):
        DDPG("MlpPolicy", SpaceEnv(action_space))
    with pytest.raises(AssertionError, match=message):
        DDPGPlus("MlpPolicy", SpaceEnv(action_space))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(tau=-0.1), ValueError, "tau"),
        (dict(tau=1.5), ValueError, "tau"),
        (dict(gamma=-0.1), ValueError, "gamma"),
        (dict(gamma=1.2), ValueError, "gamma"),
        (dict(gamma=float("nan")), ValueError, "gamma"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(actor_learning_rate=-1e-3), ValueError, "actor_learning_rate"),
        (dict(critic_learning_rate="fast"), TypeError, "critic_learning_rate"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=32.5), TypeError, "batch_size"),
        (dict(buffer_size=-5), ValueError, "buffer_size"),
        (dict(buffer_size=0), ValueError, "buffer_size"),
        (dict(learning_starts=-1), ValueError, "learning_starts"),
        (dict(learning_starts=10.5), TypeError, "learning_starts"),
        (dict(learning_starts=1e-3), TypeError, "learning_starts"),
        (dict(learning_starts="1e3"), TypeError, "learning_starts"),
        (dict(train_freq=0), ValueError, "train_freq"),
        (dict(train_freq=2.5), ValueError, "train_freq"),
        (dict(train_freq=True), ValueError, "train_freq"),
        (dict(train_freq=(1, "hour")), ValueError, "train_freq"),
        (dict(train_freq=(4, "step", 1)), ValueError, "train_freq"),
        (dict(gradient_steps=-2), ValueError, "gradient_steps"),
        (dict(n_steps=0), ValueError, "n_steps"),
        (dict(policy_delay=0), ValueError, "policy_delay"),
        (dict(target_policy_noise=-0.2), ValueError, "target_policy_noise"),
        (dict(policy_kwargs=dict(n_critics=0)), ValueError, "n_critics"),
        (dict(policy_kwargs=dict(critic_weight_decay=-1.0)), ValueError, "critic_weight_decay"),
        # Policy options, as in SB3's TD3: not constructor arguments
        (dict(n_critics=2), TypeError, "n_critics"),
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


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(policy_kwargs=dict(net_arch="64,64")),
        dict(policy_kwargs=dict(net_arch=64)),
        dict(policy_kwargs=dict(net_arch=(64, 64))),
        dict(policy_kwargs=dict(net_arch=dict(pi=[64]))),
        dict(policy_kwargs=dict(net_arch=dict(pi=[64], vf=[64]))),
        dict(train_freq=0),
        dict(train_freq=(0, "episode")),
    ],
)
def test_what_sb3_asserts_is_still_an_assertion_error(kwargs):
    """An SB3 user's ``except AssertionError`` catches our clearer errors as it caught SB3's asserts."""
    for algorithm in (DDPG, DDPGPlus):
        with pytest.raises(AssertionError):
            algorithm("MlpPolicy", "Pendulum-v1", **FAST | kwargs).learn(60)  # SB3 asserts train_freq in learn()
    with pytest.raises(ValueError):
        DDPGPlus("MlpPolicy", "Pendulum-v1", **FAST | kwargs)


@pytest.mark.parametrize(
    ("net_arch", "error", "message"),
    [
        ("64,64", AssertionError, r"\[400, 300\].*dict\(pi=\[\.\.\.\], qf=\[\.\.\.\]\).*did you mean \[64, 64\]\?"),
        ("[256, 256]", AssertionError, r"did you mean \[256, 256\]"),
        ("large", AssertionError, r"list of layer sizes such as \[400, 300\] .* got 'large' \(str\)$"),
        (64, AssertionError, r"dict\(pi=\[\.\.\.\], qf=\[\.\.\.\]\), got 64 \(int\)"),
        ((64, 64), AssertionError, r"got \(64, 64\) \(tuple\)"),
        ({"pi": [64]}, AssertionError, r"keys 'pi' \(actor\) and 'qf' \(critic\).*missing \['qf'\].*\[400, 300\]"),
        ({"actor": [64], "critic": [64]}, AssertionError, r"missing \['pi', 'qf'\]"),
        ([64, -4], ValueError, r"`net_arch`: every layer needs at least one unit, got -4"),
        ([64, 0], ValueError, r"at least one unit, got 0"),
        ({"pi": [64], "qf": [0]}, ValueError, r"`net_arch\['qf'\]`: every layer needs at least one unit"),
        ([64.0], TypeError, r"integer layer sizes such as \[400, 300\], got 64.0"),
        ([True], TypeError, r"integer layer sizes"),
        ({"pi": "64", "qf": [64]}, TypeError, r"`net_arch\['pi'\]` must be a list of layer sizes"),
        ([[64]], TypeError, r"integer layer sizes"),
    ],
)
def test_net_arch_errors_name_the_expected_forms(net_arch, error, message):
    with pytest.raises(error, match=message):
        DDPGPlus("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=net_arch))
    # The policy checks it itself (custom code builds it without the algorithm)
    env = gym.make("Pendulum-v1")
    with pytest.raises(error, match=message):
        DDPGPlusPolicy(env.observation_space, env.action_space, lambda _: 1e-3, net_arch=net_arch)


@pytest.mark.parametrize(
    "net_arch",
    [None, [], [16], [np.int64(16), 8], dict(pi=[16], qf=[8]), dict(pi=(16,), qf=[]), dict(pi=[16], qf=[8], vf=[4])],
)
def test_net_arch_forms_sb3_accepts(net_arch):
    check_net_arch(net_arch)
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", **FAST | dict(policy_kwargs=dict(net_arch=net_arch)))
    model.learn(60)


def test_input_error_is_value_and_assertion_error():
    assert issubclass(DDPGPlusInputError, ValueError) and issubclass(DDPGPlusInputError, AssertionError)
    try:
        check_net_arch("64,64")
    except AssertionError as error:  # SB3-era code
        assert "dict(pi=" in str(error)


def test_check_train_freq_normalises():
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    assert check_train_freq(4) == 4 and type(check_train_freq(np.int64(4))) is int
    assert check_train_freq(4.0) == 4
    assert check_train_freq([4, "step"]) == (4, TrainFrequencyUnit.STEP)
    assert check_train_freq((2, TrainFrequencyUnit.EPISODE)) == (2, TrainFrequencyUnit.EPISODE)
    freq = check_train_freq(TrainFreq(2.0, "episode"))
    assert isinstance(freq, TrainFreq) and freq == TrainFreq(2, TrainFrequencyUnit.EPISODE)
    assert type(freq.frequency) is int


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"learning_starts": 10.5}, "learning_starts"),
        ({"train_freq": [2.5, "step"]}, "train_freq"),
        ({"policy_kwargs": {"net_arch": {"pi": [64]}}}, "net_arch"),
        ({"policy_kwargs": {"net_arch": "64,64"}}, "net_arch"),
    ],
)
def test_hyperparameter_files_refuse_what_the_constructor_refuses(data, message):
    with pytest.raises((TypeError, ValueError), match=message):
        load_hyperparams(data)


def test_layer_norm_has_one_spelling_per_network():
    """Layer norm is set per network (actor_layer_norm, critic_layer_norm): the old both-at-once shortcut is gone."""
    with pytest.raises(TypeError, match="layer_norm"):
        DDPGPlus("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(layer_norm=True))
