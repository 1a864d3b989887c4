"""An existing SB3 DDPG pipeline runs unchanged with the swapped import."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DDPG, HerReplayBuffer
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ddpg_plus import DDPGPlus
from tests.conftest import FAST


def test_is_an_off_policy_algorithm_with_ddpg_defaults():
    import inspect

    from stable_baselines3 import DDPG

    assert issubclass(DDPGPlus, OffPolicyAlgorithm)
    ours = inspect.signature(DDPGPlus.__init__).parameters
    for name, param in inspect.signature(DDPG.__init__).parameters.items():
        assert name in ours, name
        assert ours[name].default == param.default, name
    assert "stats_window_size" in ours


def test_typical_sb3_script(tmp_path):
    """The SB3 docs' DDPG example, with callbacks, VecNormalize and evaluate_policy."""
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), norm_obs=True, norm_reward=False)
    eval_env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=1), norm_obs=True, norm_reward=False, training=False)
    n_actions = env.action_space.shape[-1]
    action_noise = NormalActionNoise(mean=np.zeros(n_actions), sigma=0.1 * np.ones(n_actions))
    model = DDPGPlus(
        "MlpPolicy",
        env,
        action_noise=action_noise,
        verbose=0,
        learning_starts=50,
        batch_size=32,
        policy_kwargs=dict(net_arch=[32, 32]),
        tensorboard_log=None,
    )
    eval_callback = EvalCallback(
        eval_env,
        best_model_save_path=str(tmp_path / "best"),
        log_path=str(tmp_path / "eval"),
        eval_freq=50,
        n_eval_episodes=2,
        deterministic=True,
    )
    checkpoint = CheckpointCallback(
        save_freq=60, save_path=str(tmp_path / "ckpt"), save_replay_buffer=True, save_vecnormalize=True
    )
    model.learn(total_timesteps=240, callback=[eval_callback, checkpoint], progress_bar=False)
    assert (tmp_path / "best" / "best_model.zip").exists()
    assert any((tmp_path / "ckpt").glob("rl_model_replay_buffer_*"))
    assert np.load(tmp_path / "eval" / "evaluations.npz")["results"].shape[0] >= 2
    model.save(tmp_path / "ddpg_pendulum")
    env.save(tmp_path / "vecnormalize.pkl")
    del model
    model = DDPGPlus.load(tmp_path / "ddpg_pendulum")
    eval_env = VecNormalize.load(tmp_path / "vecnormalize.pkl", make_vec_env("Pendulum-v1", n_envs=1))
    eval_env.training = False
    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=2)
    assert np.isfinite(mean_reward) and std_reward >= 0


def test_her_replay_buffer():
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    model = DDPGPlus(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        learning_starts=20,
        batch_size=16,
        buffer_size=500,
        policy_kwargs=dict(net_arch=[16]),
        seed=0,
    )
    model.learn(100)
    assert isinstance(model.replay_buffer, HerReplayBuffer)
    assert model._n_updates > 0


def test_her_with_n_steps_warns_and_trains_as_upstream():
    """SB3 warns that n_steps is ignored with a replay buffer class of the user's, and trains on one-step returns."""
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    with pytest.warns(UserWarning, match="n_steps=3"):
        DDPG("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, n_steps=3, learning_starts=20)
    with pytest.warns(UserWarning, match=r"n_steps=3.*is ignored"):
        model = DDPGPlus(
            "MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, n_steps=3, learning_starts=20, batch_size=16
        )
    model.learn(60)
    assert model._n_updates > 0


def test_sb3_ou_noise_and_monitor():
    env = Monitor(gym.make("Pendulum-v1", max_episode_steps=40))
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.3 * np.ones(1))
    model = DDPGPlus("MlpPolicy", env, action_noise=noise, learning_starts=30, batch_size=16, policy_kwargs=dict(net_arch=[8]))
    model.learn(120, log_interval=1)
    assert len(model.ep_info_buffer) == 3


