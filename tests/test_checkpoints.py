"""Complete, crash-safe checkpoints: everything training needs is equal after load."""

import random
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.checkpoints import MANIFEST, KeepLastCheckpointCallback, read_manifest
from tests.conftest import FAST


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # (module scope: the autouse SB3_LOGDIR fixture of conftest.py is not active yet)
        monkeypatch.setenv("SB3_LOGDIR", str(path / "sb3_logs"))
        return _save_and_load(path)


def _save_and_load(path):
    model = DDPGPlus(
        "MlpPolicy",
        gym.make("Pendulum-v1", max_episode_steps=40),
        action_noise={"type": "ou", "sigma": 0.3, "schedule": {"type": "linear", "final": 0.1, "duration": 1000}},
        param_noise={"initial_stddev": 0.1, "desired_action_stddev": 0.1},
        param_noise_adaption_interval=5,
        actor_learning_rate=lambda progress: 1e-3 * progress,
        seed=3,
        **FAST,
    )
    model.learn(150)
    model.save(path / "model.zip")
    model.save_replay_buffer(path / "buffer.pkl")
    rng = (random.random(), np.random.random(), th.rand(1).item(), model.action_space.sample())
    # An exact resume: the global generators continue from their save-time state
    loaded = DDPGPlus.load(path / "model.zip", env=gym.make("Pendulum-v1", max_episode_steps=40), restore_rng_state=True)
    loaded.load_replay_buffer(path / "buffer.pkl")
    rng_after_load = (random.random(), np.random.random(), th.rand(1).item(), loaded.action_space.sample())
    return model, loaded, rng, rng_after_load


def test_parameters_equal(saved):
    model, loaded, *_ = saved
    for (name, a), b in zip(model.policy.state_dict().items(), loaded.policy.state_dict().values(), strict=True):
        assert th.equal(a, b), name


def test_optimizer_states_equal(saved):
    model, loaded, *_ = saved
    for name in ("actor", "critic"):
        ours = getattr(model, name).optimizer.state_dict()
        theirs = getattr(loaded, name).optimizer.state_dict()
        assert ours["param_groups"] == theirs["param_groups"]
        for key, state in ours["state"].items():
            for field, value in state.items():
                assert th.equal(value, theirs["state"][key][field]), (name, key, field)


def test_buffer_contents_and_position_equal(saved):
    model, loaded, *_ = saved
    old, new = model.replay_buffer, loaded.replay_buffer
    np.testing.assert_array_equal(old._positions, new._positions)
    np.testing.assert_array_equal(old._full, new._full)
    np.testing.assert_array_equal(old._flags, new._flags)
    np.testing.assert_array_equal(old._rewards, new._rewards)
    np.testing.assert_array_equal(old._obs[""], new._obs[""])
    np.testing.assert_array_equal(old._actions, new._actions)


def test_action_noise_state_and_schedule_progress_equal(saved):
    model, loaded, *_ = saved
    np.testing.assert_array_equal(model.action_noise.noise_prev, loaded.action_noise.noise_prev)
    assert (model.action_noise.num_steps, model.action_noise.num_episodes) == (
        loaded.action_noise.num_steps,
        loaded.action_noise.num_episodes,
    )
    np.testing.assert_array_equal(model.action_noise.sigma, loaded.action_noise.sigma)
    assert model.action_noise._rng.bit_generator.state == loaded.action_noise._rng.bit_generator.state


def test_param_noise_sigma_and_seeds_equal(saved):
    model, loaded, *_ = saved
    assert model.param_noise.current_stddev == loaded.param_noise.current_stddev
    np.testing.assert_array_equal(model.param_noise_exploration.seeds, loaded.param_noise_exploration.seeds)
    assert model.param_noise_exploration.rng.bit_generator.state == loaded.param_noise_exploration.rng.bit_generator.state


def test_counters_and_learning_rate_progress_equal(saved):
    model, loaded, *_ = saved
    for attribute in ("num_timesteps", "_n_updates", "_episode_num", "_current_progress_remaining"):
        assert getattr(model, attribute) == getattr(loaded, attribute), attribute
    assert model.actor_lr_schedule(0.3) == loaded.actor_lr_schedule(0.3)


def test_random_generators_restored(saved):
    *_, rng, rng_after_load = saved
    assert rng[:3] == rng_after_load[:3]  # python, numpy, torch: the same next draws
    np.testing.assert_array_equal(rng[3], rng_after_load[3])  # action space


def test_keep_last_and_resume_in_one_call(tmp_path):
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_reward=False)
    model = DDPGPlus("MlpPolicy", venv, seed=0, **FAST)
    callback = KeepLastCheckpointCallback(save_freq=40, save_path=str(tmp_path), keep_last=2)
    model.learn(200, callback=callback)
    checkpoints = read_manifest(tmp_path)["checkpoints"]
    assert [c["num_timesteps"] for c in checkpoints] == [160, 200]
    assert len(list(tmp_path.glob("rl_model_*_steps.zip"))) == 2  # older ones deleted
    assert len(list(tmp_path.glob("rl_model_replay_buffer_*"))) == 2

    resumed = DDPGPlus.load_latest_checkpoint(tmp_path, env=DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    assert resumed.num_timesteps == 200
    assert isinstance(resumed.get_env(), VecNormalize)
    assert resumed.replay_buffer.size() == model.replay_buffer.size()
    resumed.learn(50, reset_num_timesteps=False)
    assert resumed.num_timesteps == 250


def test_no_checkpoint_and_bad_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        DDPGPlus.load_latest_checkpoint(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        DDPGPlus.load_latest_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="keep_last"):
        KeepLastCheckpointCallback(save_freq=1, save_path=str(tmp_path), keep_last=0)


def test_truncated_files_give_clear_errors(tmp_path):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", **FAST)
    model.learn(60)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    for name in ("model.zip", "buffer.pkl"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut_model\.zip"):
        DDPGPlus.load(tmp_path / "cut_model.zip")
    with pytest.raises(ValueError, match=r"cut_buffer\.pkl"):
        model.load_replay_buffer(tmp_path / "cut_buffer.pkl")


@pytest.mark.slow
def test_killed_while_saving_keeps_previous_checkpoint(tmp_path):
    """A process killed in the middle of writing leaves the previous model and buffer loadable."""
    script = textwrap.dedent(
        f"""
        import sys
        from sb3_ddpg_plus import DDPGPlus
        model = DDPGPlus("MlpPolicy", "Pendulum-v1", buffer_size=300_000, learning_starts=10, batch_size=8,
                         policy_kwargs=dict(net_arch=[512, 512]))
        model.learn(20)
        model.save(r"{tmp_path}/model.zip")
        model.save_replay_buffer(r"{tmp_path}/buffer.pkl")
        print("first", flush=True)
        while True:  # keep overwriting both files until killed
            model.save(r"{tmp_path}/model.zip")
            model.save_replay_buffer(r"{tmp_path}/buffer.pkl")
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "first"
    for delay in (0.3, 0.7, 1.1):  # kill at several points of the write loop
        time.sleep(delay)
        DDPGPlus.load(tmp_path / "model.zip")  # never a half-written file under the final name
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    model = DDPGPlus.load(tmp_path / "model.zip")
    model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert model.replay_buffer.size() >= 20
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(".tmp." in name for name in leftovers)  # at most the killed write's temporary file
