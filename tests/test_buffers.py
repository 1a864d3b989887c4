"""
The replay buffer against a brute-force reference.

Each observation encodes (env, step index) so that any sampled transition can be checked against the full
trajectory kept in plain Python lists: next observation (the terminal one at episode ends), n-step return, discount
and done flag, across terminations, truncations and the ring's wrap-around, with and without memory optimisation.
"""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_ddpg_plus import DDPGPlusReplayBuffer
from sb3_ddpg_plus.buffers import VALID

OBS_SPACE = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
ACT_SPACE = spaces.Box(-1, 1, shape=(2,), dtype=np.float32)
GAMMA = 0.9


class Reference:
    """Every transition of every environment, in order, with its episode boundaries."""

    def __init__(self, n_envs):
        self.transitions = [[] for _ in range(n_envs)]

    def add(self, env, obs, next_obs, action, reward, terminated, truncated):
        self.transitions[env].append(
            dict(
                obs=obs.copy(),
                next_obs=next_obs.copy(),
                action=action.copy(),
                reward=reward,
                terminated=terminated,
                end=terminated or truncated,
            )
        )

    def expected(self, env, step, n_steps):
        """n-step target pieces for transition `step` of `env`, never reading past the newest transition."""
        trajectory = self.transitions[env]
        ret, discount, last = 0.0, 1.0, step
        for k in range(n_steps):
            if step + k >= len(trajectory):
                break
            transition = trajectory[step + k]
            ret += (GAMMA**k) * transition["reward"]
            discount = GAMMA ** (k + 1)
            last = step + k
            if transition["end"]:
                break
        return ret, discount, trajectory[last]["next_obs"], float(trajectory[last]["terminated"])


def fill(buffer, n_envs, n_steps_total, seed, episode_len_range=(2, 9)):
    rng = np.random.default_rng(seed)
    reference = Reference(n_envs)
    step_in_episode = np.zeros(n_envs, dtype=int)
    episode_len = rng.integers(*episode_len_range, size=n_envs)
    counters = np.zeros(n_envs, dtype=int)
    obs = np.array([[e, 0, 0.0] for e in range(n_envs)], dtype=np.float32)
    for _ in range(n_steps_total):
        action = rng.uniform(-1, 1, size=(n_envs, 2)).astype(np.float32)
        reward = rng.normal(size=n_envs).astype(np.float32)
        step_in_episode += 1
        counters += 1
        ended = step_in_episode >= episode_len
        truncated = ended & (rng.random(n_envs) < 0.5)
        terminated = ended & ~truncated
        # next observation: the "real" one (terminal at episode ends); the third entry marks terminal observations
        next_obs = np.array([[e, counters[e], 1.0 if ended[e] else 0.0] for e in range(n_envs)], dtype=np.float32)
        infos = [{"TimeLimit.truncated": bool(truncated[e])} for e in range(n_envs)]
        buffer.add(obs, next_obs, action, reward, ended, infos)
        for e in range(n_envs):
            reference.add(e, obs[e], next_obs[e], action[e], float(reward[e]), bool(terminated[e]), bool(truncated[e]))
        # what the env returns: reset observation after an episode end
        obs = next_obs.copy()
        for e in range(n_envs):
            if ended[e]:
                counters[e] += 1
                obs[e] = [e, counters[e], 0.0]
                step_in_episode[e] = 0
                episode_len[e] = rng.integers(*episode_len_range)
    return reference


def step_of(reference, env, obs):
    """Index of the transition whose observation is `obs` (observations are unique per env)."""
    for idx, transition in enumerate(reference.transitions[env]):
        if np.array_equal(transition["obs"], obs):
            return idx
    raise AssertionError(f"observation {obs} was never stored")


def check_all_valid_slots(buffer, reference, n_steps):
    envs, slots = np.nonzero(buffer._flags & VALID)
    assert len(envs) > 0
    samples = buffer.samples_at(envs, slots)
    checked = 0
    for i, (env, _) in enumerate(zip(envs, slots, strict=True)):
        obs = samples.observations[i].numpy()
        assert int(obs[0]) == env
        step = step_of(reference, env, obs)
        ret, discount, next_obs, done = reference.expected(env, step, n_steps)
        transition = reference.transitions[env][step]
        np.testing.assert_array_equal(samples.actions[i].numpy(), transition["action"])
        np.testing.assert_array_equal(samples.next_observations[i].numpy(), next_obs)
        assert samples.rewards[i].item() == pytest.approx(ret, rel=1e-5, abs=1e-5)
        assert samples.dones[i].item() == done
        if n_steps > 1:
            assert samples.discounts[i].item() == pytest.approx(discount, rel=1e-6)
        else:
            assert samples.discounts is None
        checked += 1
    return checked