def test_tensorboard_log_name(tmp_path):
    pytest.importorskip("tensorboard")
    model = DDPGPlus(
        "MlpPolicy",
        "Pendulum-v1",
        tensorboard_log=str(tmp_path),
        learning_starts=10,
        batch_size=8,
        policy_kwargs=dict(net_arch=[8]),
    )
    model.learn(30)
    assert (tmp_path / "DDPGPlus_1").exists()


def _learn_both(n_timesteps, **kwargs):
    kwargs = FAST | kwargs
    return [algorithm("MlpPolicy", "Pendulum-v1", seed=0, **kwargs).learn(n_timesteps) for algorithm in (DDPG, DDPGPlus)]


@pytest.mark.parametrize(
    ("kwargs", "n_timesteps"),
    [
        (dict(learning_starts=1e3), 1100),  # a float from a YAML file
        (dict(learning_starts=np.int64(120)), 300),
        (dict(train_freq=TrainFreq(2, TrainFrequencyUnit.STEP)), 300),
        (dict(train_freq=(4, TrainFrequencyUnit.STEP)), 300),
        (dict(train_freq=TrainFreq(1, TrainFrequencyUnit.EPISODE), gradient_steps=-1), 400),
        (dict(train_freq=(1, "episode")), 400),
        (dict(gradient_steps=0), 200),
        (dict(tau=1), 200),
    ],
)
def test_sb3_inputs_train_as_upstream(kwargs, n_timesteps):
    """What SB3's DDPG accepts and trains on, DDPGPlus accepts and trains on with the same schedule of updates."""
    upstream, ours = _learn_both(n_timesteps, **kwargs)
    assert ours.num_timesteps == upstream.num_timesteps >= n_timesteps
    assert ours._n_updates == upstream._n_updates
    assert ours.train_freq == upstream.train_freq
    assert ours.learning_starts == upstream.learning_starts


def test_tau_zero_keeps_the_targets_as_upstream():
    """``tau=0.0`` (SB3 accepts it): the networks learn, their targets keep their initial weights."""
    for algorithm in (DDPG, DDPGPlus):
        model = algorithm("MlpPolicy", "Pendulum-v1", tau=0.0, seed=0, **FAST)
        targets = [param.clone() for param in (*model.actor_target.parameters(), *model.critic_target.parameters())]
        actor = [param.clone() for param in model.actor.parameters()]
        model.learn(200)
        assert model._n_updates == 150
        after = [*model.actor_target.parameters(), *model.critic_target.parameters()]
        assert all(th.equal(before, now) for before, now in zip(targets, after, strict=True))
        assert not all(th.equal(before, now) for before, now in zip(actor, model.actor.parameters(), strict=True))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(buffer_size=1e3, learning_starts=5e1, batch_size=32.0),  # YAML reads 1e3 as a float
        dict(gradient_steps=2.0, n_steps=np.float64(3)),
        dict(train_freq=4.0),
        dict(train_freq=np.int64(4)),
        dict(train_freq=(np.int64(4), "step")),
        dict(train_freq=[4.0, "step"]),
        dict(
            policy_kwargs=dict(net_arch=[16, 16], n_critics=2.0), policy_delay=np.int64(2), param_noise_adaption_interval=10.0
        ),
    ],
)
def test_integral_floats_are_counts(kwargs):
    """Counts given as integral floats or numpy integers (what YAML and numpy give) are used as ints."""
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST | kwargs)
    for name in ("buffer_size", "learning_starts", "batch_size", "gradient_steps", "n_steps", "policy_delay"):
        assert type(getattr(model, name)) is int, name
    assert type(model.train_freq.frequency) is int
    assert type(model.param_noise_adaption_interval) is int
    model.learn(120)
    assert model._n_updates > 0
    expected = {key: int(value) for key, value in kwargs.items() if key not in ("train_freq", "policy_kwargs")}
    assert {key: getattr(model, key) for key in expected} == expected
    if "train_freq" in kwargs:
        assert model.train_freq == TrainFreq(4, TrainFrequencyUnit.STEP)
    if "policy_kwargs" in kwargs:
        assert model.policy_kwargs["n_critics"] == 2 and len(model.critic.q_networks) == 2
