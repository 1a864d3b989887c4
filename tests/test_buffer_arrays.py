"""
SB3's public replay-buffer arrays, read as an SB3 user's code reads them.

Code written for SB3 reads ``model.replay_buffer.observations[: rb.size()]``, ``rb.rewards[rb.pos - 1]``,
``rb.dones`` ... to export offline datasets or plot. Each test trains DDPGPlus while every ``add()`` call also goes
to an upstream ``ReplayBuffer`` (or ``DictReplayBuffer``), then compares names, shapes, dtypes, values and
``pos``/``full``/``size()``, after the rows have wrapped around, with terminations and time-limit truncations that
fall at different steps in each environment.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv

from sb3_ddpg_plus import DDPGPlus, DDPGPlusReplayBuffer

ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
ROWS = 64  # rows per environment (SB3 divides buffer_size by n_envs)
SMALL = dict(learning_starts=50, batch_size=16, policy_kwargs=dict(net_arch=[8]), seed=0)


class RandomTermination(gym.Wrapper):
    """Pendulum never terminates: end some episodes early, drawn from the env's own (seeded) generator, so that
    terminations, truncations and episode lengths differ between environments."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated or bool(self.np_random.random() < 0.04), truncated, info


def pendulum(n_envs):
    return make_vec_env(
        "Pendulum-v1", n_envs=n_envs, seed=0, env_kwargs=dict(max_episode_steps=45), wrapper_class=RandomTermination
    )


def mirror_adds(model, upstream_buffers):
    """Send every add() of the model's buffer to the upstream buffers too; record (pos, full, size()) after each."""
    buffer = model.replay_buffer
    own_add = buffer.add
    counters = []

    def add(*args):
        own_add(*args)
        for upstream in upstream_buffers:
            upstream.add(*args)
        counters.append(
            (
                (buffer.pos, buffer.full, buffer.size()),
                (upstream_buffers[0].pos, upstream_buffers[0].full, upstream_buffers[0].size()),
            )
        )

    buffer.add = add
    return counters


def rows(mask, array):
    """``array`` where ``mask`` (a row, env mask) is true, zero elsewhere."""
    return np.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)


@pytest.mark.parametrize(
    "n_envs, optimize_memory_usage, n_steps", [(1, False, 1), (2, False, 1), (1, True, 1), (2, True, 1), (2, True, 3)]
)
def test_arrays_match_upstream_after_learn(n_envs, optimize_memory_usage, n_steps):
    env = pendulum(n_envs)
    model = DDPGPlus(
        "MlpPolicy", env, buffer_size=ROWS * n_envs, optimize_memory_usage=optimize_memory_usage, n_steps=n_steps, **SMALL
    )
    upstream = ReplayBuffer(ROWS * n_envs, model.observation_space, model.action_space, "cpu", n_envs=n_envs)
    # SB3's own memory-optimised layout (it refuses time-limit handling there)
    upstream_optimized = ReplayBuffer(
        ROWS * n_envs,
        model.observation_space,
        model.action_space,
        "cpu",
        n_envs=n_envs,
        optimize_memory_usage=True,
        handle_timeout_termination=False,
    )
    counters = mirror_adds(model, [upstream, upstream_optimized])
    model.learn(300)
    rb = model.replay_buffer

    # pos, full and size() count rows per environment, one per add(), before and after the wrap-around
    assert len(counters) == 300 // n_envs
    assert [ours for ours, _ in counters] == [theirs for _, theirs in counters]
    assert rb.full and rb.buffer_size == upstream.buffer_size == ROWS
    # the window holds terminations and truncations (where the two buffers' layouts differ most)
    assert np.any(upstream.dones * (1 - upstream.timeouts)) and np.any(upstream.timeouts)

    for name in ARRAYS:
        ours, theirs = getattr(rb, name), getattr(upstream, name)
        assert isinstance(ours, np.ndarray), name
        assert (ours.shape, ours.dtype) == (theirs.shape, theirs.dtype), name
        assert not ours.flags.writeable, name

    valid = rb.valid_mask()
    if not optimize_memory_usage:
        assert valid.all()
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(rb, name), getattr(upstream, name), err_msg=name)
        # the big arrays are views of the storage, not copies
        assert np.shares_memory(rb.observations, rb._obs[""]) and np.shares_memory(rb.rewards, rb._rewards)
    else:
        # Each episode end costs one of the oldest rows (and row pos, as in SB3's memory-optimised buffer)
        assert not valid[rb.pos].any()
        for env_index in range(n_envs):
            window_ends = int(upstream.dones[:, env_index].sum())
            assert 1 <= int((~valid[:, env_index]).sum()) <= window_ends + 2
        for name in ARRAYS:
            ours, theirs = getattr(rb, name), getattr(upstream, name)
            np.testing.assert_array_equal(rows(valid, ours), rows(valid, theirs), err_msg=name)
            if name != "observations":
                np.testing.assert_array_equal(rows(~valid, ours), np.zeros_like(ours), err_msg=name)
        # SB3's memory-optimised layout: row pos holds the newest transition's next observation
        newest = (rb.pos - 1) % rb.buffer_size
        np.testing.assert_array_equal(rb.observations[rb.pos], upstream.next_observations[newest])
        np.testing.assert_array_equal(rb.observations[rb.pos], upstream_optimized.observations[rb.pos])
        np.testing.assert_array_equal(rows(valid, rb.observations), rows(valid, upstream_optimized.observations))

    # What SB3 users write
    np.testing.assert_array_equal(rb.rewards[rb.pos - 1], upstream.rewards[upstream.pos - 1])
    exported = {name: getattr(rb, name)[: rb.size()].reshape(rb.size() * n_envs, -1) for name in ARRAYS}
    assert exported["observations"].shape == (ROWS * n_envs, 3)
    assert exported["dones"].shape == (ROWS * n_envs, 1)