@pytest.mark.parametrize("n_envs", [1, 2])
@pytest.mark.parametrize("optimize_memory_usage", [False, True])
@pytest.mark.parametrize("n_steps", [1, 3])
@pytest.mark.parametrize("total_steps", [15, 137])  # before and well after wrap-around
def test_samples_match_reference(n_envs, optimize_memory_usage, n_steps, total_steps):
    buffer = DDPGPlusReplayBuffer(
        40 * n_envs,
        OBS_SPACE,
        ACT_SPACE,
        device="cpu",
        n_envs=n_envs,
        optimize_memory_usage=optimize_memory_usage,
        n_steps=n_steps,
        gamma=GAMMA,
    )
    reference = fill(buffer, n_envs, total_steps, seed=total_steps + n_envs)
    checked = check_all_valid_slots(buffer, reference, n_steps)
    # Every recent transition is still there: at most one slot per episode end is spent on final observations
    for env in range(n_envs):
        episodes = sum(t["end"] for t in reference.transitions[env][-40:])
        kept = int((buffer._flags[env] & VALID).astype(bool).sum())
        expected_min = min(total_steps, 40 - (episodes + 1 if optimize_memory_usage else 0))
        assert kept >= expected_min
    assert checked == int((buffer._flags & VALID).astype(bool).sum())


def test_truncation_bootstraps_in_memory_mode():
    """The case SB3 forbids: memory optimisation + time limits. A truncated transition keeps its terminal obs."""
    buffer = DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu", optimize_memory_usage=True)
    obs = np.zeros((1, 3), dtype=np.float32)
    terminal = np.full((1, 3), 7.0, dtype=np.float32)
    reset_obs = np.full((1, 3), -1.0, dtype=np.float32)
    action = np.zeros((1, 2), dtype=np.float32)
    buffer.add(obs, terminal, action, np.ones(1), np.array([True]), [{"TimeLimit.truncated": True}])
    buffer.add(reset_obs, reset_obs + 1, action, np.ones(1), np.array([False]), [{}])
    sample = buffer.samples_at(np.array([0]), np.array([0]))
    np.testing.assert_array_equal(sample.next_observations.numpy(), terminal)
    assert sample.dones.item() == 0.0  # truncation is not termination: the target bootstraps
    # SB3 refuses this combination outright
    with pytest.raises(ValueError):
        ReplayBuffer(10, OBS_SPACE, ACT_SPACE, optimize_memory_usage=True, handle_timeout_termination=True)


def test_without_timeout_handling_truncation_is_done():
    buffer = DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu", handle_timeout_termination=False)
    obs = np.zeros((1, 3), dtype=np.float32)
    buffer.add(obs, obs, np.zeros((1, 2)), np.ones(1), np.array([True]), [{"TimeLimit.truncated": True}])
    assert buffer.samples_at(np.array([0]), np.array([0])).dones.item() == 1.0


def test_sampling_is_uniform_over_valid_transitions():
    buffer = DDPGPlusReplayBuffer(60, OBS_SPACE, ACT_SPACE, device="cpu", n_envs=2, optimize_memory_usage=True)
    fill(buffer, 2, 80, seed=3)
    np.random.seed(0)
    envs, slots = buffer._sample_slots(60_000)
    assert np.all(buffer._flags[envs, slots] & VALID)
    counts = np.bincount(envs * buffer.buffer_size + slots, minlength=2 * buffer.buffer_size)
    valid = (buffer._flags & VALID).astype(bool).reshape(-1)
    # Each valid transition is drawn with probability ~1/n_valid (within 5 standard deviations)
    expected = 60_000 / valid.sum()
    assert np.all(np.abs(counts[valid] - expected) < 5 * np.sqrt(expected))
    assert np.all(counts[~valid] == 0)


def test_memory_footprint_vs_sb3():
    obs_space = spaces.Box(-np.inf, np.inf, shape=(26,), dtype=np.float32)  # HalfCheetahBullet's sizes
    act_space = spaces.Box(-1, 1, shape=(6,), dtype=np.float32)
    size = 10_000
    sb3 = ReplayBuffer(size, obs_space, act_space, device="cpu")
    sb3_bytes = sum(
        a.nbytes for a in (sb3.observations, sb3.next_observations, sb3.actions, sb3.rewards, sb3.dones, sb3.timeouts)
    )
    ours = DDPGPlusReplayBuffer(size, obs_space, act_space, device="cpu", optimize_memory_usage=True)
    ours_full = DDPGPlusReplayBuffer(size, obs_space, act_space, device="cpu")
    ratio = ours.nbytes() / sb3_bytes
    print(
        f"bytes/transition: SB3 {sb3_bytes / size:.1f}, ours {ours_full.bytes_per_transition():.1f}, "
        f"ours memory-optimised {ours.bytes_per_transition():.1f} ({ratio:.3f}x SB3)"
    )
    assert ratio <= 0.55
    assert ours_full.nbytes() < sb3_bytes