def test_arrays_are_read_only():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", buffer_size=100, **SMALL)
    model.learn(60)
    rb = model.replay_buffer
    for name in ARRAYS:
        with pytest.raises(ValueError, match="read-only"):
            getattr(rb, name)[0] = 1  # a write would either bypass the sampler's flags or be lost in a copy


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_learn_restart_reads_as_a_truncation(optimize_memory_usage):
    """learn() with reset_num_timesteps=True resets the envs: the open episode's last row is a truncated episode end
    (SB3 leaves it not done without memory optimisation, and marks it done, not timed out, with it)."""
    model = DDPGPlus("MlpPolicy", pendulum(2), buffer_size=2 * ROWS, optimize_memory_usage=optimize_memory_usage, **SMALL)
    upstream = ReplayBuffer(2 * ROWS, model.observation_space, model.action_space, "cpu", n_envs=2)
    counters = mirror_adds(model, [upstream])
    model.learn(60)
    model.learn(60)
    rb = model.replay_buffer
    assert [ours for ours, _ in counters] == [theirs for _, theirs in counters]
    assert (rb.pos, rb.full) == (60, False)
    restart_row = 30 - 1  # the last row of the first learn() (30 add() calls of 2 environments)
    open_episode = upstream.dones[restart_row] == 0
    assert open_episode.any()
    expected_dones, expected_timeouts = upstream.dones.copy(), upstream.timeouts.copy()
    expected_dones[restart_row] = 1.0
    expected_timeouts[restart_row, open_episode] = 1.0
    # (in memory-optimised mode episode ends, the restart's included, cost some of the oldest rows)
    valid = rb.valid_mask()
    assert valid[: rb.size()].all() != optimize_memory_usage and valid[restart_row].all()
    np.testing.assert_array_equal(rows(valid, rb.dones), rows(valid, expected_dones))
    np.testing.assert_array_equal(rows(valid, rb.timeouts), rows(valid, expected_timeouts))
    assert not np.any((rb.dones * (1 - rb.timeouts))[restart_row, open_episode])  # the target bootstraps through it
    for name in ("observations", "next_observations", "actions", "rewards"):
        np.testing.assert_array_equal(rows(valid, getattr(rb, name)), rows(valid, getattr(upstream, name)), err_msg=name)


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_dict_observations_match_upstream(optimize_memory_usage):
    env = make_vec_env(lambda: SimpleMultiObsEnv(random_start=True, discrete_actions=False), n_envs=2, seed=0)
    model = DDPGPlus(
        "MultiInputPolicy",
        env,
        buffer_size=2 * 40,
        optimize_memory_usage=optimize_memory_usage,
        **SMALL | dict(learning_starts=200),
    )
    upstream = DictReplayBuffer(2 * 40, model.observation_space, model.action_space, "cpu", n_envs=2)
    counters = mirror_adds(model, [upstream])
    model.learn(200)
    rb = model.replay_buffer
    assert [ours for ours, _ in counters] == [theirs for _, theirs in counters] and rb.full
    valid = rb.valid_mask()
    for name in ("observations", "next_observations"):
        ours, theirs = getattr(rb, name), getattr(upstream, name)
        assert isinstance(ours, dict) and list(ours) == list(theirs)
        for key in theirs:
            assert (ours[key].shape, ours[key].dtype) == (theirs[key].shape, theirs[key].dtype)
            np.testing.assert_array_equal(rows(valid, ours[key]), rows(valid, theirs[key]), err_msg=f"{name}[{key}]")
    for name in ("actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(rows(valid, getattr(rb, name)), rows(valid, getattr(upstream, name)), err_msg=name)
    assert valid.all() != optimize_memory_usage


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_torch_storage_arrays_are_numpy(monkeypatch, optimize_memory_usage):
    """GPU storage (torch tensors), exercised on the CPU: the arrays are numpy copies with the same values."""
    monkeypatch.setattr(DDPGPlusReplayBuffer, "_on_cpu", property(lambda self: False))
    env = pendulum(2)
    model = DDPGPlus("MlpPolicy", env, buffer_size=2 * ROWS, optimize_memory_usage=optimize_memory_usage, **SMALL)
    assert isinstance(model.replay_buffer._obs[""], th.Tensor)
    upstream = ReplayBuffer(2 * ROWS, model.observation_space, model.action_space, "cpu", n_envs=2)
    mirror_adds(model, [upstream])
    model.learn(200)
    rb = model.replay_buffer
    valid = rb.valid_mask()
    for name in ARRAYS:
        ours = getattr(rb, name)
        assert isinstance(ours, np.ndarray)
        np.testing.assert_array_equal(rows(valid, ours), rows(valid, getattr(upstream, name)), err_msg=name)