def test_vecnormalize_applied_at_sample_time():
    import gymnasium as gym

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_obs=True, norm_reward=True)
    venv.reset()
    for _ in range(50):
        venv.step(np.array([[0.5]]))
    buffer = DDPGPlusReplayBuffer(10, venv.observation_space, venv.action_space, device="cpu")
    raw = np.array([[1.0, 0.5, -2.0]], dtype=np.float32)
    buffer.add(raw, raw, np.zeros((1, 1)), np.array([3.0]), np.array([False]), [{}])
    sample = buffer.sample(1, env=venv)
    np.testing.assert_allclose(sample.observations.numpy(), venv.normalize_obs(raw), rtol=1e-6)
    np.testing.assert_allclose(sample.rewards.numpy().ravel(), venv.normalize_reward(np.array([3.0])), rtol=1e-6)
    # The buffer keeps the raw data
    np.testing.assert_array_equal(np.asarray(buffer._obs[""][0, 0]), raw[0])


def test_start_new_trajectory_closes_open_episode():
    buffer = DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu", optimize_memory_usage=True, n_steps=3, gamma=GAMMA)
    obs = np.zeros((1, 3), dtype=np.float32)
    nxt = np.ones((1, 3), dtype=np.float32)
    buffer.add(obs, nxt, np.zeros((1, 2)), np.ones(1), np.array([False]), [{}])
    buffer.start_new_trajectory()
    other = np.full((1, 3), 5.0, dtype=np.float32)
    buffer.add(other, other + 1, np.zeros((1, 2)), np.full(1, 10.0), np.array([False]), [{}])
    sample = buffer.samples_at(np.array([0]), np.array([0]))
    np.testing.assert_array_equal(sample.next_observations.numpy(), nxt)  # its real next observation is kept
    assert sample.rewards.item() == 1.0  # the n-step return does not run into the next trajectory
    assert sample.dones.item() == 0.0


def test_empty_buffer_sampling_is_refused():
    buffer = DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu")
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample(4)


@pytest.mark.parametrize("bad", [dict(buffer_size=0), dict(n_steps=0), dict(gamma=1.5), dict(n_envs=0)])
def test_bad_buffer_arguments(bad):
    kwargs = dict(buffer_size=10, n_envs=1, n_steps=1, gamma=0.99) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        DDPGPlusReplayBuffer(observation_space=OBS_SPACE, action_space=ACT_SPACE, device="cpu", **kwargs)


def test_storage_on_model_device_by_default():
    buffer = DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu")
    assert buffer.storage_device == th.device("cpu")
    assert isinstance(buffer._obs[""], np.ndarray)  # numpy on the CPU: cheapest per-transition writes


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA device")
def test_storage_on_gpu():
    buffer = DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cuda")
    fill(buffer, 1, 12, seed=0)
    sample = buffer.sample(4)
    assert buffer._obs[""].is_cuda and sample.observations.is_cuda


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_torch_storage_path_matches_reference(monkeypatch, optimize_memory_usage):
    """The code path used for GPU storage (torch tensors), exercised on the CPU."""
    monkeypatch.setattr(DDPGPlusReplayBuffer, "_on_cpu", property(lambda self: False))
    buffer = DDPGPlusReplayBuffer(
        30, OBS_SPACE, ACT_SPACE, device="cpu", n_envs=2, optimize_memory_usage=optimize_memory_usage, n_steps=3, gamma=GAMMA
    )
    reference = fill(buffer, 2, 50, seed=11)
    assert isinstance(buffer._obs[""], th.Tensor)
    assert check_all_valid_slots(buffer, reference, 3) > 0


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
@pytest.mark.parametrize("handle_timeout_termination", [False, True])
def test_single_env_add_writes_what_the_general_path_writes(optimize_memory_usage, handle_timeout_termination):
    """One CPU environment has its own scalar ``add``: the same arrays as the general path, through episode ends,
    truncations, wrap-around and a start_new_trajectory."""
    kwargs = dict(
        device="cpu",
        optimize_memory_usage=optimize_memory_usage,
        handle_timeout_termination=handle_timeout_termination,
        n_steps=2,
        gamma=GAMMA,
    )
    single, general = (DDPGPlusReplayBuffer(13, OBS_SPACE, ACT_SPACE, **kwargs) for _ in range(2))
    rng = np.random.default_rng(0)
    for step in range(40):
        obs, next_obs = rng.normal(size=(2, 1, 3)).astype(np.float32)
        action = rng.uniform(-1, 1, size=(1, 2))
        reward = rng.normal(size=1)
        done = np.array([rng.random() < 0.2])
        infos = [{"TimeLimit.truncated": bool(rng.random() < 0.5)} if done[0] else {}]
        single.add(obs, next_obs, action, reward, done, infos)
        general._add_general(obs, next_obs, action, reward, done, infos)
        if step == 25:
            single.start_new_trajectory()
            general.start_new_trajectory()
    for name in ("_actions", "_rewards", "_flags", "_positions", "_full"):
        np.testing.assert_array_equal(getattr(single, name), getattr(general, name), err_msg=name)
    for stores in ("_obs", "_next_obs"):
        for key, value in getattr(single, stores).items():
            np.testing.assert_array_equal(value, getattr(general, stores)[key])
    assert (single.pos, single.full) == (general.pos, general.full)
    assert single.full  # the ring wrapped around
