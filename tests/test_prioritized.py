"""
Prioritised replay (PER and LAP) against a brute-force reference.

The reference keeps every slot's priority in a plain dict, applying the papers' rules directly: sampling frequencies
are checked with a fixed-seed chi-square test, importance weights against the formula over the whole buffer, and
priority updates, new transitions and spent slots slot by slot, across environments, n-step returns, memory modes,
time-limit truncations and the ring's wrap-around. The uniform path is checked bit for bit against digests recorded
before prioritisation existed.
"""

import hashlib
import pickle
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import sb3_ddpg_plus.buffers as buffers_module
from sb3_ddpg_plus import DDPGPlus, DDPGPlusReplayBuffer, native_tree
from sb3_ddpg_plus.buffers import VALID, PrioritizedDictReplayBufferSamples, PrioritizedReplayBufferSamples
from sb3_ddpg_plus.hyperparams import load_hyperparams, make_model
from sb3_ddpg_plus.priorities import PriorityTree
from tests.test_buffers import ACT_SPACE, GAMMA, OBS_SPACE, fill

scipy_stats = pytest.importorskip("scipy.stats")

DICT_SPACE = spaces.Dict(
    {
        "a": spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32),
        "b": spaces.Box(0, 255, shape=(2,), dtype=np.uint8),
    }
)


def rule(kind, td_errors, alpha, eps=1e-6):
    """The papers' priorities, written out: PER (|delta| + eps)^alpha, LAP max(|delta|^alpha, 1)."""
    td_errors = np.abs(np.asarray(td_errors, dtype=np.float64))
    if kind == "per":
        return (td_errors + eps) ** alpha
    return np.maximum(td_errors**alpha, 1.0)


def make(kind, n_envs=1, optimize_memory_usage=False, n_steps=1, size_per_env=40, **kwargs):
    return DDPGPlusReplayBuffer(
        size_per_env * n_envs,
        OBS_SPACE,
        ACT_SPACE,
        device="cpu",
        n_envs=n_envs,
        optimize_memory_usage=optimize_memory_usage,
        n_steps=n_steps,
        gamma=GAMMA,
        prioritized=kind,
        **kwargs,
    )


def valid_flat(buffer):
    return np.flatnonzero((buffer._flags & VALID).reshape(-1))


def slot_of(buffer, observation):
    """(env, slot) holding this observation as a transition's first observation (observations are unique)."""
    env = int(observation[0])
    for slot in np.flatnonzero(buffer._flags[env] & VALID):
        if np.array_equal(buffer._obs[""][env, slot], observation):
            return env, int(slot)
    raise AssertionError(f"{observation} is not a transition in the buffer")


# ---------------------------------------------------------------------------------------------- the uniform path


def uniform_digest(n_envs, optimize_memory_usage, n_steps, dict_obs, normalize):
    """Digest of three seeded samples (every field, every bit) and of the global generator's next draw."""
    rng = np.random.default_rng(n_envs * 100 + n_steps * 10 + optimize_memory_usage + 2 * dict_obs + 4 * normalize)
    space = DICT_SPACE if dict_obs else OBS_SPACE
    buffer = DDPGPlusReplayBuffer(
        30 * n_envs,
        space,
        ACT_SPACE,
        device="cpu",
        n_envs=n_envs,
        optimize_memory_usage=optimize_memory_usage,
        n_steps=n_steps,
        gamma=0.9,
    )

    def observation():
        if dict_obs:
            return {
                "a": rng.normal(size=(n_envs, 3)).astype(np.float32),
                "b": rng.integers(0, 255, size=(n_envs, 2)).astype(np.uint8),
            }
        return rng.normal(size=(n_envs, 3)).astype(np.float32)

    obs = observation()
    for step in range(75):  # wraps around
        next_obs = observation()
        done = rng.random(n_envs) < 0.15
        infos = [{"TimeLimit.truncated": bool(rng.random() < 0.5)} if d else {} for d in done]
        buffer.add(obs, next_obs, rng.uniform(-1, 1, (n_envs, 2)), rng.normal(size=n_envs), done, infos)
        obs = observation() if done.any() else next_obs
        if step == 40:
            buffer.start_new_trajectory()
    env = None
    if normalize:
        env = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_obs=not dict_obs, norm_reward=True)
        if not dict_obs:
            env.obs_rms.mean[:] = 0.3
            env.obs_rms.var[:] = 2.0
        env.ret_rms.var = 5.0
    np.random.seed(7)
    digest = hashlib.sha256()
    for _ in range(3):
        for value in buffer.sample(16, env=env):
            for tensor in (value.values() if isinstance(value, dict) else [value]) if value is not None else []:
                digest.update(tensor.numpy().tobytes())
    digest.update(np.random.randint(1 << 30, size=1).tobytes())  # the same draws from the global generator
    return digest.hexdigest()[:16]


# Recorded with the buffer as it was before prioritised replay was added
@pytest.mark.parametrize(
    "config, expected",
    [
        ((1, False, 1, False, False), "9f904e19f60a619a"),
        ((1, True, 3, False, False), "9875e836d975519d"),
        ((2, False, 3, False, False), "86e5d8adfea0ce4b"),
        ((3, True, 1, False, False), "8674ce7d88757619"),
        ((2, True, 3, True, False), "fee88b40a915f876"),
        ((1, False, 3, False, True), "77c8dcaf7956d43b"),
        ((2, True, 1, True, True), "ab02ee85135561a4"),
    ],
)
def test_uniform_path_unchanged_bit_for_bit(config, expected):
    assert uniform_digest(*config) == expected


def test_uniform_buffer_returns_sb3_samples():
    buffer = make(None)
    fill(buffer, 1, 10, seed=0)
    sample = buffer.sample(4)
    assert type(sample) is ReplayBufferSamples
    assert buffer.prioritized is None and buffer._priorities is None
    for call in (lambda: buffer.update_priorities(np.zeros(1, dtype=np.int64), np.ones(1)), buffer.priorities):
        with pytest.raises(ValueError, match="prioritised buffer"):
            call()


# ------------------------------------------------------------------------------------------------- the samples


@pytest.mark.parametrize("kind", ["per", "lap"])
def test_samples_extend_sb3_samples(kind):
    buffer = make(kind, n_steps=3)
    fill(buffer, 1, 30, seed=1)
    sample = buffer.sample(8)
    assert isinstance(sample, ReplayBufferSamples) and isinstance(sample, PrioritizedReplayBufferSamples)
    assert sample._fields[:6] == ReplayBufferSamples._fields
    assert sample.indices.dtype == th.int64 and sample.indices.shape == (8,)
    if kind == "per":
        assert sample.weights.dtype == th.float32 and sample.weights.shape == (8, 1)
    else:
        assert sample.weights is None  # LAP: the loss is not weighted
    # Field-by-field slicing and rebuilding (as train() does for chunks), _replace, pickling, the first six fields
    rebuilt = type(sample)(*[None if value is None else value[2:5] for value in sample])
    assert th.equal(rebuilt.indices, sample.indices[2:5])
    assert sample._replace(weights=None).weights is None
    assert th.equal(pickle.loads(pickle.dumps(sample)).indices, sample.indices)
    observations, _, _, _, _, discounts = sample[:6]
    assert observations is sample.observations and discounts is sample.discounts


def test_samples_carry_the_transitions_at_their_indices():
    buffer = make("per", n_envs=3, optimize_memory_usage=True, n_steps=3)
    fill(buffer, 3, 95, seed=2)  # wrapped around
    sample = buffer.sample(64)
    envs, slots = np.divmod(sample.indices.numpy(), buffer.buffer_size)
    reference = buffer.samples_at(envs, slots)
    for field in ("observations", "actions", "next_observations", "dones", "rewards", "discounts"):
        assert th.equal(getattr(sample, field), getattr(reference, field)), field
    for i, observation in enumerate(sample.observations.numpy()):
        assert slot_of(buffer, observation) == (envs[i], slots[i])


def test_dict_observations_and_vecnormalize():
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_obs=False, norm_reward=True)
    venv.ret_rms.var = 4.0
    buffer = DDPGPlusReplayBuffer(20, DICT_SPACE, ACT_SPACE, device="cpu", n_envs=2, prioritized="per", n_steps=2)
    rng = np.random.default_rng(0)
    for step in range(25):
        obs = {"a": np.full((2, 3), step, dtype=np.float32), "b": np.full((2, 2), step, dtype=np.uint8)}
        buffer.add(obs, obs, rng.uniform(-1, 1, (2, 2)), np.full(2, 2.0), np.array([step % 7 == 6] * 2), [{}, {}])
    sample = buffer.sample(16, env=venv)
    assert isinstance(sample, DictReplayBufferSamples) and isinstance(sample, PrioritizedDictReplayBufferSamples)
    envs, slots = np.divmod(sample.indices.numpy(), buffer.buffer_size)
    np.testing.assert_array_equal(sample.observations["a"][:, 0].numpy(), buffer._obs["a"][envs, slots, 0])
    raw = buffer.samples_at(envs, slots)
    np.testing.assert_allclose(sample.rewards.numpy(), venv.normalize_reward(raw.rewards.numpy()), rtol=1e-6)


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_torch_storage_path(monkeypatch, optimize_memory_usage):
    """The code path used for GPU storage (torch tensors), exercised on the CPU."""
    monkeypatch.setattr(DDPGPlusReplayBuffer, "_on_cpu", property(lambda self: False))
    buffer = make("lap", n_envs=2, optimize_memory_usage=optimize_memory_usage, n_steps=3, size_per_env=15)
    fill(buffer, 2, 40, seed=3)
    assert isinstance(buffer._obs[""], th.Tensor)
    sample = buffer.sample(32)
    for i, observation in enumerate(sample.observations.numpy()):
        env, slot = int(observation[0]), None
        candidates = np.flatnonzero(buffer._flags[env] & VALID)
        slot = next(s for s in candidates if np.array_equal(buffer._obs[""][env, s].numpy(), observation))
        assert sample.indices[i].item() == env * buffer.buffer_size + slot


# ---------------------------------------------------------------------------------- priorities and their updates


@pytest.mark.parametrize("kind", ["per", "lap"])
@pytest.mark.parametrize("n_envs, optimize_memory_usage, n_steps", [(1, False, 1), (3, True, 3), (2, False, 3), (1, True, 1)])
def test_updates_land_on_the_right_slots(kind, n_envs, optimize_memory_usage, n_steps):
    """Each sampled transition, identified by its observation, gets the priority its TD error gives, across
    environments and after the ring wrapped around; every other slot keeps its priority."""
    buffer = make(kind, n_envs=n_envs, optimize_memory_usage=optimize_memory_usage, n_steps=n_steps, size_per_env=25)
    fill(buffer, n_envs, 70, seed=4)
    assert buffer.full
    alpha = buffer.alpha
    for _ in range(3):
        before = buffer.priorities()
        sample = buffer.sample(20)
        observations = sample.observations.numpy()
        # A TD error that depends on the transition (env, step counter), not on its slot
        td_errors = th.from_numpy(observations[:, 0] * 1.7 + observations[:, 1] * 0.13 - 2.0)
        buffer.update_priorities(sample.indices, td_errors)
        after = buffer.priorities()
        expected, touched = before.copy(), np.zeros(before.shape, dtype=bool)
        for observation, td_error in zip(observations, td_errors.numpy(), strict=True):
            expected[slot_of(buffer, observation)] = rule(kind, td_error, alpha)
            touched[slot_of(buffer, observation)] = True
        np.testing.assert_array_equal(after[~touched], before[~touched])
        # (numpy's vectorised power may differ from the scalar one in the last bit)
        np.testing.assert_allclose(after[touched], expected[touched], rtol=1e-14)


def test_priority_rules():
    per = make("per", alpha=0.7, eps=0.01)
    lap = make("lap", alpha=0.4)
    td_errors = np.array([0.0, 0.5, -1.0, 2.0, -30.0])
    for buffer in (per, lap):
        fill(buffer, 1, 5, seed=5, episode_len_range=(10, 11))
        buffer.update_priorities(np.arange(5), td_errors)
    np.testing.assert_allclose(per.priorities()[0, :5], (np.abs(td_errors) + 0.01) ** 0.7, rtol=1e-15)
    np.testing.assert_allclose(lap.priorities()[0, :5], np.maximum(np.abs(td_errors) ** 0.4, 1.0), rtol=1e-15)
    # (batch, 1) torch errors, as a critic gives them, and the largest priority becomes the running maximum
    lap.update_priorities(th.arange(2), th.tensor([[100.0], [3.0]]))
    assert lap.max_priority == pytest.approx(100.0**0.4)


def test_new_transitions_get_the_running_maximum():
    buffer = make("per", size_per_env=10)
    fill(buffer, 1, 6, seed=6, episode_len_range=(50, 51))
    np.testing.assert_array_equal(buffer.priorities()[0, :6], 1.0)  # before any update: 1
    buffer.update_priorities(np.arange(6), np.array([0.1, 5.0, 0.2, 0.3, 0.4, 0.5]))
    high = buffer.max_priority
    assert high == pytest.approx((5.0 + 1e-6) ** 0.6, rel=1e-14)
    buffer.update_priorities(np.array([1]), np.array([0.01]))  # the maximum is a running one: it stays
    assert buffer.max_priority == high
    obs = np.array([[0.0, 99.0, 0.0]], dtype=np.float32)
    buffer.add(obs, obs, np.zeros((1, 2)), np.zeros(1), np.array([False]), [{}])
    priorities = buffer.priorities()[0]
    assert priorities[6] == high
    # It is drawn with probability max / total
    np.random.seed(0)
    draws = buffer.sample(20_000).indices.numpy()
    share = (draws == 6).mean()
    expected = high / priorities.sum()
    assert abs(share - expected) < 5 * np.sqrt(expected * (1 - expected) / 20_000)
    # When the ring overwrites a slot, the new transition gets the maximum, not the old transition's priority
    buffer.update_priorities(np.arange(7), np.full(7, 0.05))
    for _ in range(4):  # slots 7, 8, 9, then 0 (overwritten)
        buffer.add(obs, obs, np.zeros((1, 2)), np.zeros(1), np.array([False]), [{}])
    low = buffer.priorities()[0, 1]
    assert low == pytest.approx((0.05 + 1e-6) ** 0.6, rel=1e-14)
    assert buffer.priorities()[0, 0] == high
    buffer.reset_max_priority()
    assert buffer.max_priority == high  # the new transitions still hold it
    buffer.update_priorities(np.arange(10), np.full(10, 0.05))
    buffer.reset_max_priority()
    assert buffer.max_priority == low


@pytest.mark.parametrize("kind", ["per", "lap"])
@pytest.mark.parametrize("n_envs, optimize_memory_usage", [(1, True), (2, True), (2, False)])
def test_priorities_are_zero_exactly_where_nothing_can_be_sampled(kind, n_envs, optimize_memory_usage):
    """Mirror of the uniform sampler's validity (the VALID flag) after every add(): the ring's unwritten slots,
    memory-optimised mode's spent slots (final observations, the newest next observation), through episode ends,
    truncations, start_new_trajectory and wrap-around; and those slots are never drawn."""
    buffer = make(kind, n_envs=n_envs, optimize_memory_usage=optimize_memory_usage, n_steps=2, size_per_env=12)
    rng = np.random.default_rng(7)
    obs = rng.normal(size=(n_envs, 3)).astype(np.float32)
    np.random.seed(1)
    for step in range(60):
        done = rng.random(n_envs) < 0.3
        infos = [{"TimeLimit.truncated": bool(rng.random() < 0.5)} for _ in range(n_envs)]
        next_obs = rng.normal(size=(n_envs, 3)).astype(np.float32)
        buffer.add(obs, next_obs, rng.uniform(-1, 1, (n_envs, 2)), rng.normal(size=n_envs), done, infos)
        obs = next_obs
        if step == 30:
            buffer.start_new_trajectory()
        positive = buffer.priorities() > 0
        np.testing.assert_array_equal(positive, (buffer._flags & VALID) != 0)
        sample = buffer.sample(64)
        assert np.all(buffer._flags.reshape(-1)[sample.indices.numpy()] & VALID)
        buffer.update_priorities(sample.indices, rng.normal(size=64) * 3)
    if optimize_memory_usage:
        assert (~positive).sum() >= n_envs  # spent slots exist and were never drawn


def test_single_env_add_gives_the_priorities_of_the_general_path():
    single, general = (make("lap", optimize_memory_usage=True, n_steps=2, size_per_env=13) for _ in range(2))
    rng = np.random.default_rng(0)
    for step in range(40):
        obs, next_obs = rng.normal(size=(2, 1, 3)).astype(np.float32)
        args = (obs, next_obs, rng.uniform(-1, 1, size=(1, 2)), rng.normal(size=1), np.array([rng.random() < 0.2]), [{}])
        single.add(*args)
        general._add_general(*args)
        if step % 5 == 4:
            indices = np.flatnonzero(single.priorities().reshape(-1))
            td_errors = rng.normal(size=len(indices)) * 4
            single.update_priorities(indices, td_errors)
            general.update_priorities(indices, td_errors)
    np.testing.assert_array_equal(single.priorities(), general.priorities())
    assert single._transitions_added == general._transitions_added == 40


def test_reset_clears_the_priorities():
    buffer = make("per")
    fill(buffer, 1, 20, seed=8)
    buffer.update_priorities(np.arange(5), np.full(5, 10.0))
    buffer.reset()
    assert not buffer.priorities().any() and buffer.max_priority == 1.0
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample(4)


# ------------------------------------------------------------------------------ sampling frequencies and weights


@pytest.mark.parametrize("kind", ["per", "lap"])
def test_sampling_frequencies_match_the_priorities(kind):
    """Fixed-seed chi-square goodness of fit over 200k draws, against P(i) = p_i / sum_j p_j from the rule."""
    buffer = make(kind, n_envs=2, optimize_memory_usage=True, n_steps=3, size_per_env=40)
    fill(buffer, 2, 130, seed=9)
    valid = valid_flat(buffer)
    rng = np.random.default_rng(10)
    td_errors = rng.uniform(0.2, 4.0, size=len(valid)) * rng.choice([-1, 1], size=len(valid))
    buffer.update_priorities(valid, td_errors)
    probabilities = rule(kind, td_errors, buffer.alpha)
    probabilities /= probabilities.sum()
    np.random.seed(11)
    draws = np.concatenate([buffer.sample(20_000).indices.numpy() for _ in range(10)])
    counts = np.bincount(draws, minlength=buffer.n_envs * buffer.buffer_size)
    assert counts.sum() == counts[valid].sum() == 200_000  # nothing else is ever drawn
    result = scipy_stats.chisquare(counts[valid], probabilities * 200_000)
    assert result.pvalue > 1e-3, result


def test_importance_weights_match_the_formula():
    """w_i = (N P(i))^-beta / max_j (N P(j))^-beta, the maximum over every transition in the buffer (Schaul et al.)."""
    buffer = make("per", n_envs=2, n_steps=2, beta=0.3, beta_final=0.9, beta_schedule_steps=None)
    fill(buffer, 2, 60, seed=12)
    valid = valid_flat(buffer)
    td_errors = np.random.default_rng(13).exponential(size=len(valid))
    buffer.update_priorities(valid, td_errors)
    buffer.set_progress(0.25)  # three quarters of the way: beta = 0.3 + 0.75 * 0.6
    beta = 0.3 + 0.75 * 0.6
    assert buffer.current_beta() == pytest.approx(beta)
    priority = dict(zip(valid, rule("per", td_errors, buffer.alpha), strict=True))
    total, n = sum(priority.values()), len(valid)
    largest = max((n * p / total) ** -beta for p in priority.values())
    sample = buffer.sample(256)
    expected = [(n * priority[i] / total) ** -beta / largest for i in sample.indices.numpy()]
    np.testing.assert_allclose(sample.weights.numpy().ravel(), expected, rtol=1e-6)
    assert sample.weights.max() <= 1.0


def test_beta_schedules():
    by_steps = make("per", n_envs=2, beta=0.4, beta_schedule_steps=100)
    assert by_steps.current_beta() == 0.4
    fill(by_steps, 2, 25, seed=14)  # 50 transitions (25 steps of 2 environments)
    assert by_steps.current_beta() == pytest.approx(0.7)
    by_steps.set_progress(0.0)  # no effect with a step schedule
    assert by_steps.current_beta() == pytest.approx(0.7)
    fill(by_steps, 2, 50, seed=15)
    assert by_steps.current_beta() == 1.0
    by_progress = make("per", beta=0.5)
    assert by_progress.current_beta() == 0.5  # nothing called set_progress
    by_progress.set_progress(0.5)
    assert by_progress.current_beta() == 0.75
    by_progress.set_progress(-0.1)  # (clipped: SB3's progress can overshoot)
    assert by_progress.current_beta() == 1.0
    with pytest.raises(ValueError, match="beta only applies"):
        make("lap").current_beta()


# ----------------------------------------------------------------------------------------------- save and load


@pytest.mark.parametrize("kind", ["per", "lap"])
def test_pickle_round_trip(kind):
    buffer = make(kind, n_envs=2, optimize_memory_usage=True, n_steps=3)
    fill(buffer, 2, 90, seed=16)
    sample = buffer.sample(32)
    buffer.update_priorities(sample.indices, sample.rewards * 3)
    fill(buffer, 2, 3, seed=17)  # pending writes, applied before pickling
    loaded = pickle.loads(pickle.dumps(buffer))
    np.testing.assert_array_equal(loaded.priorities(), buffer.priorities())
    assert loaded.max_priority == buffer.max_priority and loaded._transitions_added == buffer._transitions_added
    for ours, theirs in zip(loaded._priorities._sums, buffer._priorities._sums, strict=True):
        np.testing.assert_array_equal(ours, theirs)  # the inner nodes rebuilt bit for bit
    np.random.seed(3)
    first = buffer.sample(16)
    np.random.seed(3)
    second = loaded.sample(16)
    assert th.equal(first.indices, second.indices)
    if kind == "per":
        assert th.equal(first.weights, second.weights)


def test_save_and_load_through_the_algorithm(tmp_path):
    kwargs = dict(learning_starts=20, batch_size=16, buffer_size=200, policy_kwargs=dict(net_arch=[8]), seed=0)
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", replay_buffer_kwargs=dict(prioritized="lap", alpha=0.5), **kwargs)
    model.learn(60)
    sample = model.replay_buffer.sample(16)
    model.replay_buffer.update_priorities(sample.indices, th.linspace(0, 20, 16))
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    other = DDPGPlus("MlpPolicy", "Pendulum-v1", **kwargs)
    other.load_replay_buffer(tmp_path / "buffer.pkl")
    assert other.replay_buffer.prioritized == "lap" and other.replay_buffer.alpha == 0.5
    np.testing.assert_array_equal(other.replay_buffer.priorities(), model.replay_buffer.priorities())
    assert other.replay_buffer.max_priority == pytest.approx(20.0**0.5)


def test_buffers_pickled_before_prioritisation_load_as_uniform():
    buffer = make(None)
    fill(buffer, 1, 10, seed=18)
    state = {k: v for k, v in buffer.__dict__.items() if k not in buffers_module._PRIORITY_STATE_DEFAULTS}
    old = DDPGPlusReplayBuffer.__new__(DDPGPlusReplayBuffer)
    old.__dict__.update(state)  # what unpickling a buffer saved before this change gives, before __setstate__
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.prioritized is None
    assert type(loaded.sample(4)) is ReplayBufferSamples


# ------------------------------------------------------------------------------------- TD errors on a device


def test_td_errors_on_a_device_are_queued_in_order(monkeypatch):
    """TD errors on an accelerator are queued (no synchronisation) and applied in order before the next sample or
    add(); the result is that of applying them at once (the queue is exercised on the CPU)."""
    immediate, queued = (make("per", n_envs=2, optimize_memory_usage=True) for _ in range(2))
    monkeypatch.setattr(buffers_module, "_on_device", lambda value: isinstance(value, th.Tensor))
    for buffer in (immediate, queued):
        fill(buffer, 2, 30, seed=19)
    rng = np.random.default_rng(20)
    for round_ in range(6):
        np.random.seed(round_)
        indices = queued.sample(32).indices
        td_errors = [th.from_numpy(rng.normal(size=16) * (round_ + 1)) for _ in range(2)]
        for part, errors in enumerate(td_errors):
            queued.update_priorities(indices[16 * part : 16 * (part + 1)], errors)
            immediate.update_priorities(indices[16 * part : 16 * (part + 1)].numpy(), errors.numpy())
        assert len(queued._td_queue) == 2
        if round_ % 2:  # an add() applies the queue first (its slots then take the running maximum)
            for buffer in (immediate, queued):
                fill(buffer, 2, 1, seed=21 + round_)
            assert not queued._td_queue
    np.testing.assert_array_equal(queued.priorities(), immediate.priorities())
    assert queued.max_priority == immediate.max_priority
    with pytest.raises(ValueError, match="16 indices but 15 TD errors"):
        queued.update_priorities(indices[:16], th.ones(15))


# ----------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(prioritized="rank"), ValueError, "prioritized"),
        (dict(prioritized=True), TypeError, "prioritized"),
        (dict(prioritized="per", alpha=1.5), ValueError, "alpha"),
        (dict(prioritized="per", alpha=-0.1), ValueError, "alpha"),
        (dict(prioritized="lap", alpha="0.4"), TypeError, "alpha"),
        (dict(prioritized="per", beta=2.0), ValueError, "beta"),
        (dict(prioritized="per", beta_final=float("nan")), ValueError, "beta_final"),
        (dict(prioritized="per", eps=0.0), ValueError, "eps"),
        (dict(prioritized="per", eps=float("inf")), ValueError, "eps"),
        (dict(prioritized="per", eps=True), TypeError, "eps"),
        (dict(prioritized="per", beta_schedule_steps=-1), ValueError, "beta_schedule_steps"),
        (dict(prioritized="per", beta_schedule_steps=10.5), TypeError, "beta_schedule_steps"),
        (dict(prioritized="lap", beta=0.4), ValueError, "beta"),
        (dict(prioritized="lap", eps=1e-6), ValueError, "eps"),
        (dict(alpha=0.6), ValueError, "alpha"),
    ],
)
def test_bad_parameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu", **kwargs)


def test_plain_data_parameters():
    buffer = DDPGPlusReplayBuffer(
        10, OBS_SPACE, ACT_SPACE, device="cpu", prioritized="PER", alpha=1, beta_schedule_steps=1.0e5
    )
    assert (buffer.prioritized, buffer.alpha, buffer.beta, buffer.beta_final, buffer.eps) == ("per", 1.0, 0.4, 1.0, 1e-6)
    assert buffer.beta_schedule_steps == 100_000 and isinstance(buffer.beta_schedule_steps, int)
    assert DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu", prioritized="lap").alpha == 0.4
    assert DDPGPlusReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu", prioritized="uniform").prioritized is None


def test_parameters_from_a_yaml_file(tmp_path):
    path = tmp_path / "hyperparams.yml"
    path.write_text(
        "Pendulum-v1:\n  buffer_size: 500\n  learning_starts: 10\n  policy_kwargs: {net_arch: [8]}\n"
        "  replay_buffer_kwargs: {prioritized: per, alpha: 0.7, beta: 0.5, beta_schedule_steps: 1.0e+4, eps: 1.0e-5}\n"
    )
    model = make_model(load_hyperparams(path, "Pendulum-v1"), "Pendulum-v1")
    buffer = model.replay_buffer
    assert (buffer.prioritized, buffer.alpha, buffer.beta, buffer.beta_schedule_steps, buffer.eps) == (
        "per",
        0.7,
        0.5,
        10_000,
        1e-5,
    )
    assert make_model({"replay_buffer_kwargs": {"prioritized": None}}, "Pendulum-v1").replay_buffer.prioritized is None
    with pytest.raises(TypeError, match=r"replay_buffer_kwargs\.alpha"):
        load_hyperparams({"replay_buffer_kwargs": {"prioritized": "per", "alpha": "high"}})


def test_bad_updates_are_refused():
    buffer = make("lap")
    fill(buffer, 1, 10, seed=22)
    with pytest.raises(ValueError, match="3 indices but 2 TD errors"):
        buffer.update_priorities(np.arange(3), np.ones(2))
    with pytest.raises(ValueError, match="must be in"):
        buffer.update_priorities(np.array([40]), np.ones(1))
    with pytest.raises(ValueError, match="indices must be"):
        buffer.update_priorities(np.array([-1]), np.ones(1))
    with pytest.raises(ValueError, match="indices must be"):
        buffer.update_priorities(np.array([1.0]), np.ones(1))
    with pytest.raises(ValueError, match="finite"):
        buffer.update_priorities(np.arange(2), np.array([1.0, np.nan]))
    assert (buffer.priorities()[0, :10] == 1.0).all()  # nothing was applied


# ------------------------------------------------------------------------------------------ the priority tree


@pytest.fixture(params=["numpy", "native"])
def native(request):
    """Each tree test runs with the numpy walk and with the C kernels (skipped where they cannot be built)."""
    if request.param == "native" and native_tree.load_kernels() is None:
        pytest.skip(f"C kernels not available: {native_tree.unavailable_reason()}")
    return request.param == "native"


@pytest.mark.parametrize("capacity, branching, top_size", [(1, 16, 4096), (37, 2, 1), (1000, 4, 5), (50_000, 16, 64)])
def test_tree_against_brute_force(capacity, branching, top_size, native):
    """Sums and minima equal a tree rebuilt from the leaves, bit for bit, after many small and large updates; find()
    inverts the cumulative sum and never returns a leaf of priority 0."""
    rng = np.random.default_rng(capacity)
    tree = PriorityTree(capacity, branching, top_size, track_min=True, native=native)
    assert tree.backend == ("native" if native else "numpy")
    leaves = np.zeros(capacity)
    for step in range(40):
        size = capacity if step % 10 == 0 else min(capacity, 50)
        indices = rng.integers(0, capacity, size=size)
        values = rng.exponential(size=size) * (rng.random(size) < 0.7)
        tree.update(indices, values)
        leaves[indices] = values  # (the last of duplicated indices wins, as in the tree)
    tree.update(np.array([0]), np.array([0.5]))
    leaves[0] = 0.5
    np.testing.assert_array_equal(tree.leaves, leaves)
    rebuilt = PriorityTree(capacity, branching, top_size, track_min=True, native=native)
    rebuilt.update(np.arange(capacity), leaves)
    for ours, theirs in zip(tree._sums + tree._mins, rebuilt._sums + rebuilt._mins, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert tree.total == pytest.approx(leaves.sum(), rel=1e-12)
    assert tree.min_positive == leaves[leaves > 0].min()
    # Random masses, and masses at and just below every leaf's boundary (where the tree's sums, taken in another
    # order than np.cumsum's, may round to either side): each lands in its leaf's range, within rounding
    cumulative = np.cumsum(leaves)
    boundaries = np.concatenate([cumulative[:-1], np.nextafter(cumulative, 0), [np.nextafter(tree.total, 0), 0.0]])
    masses = np.concatenate([rng.random(10_000) * tree.total, boundaries[(boundaries >= 0) & (boundaries < tree.total)]])
    found, values = tree.find(masses)
    np.testing.assert_array_equal(values, leaves[found])
    assert (values > 0).all()
    tolerance = 1e-12 * tree.total
    before = np.concatenate([[0.0], cumulative])[found]
    assert np.all((before - tolerance <= masses) & (masses < cumulative[found] + tolerance))
    reference = np.searchsorted(cumulative, masses[:10_000], side="right")
    assert (found[:10_000] != reference).sum() <= 1  # (random masses: at a boundary with probability ~1e-12)


def test_top_sums_over_the_part_in_use_equal_a_full_recomputation(native):
    """The top's cumulative sums cover the top nodes up to the last one an update reached: after a ring of writes that
    grows, wraps around and zeroes slots, the total, the minimum and find() equal those of a tree rebuilt from the
    leaves (whose cumulative sums cover every top node), bit for bit."""
    capacity, branching, top_size = 20_000, 4, 64  # (each of the 79 top nodes holds 256 leaves)
    rng = np.random.default_rng(3)
    tree = PriorityTree(capacity, branching, top_size, track_min=True, native=native)
    leaves = np.zeros(capacity)
    head = 0
    for step in range(300):
        # A ring buffer's writes (wrapping around at the end), then a batch of updates among the slots written
        count = int(rng.integers(1, 400))
        written = (head + np.arange(count)) % capacity
        head = (head + count) % capacity
        values = rng.exponential(size=count) * (rng.random(count) < 0.9)
        tree.update(written, values)
        leaves[written] = values
        held = np.flatnonzero(leaves)
        if len(held) and step % 3:
            sampled = rng.choice(held, size=64)
            updates = rng.exponential(size=64) * (rng.random(64) < 0.8)
            tree.update(sampled, updates)
            leaves[sampled] = updates
        if step == 150:  # everything past the first slots set to 0: the part in use does not shrink
            tree.update(np.arange(100, capacity), np.zeros(capacity - 100))
            leaves[100:] = 0.0
        rebuilt = pickle.loads(pickle.dumps(tree))
        assert tree._extent >= rebuilt._extent
        np.testing.assert_array_equal(tree.leaves, leaves)
        if not leaves.any():
            continue
        assert tree.total == rebuilt.total == float(np.cumsum(rebuilt._sums[-1])[-1])
        assert tree.min_positive == rebuilt.min_positive == leaves[leaves > 0].min()
        masses = np.concatenate([rng.random(200) * tree.total, [0.0, np.nextafter(tree.total, 0.0), tree.total]])
        found, values = tree.find(masses)
        np.testing.assert_array_equal(found, rebuilt.find(masses)[0])
        np.testing.assert_array_equal(values, leaves[found])
        assert (values > 0).all()
    tree.clear()
    assert tree.total == 0.0 and tree.min_positive == np.inf
    with pytest.raises(ValueError, match="every priority is 0"):
        tree.find(np.zeros(1))
    tree.update(np.array([capacity - 1]), np.array([2.0]))
    assert tree.total == 2.0 and tree.find(np.array([0.0, 1.9]))[0].tolist() == [capacity - 1] * 2


def test_tree_pickles_its_leaves_only(native):
    tree = PriorityTree(100_000, track_min=True, native=native)
    tree.update(np.arange(100_000), np.random.default_rng(0).random(100_000))
    tree.max_priority = 3.5
    data = pickle.dumps(tree)
    assert len(data) < 100_000 * 8 * 1.05
    loaded = pickle.loads(data)
    assert loaded.max_priority == 3.5
    for ours, theirs in zip(loaded._sums + loaded._mins, tree._sums + tree._mins, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _priorities_with_zeros_and_ties(capacity, branching, rng):
    """Exponential priorities with zeros (scattered, whole groups, the tail of groups) and many exact ties."""
    priorities = rng.exponential(size=capacity)
    priorities[rng.random(capacity) < 0.3] = 0.0
    ties = rng.random(capacity) < 0.3
    priorities[ties] = rng.choice([0.25, 1.0, 3.0], size=int(ties.sum()))
    for group in rng.integers(0, max(1, capacity // branching), size=max(1, capacity // (4 * branching))):
        start = group * branching
        priorities[start + rng.integers(0, branching) : start + branching] = 0.0  # a group's tail (or all of it)
    priorities[-min(capacity, 3 * branching) :] = 0.0  # zeros up to the end, past the last positive leaf
    priorities[capacity // 3] = 0.5  # at least one positive leaf
    return priorities


@pytest.mark.parametrize(
    "capacity, branching, top_size", [(100_000, 16, 4096), (5000, 16, 64), (777, 4, 3), (300, 2, 1), (20, 16, 4096)]
)
def test_find_matches_searchsorted_on_the_cumulative_sum(capacity, branching, top_size, native):
    """find() against np.searchsorted(np.cumsum(p), u, side="right") on priorities with zeros and ties, at random
    masses, at every boundary between leaves and just below it, at 0, just below the total, at and past it."""
    rng = np.random.default_rng(capacity + branching)
    priorities = _priorities_with_zeros_and_ties(capacity, branching, rng)
    tree = PriorityTree(capacity, branching, top_size, native=native)
    tree.update(np.arange(capacity), priorities)
    cumulative = np.cumsum(priorities)
    total = tree.total
    assert total == pytest.approx(cumulative[-1], rel=1e-12)
    boundaries = np.unique(cumulative[:-1])
    masses = np.concatenate(
        [rng.random(20_000) * total, boundaries, np.nextafter(boundaries, 0.0), [0.0, np.nextafter(total, 0.0)]]
    )
    masses = masses[(masses >= 0) & (masses < total)]
    found, values = tree.find(masses)
    assert found.dtype == np.int64 and values.dtype == np.float64 and found.shape == values.shape == masses.shape
    np.testing.assert_array_equal(values, priorities[found])
    assert (values > 0).all()  # never a leaf of priority 0, wherever the mass falls
    # Every mass lands in its leaf's range, within the rounding of the tree's sums (taken in another order)
    tolerance = 1e-12 * total
    before = np.concatenate([[0.0], cumulative])[found]
    assert np.all((before - tolerance <= masses) & (masses < cumulative[found] + tolerance))
    # Away from the boundaries (farther than the rounding), exactly the leaf that np.searchsorted finds
    reference = np.searchsorted(cumulative, masses, side="right")
    nearest = np.searchsorted(boundaries, masses)
    gap = np.minimum(
        np.abs(masses - boundaries[np.minimum(nearest, len(boundaries) - 1)]),
        np.abs(masses - boundaries[np.maximum(nearest - 1, 0)]),
    )
    clear = gap > tolerance
    assert clear[:20_000].mean() > 0.99  # (the random masses)
    np.testing.assert_array_equal(found[clear], reference[clear])
    # A mass at or past the total gives the last leaf of positive priority
    last_positive = np.flatnonzero(priorities)[-1]
    at_end, _ = tree.find(np.array([total, total * 2, np.nextafter(total, 0.0)]))
    np.testing.assert_array_equal(at_end, last_positive)
    # Results come back in the order of the masses (however find orders its work), float32 masses too
    permutation = rng.permutation(len(masses))
    again, again_values = tree.find(masses[permutation])
    np.testing.assert_array_equal(again, found[permutation])
    np.testing.assert_array_equal(again_values, values[permutation])
    small = masses[:100].astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(tree.find(small.astype(np.float32))[0], tree.find(small)[0])
    assert tree.find(np.zeros(0))[0].shape == (0,)


def test_find_refuses_an_empty_tree(native):
    tree = PriorityTree(100, 4, 8, native=native)
    with pytest.raises(ValueError, match="every priority is 0"):
        tree.find(np.zeros(3))
    tree.update(np.array([7]), np.array([2.0]))
    assert tree.find(np.array([0.0, 1.0, 1.999]))[0].tolist() == [7, 7, 7]


def _require_kernels():
    if native_tree.load_kernels() is None:
        pytest.skip(f"C kernels not available: {native_tree.unavailable_reason()}")


@pytest.mark.parametrize("capacity, branching, top_size", [(100_000, 16, 4096), (777, 4, 3), (300, 2, 1), (20, 16, 4096)])
def test_native_and_numpy_trees_find_the_same_leaves(capacity, branching, top_size):
    """Built by their own updates (small batches with repeated indices, and whole levels), the C kernels' tree and the
    numpy tree hold the same leaves and minima, and inner sums equal to float64 rounding (each sums a node's children
    in its own order). Given the same inner sums, both walks return the same leaves and priorities, bit for bit, at
    random masses, at every boundary between leaves and between top nodes and just below them, at 0 and at or past the
    total."""
    _require_kernels()
    rng = np.random.default_rng(capacity + 7)
    priorities = _priorities_with_zeros_and_ties(capacity, branching, rng)
    by_numpy = PriorityTree(capacity, branching, top_size, track_min=True, native=False)
    by_kernels = PriorityTree(capacity, branching, top_size, track_min=True, native=True)
    assert (by_numpy.backend, by_kernels.backend) == ("numpy", "native")
    for tree in (by_numpy, by_kernels):
        for start in range(0, capacity, 64):
            tree.update(np.arange(start, min(start + 64, capacity)), priorities[start : start + 64])
    batches = [rng.integers(0, capacity, size=256) for _ in range(5)]
    for indices in batches:
        values = rng.exponential(size=256) * (rng.random(256) < 0.8)
        priorities[indices] = values  # (the last of repeated indices wins, in both trees)
        for tree in (by_numpy, by_kernels):
            tree.update(indices, values)
    np.testing.assert_array_equal(by_kernels.leaves, priorities)
    np.testing.assert_array_equal(by_kernels.leaves, by_numpy.leaves)
    for ours, theirs in zip(by_kernels._mins, by_numpy._mins, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(by_kernels._sums, by_numpy._sums, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=0)
    assert by_kernels.min_positive == by_numpy.min_positive == priorities[priorities > 0].min()
    assert by_kernels._extent == by_numpy._extent
    # The walks alone: the numpy tree's inner sums in the kernels' tree
    for level in range(1, len(by_numpy._sums)):
        by_kernels._sums[level][:] = by_numpy._sums[level]
    by_kernels._top_stale = True
    total = by_numpy.total
    assert by_kernels.total == total
    cumulative = np.cumsum(priorities)
    boundaries = np.unique(cumulative[:-1])
    ends = [0.0, np.nextafter(total, 0.0), total, 2 * total]
    # (the ends of the top level's nodes, as the tree sums them: the binary search's ties)
    top_ends = by_numpy._ends[: by_numpy._extent]
    masses = np.concatenate(
        [rng.random(20_000) * total, boundaries, np.nextafter(boundaries, 0.0), top_ends, np.nextafter(top_ends, 0.0), ends]
    )
    masses = masses[masses >= 0]
    found, values = by_kernels.find(masses)
    reference, reference_values = by_numpy.find(masses)
    assert found.dtype == np.int64 and values.dtype == np.float64
    np.testing.assert_array_equal(found, reference)
    np.testing.assert_array_equal(values, reference_values)
    assert (values > 0).all()
    assert by_kernels.find(masses[:10], values=False)[1] is None
    single = masses[:10].astype(np.float32)
    np.testing.assert_array_equal(by_kernels.find(single)[0], by_numpy.find(single)[0])


def test_native_tree_takes_batches_larger_than_its_staging_arrays():
    """Updates and walks of more entries than the kernels' staging arrays hold (their own arrays then) give what the
    numpy tree gives; a scalar priority is broadcast, and priorities of the wrong length are refused."""
    _require_kernels()
    rng = np.random.default_rng(5)
    by_kernels = PriorityTree(20_000, track_min=True, native=True)
    by_numpy = PriorityTree(20_000, track_min=True, native=False)
    large = by_kernels._staging.size + 904
    indices, priorities = rng.integers(0, 20_000, size=large), rng.exponential(size=large)
    for tree in (by_kernels, by_numpy):
        tree.update(indices, priorities)
        tree.update(np.arange(10), 2.5)
    np.testing.assert_array_equal(by_kernels.leaves, by_numpy.leaves)
    assert by_kernels.min_positive == by_numpy.min_positive
    for level in range(1, len(by_numpy._sums)):  # (the walks alone, on the same inner sums)
        by_kernels._sums[level][:] = by_numpy._sums[level]
    by_kernels._top_stale = True
    masses = rng.random(large) * by_numpy.total
    found, values = by_kernels.find(masses)
    reference, reference_values = by_numpy.find(masses)
    np.testing.assert_array_equal(found, reference)
    np.testing.assert_array_equal(values, reference_values)
    with pytest.raises(ValueError, match="broadcast"):
        by_kernels.update(np.arange(5), [1.0, 2.0])


def test_native_update_refuses_indices_out_of_range_and_writes_nothing():
    """The kernels check every index before writing (numpy's fancy indexing would wrap negative ones and accept the
    padding past the capacity)."""
    _require_kernels()
    tree = PriorityTree(99, 4, 8, track_min=True, native=True)  # (leaves padded to 100)
    tree.update(np.arange(10), np.ones(10))
    for bad in ([3, 99], [-1, 2], [1000]):
        with pytest.raises(IndexError, match=r"must be in \[0, 99\)"):
            tree.update(np.array(bad), np.full(len(bad), 5.0))
    np.testing.assert_array_equal(tree.leaves, np.r_[np.ones(10), np.zeros(89)])
    assert tree.total == 10.0 and tree.min_positive == 1.0


def test_without_kernels_the_tree_uses_numpy_and_says_why(monkeypatch, tmp_path):
    """Disabled, without a compiler or with one that fails, the kernels are not loaded, the reason is given, trees use
    numpy, and a tree that requires the kernels refuses with that reason."""
    monkeypatch.setenv(native_tree.ENV_CACHE, str(tmp_path / "cache"))
    try:
        monkeypatch.setenv(native_tree.ENV_SWITCH, "0")
        native_tree._forget()
        assert native_tree.load_kernels() is None
        assert native_tree.unavailable_reason() == "disabled by SB3_DDPG_PLUS_NATIVE=0"
        assert PriorityTree(10).backend == "numpy"
        with pytest.raises(RuntimeError, match="not available: disabled by SB3_DDPG_PLUS_NATIVE=0"):
            PriorityTree(10, native=True)
        monkeypatch.delenv(native_tree.ENV_SWITCH)
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        native_tree._forget()
        assert native_tree.load_kernels() is None
        assert "could not build or load the C kernels" in native_tree.unavailable_reason()
        assert PriorityTree(10).backend == "numpy"
        false = shutil.which("false")
        if false is not None:
            monkeypatch.setenv("CC", false)
            native_tree._forget()
            assert native_tree.load_kernels() is None
            assert "failed (exit 1)" in native_tree.unavailable_reason()
        assert not list((tmp_path / "cache").glob("*.so"))  # (nothing half-written is left to load later)
    finally:
        monkeypatch.undo()
        native_tree._forget()


@pytest.mark.parametrize("kind", ["per", "lap"])
def test_buffer_samples_the_same_with_and_without_kernels(kind):
    """A prioritised buffer draws the same transitions, with the same weights and priorities, whether its tree runs
    on the C kernels or on numpy (two environments, the ring wrapping around, updates between samples)."""
    _require_kernels()
    with_kernels = make(kind, n_envs=2, size_per_env=100)
    with native_tree.disabled():
        without = make(kind, n_envs=2, size_per_env=100)
        with pytest.raises(RuntimeError, match=r"not available: disabled by sb3_ddpg_plus\.native_tree\.disabled\(\)"):
            PriorityTree(10, native=True)
    assert PriorityTree(10).backend == "native"  # (only inside the block)
    assert (with_kernels._priorities.backend, without._priorities.backend) == ("native", "numpy")
    rng = np.random.default_rng(41)
    for round_ in range(6):
        for buffer in (with_kernels, without):
            fill(buffer, 2, 45, seed=40 + round_)
        for step in range(4):
            np.random.seed(10 * round_ + step)
            ours = with_kernels.sample(128)
            np.random.seed(10 * round_ + step)
            theirs = without.sample(128)
            assert th.equal(ours.indices, theirs.indices)
            assert th.equal(ours.observations, theirs.observations)
            if kind == "per":
                assert th.equal(ours.weights, theirs.weights)
            td_errors = rng.normal(size=128) * 3
            with_kernels.update_priorities(ours.indices, td_errors)
            without.update_priorities(theirs.indices, td_errors)
        np.testing.assert_array_equal(with_kernels.priorities(), without.priorities())
        assert with_kernels.max_priority == without.max_priority
    loaded = pickle.loads(pickle.dumps(with_kernels))
    assert loaded._priorities.backend == "native"
    np.testing.assert_array_equal(loaded.priorities(), with_kernels.priorities())


@pytest.mark.parametrize("kind", ["per", "lap"])
@pytest.mark.parametrize("n_envs, optimize_memory_usage", [(1, False), (3, True)])
def test_the_latest_sample_is_updated_as_any_indices(kind, n_envs, optimize_memory_usage):
    """update_priorities() recognises the latest sample's indices tensor and skips its checks (train()'s hot path):
    the priorities are the same as for the same indices given as a new array (checked)."""
    buffer = make(kind, n_envs=n_envs, optimize_memory_usage=optimize_memory_usage, size_per_env=30)
    fill(buffer, n_envs, 50, seed=30)
    twin = pickle.loads(pickle.dumps(buffer))
    rng = np.random.default_rng(31)
    for round_ in range(4):
        np.random.seed(round_)
        sample = buffer.sample(64)
        np.random.seed(round_)
        twin_sample = twin.sample(64)
        assert th.equal(sample.indices, twin_sample.indices)
        td_errors = th.from_numpy(rng.normal(size=(64, 1)).astype(np.float32) * 3)
        assert buffer._recognised_slots(sample.indices) is not None
        buffer.update_priorities(sample.indices, td_errors)
        twin.update_priorities(twin_sample.indices.numpy().copy(), td_errors.numpy())
        np.testing.assert_array_equal(buffer.priorities(), twin.priorities())
        assert buffer.max_priority == twin.max_priority


def test_changed_indices_or_buffer_are_checked_again():
    """The latest sample's indices are not recognised once modified in place, after add() or reset(), or in a loaded
    copy: they are then checked and read against the flags as any other indices."""
    buffer = make("per", optimize_memory_usage=True, size_per_env=30)
    fill(buffer, 1, 40, seed=32)
    sample = buffer.sample(16)
    assert buffer._recognised_slots(sample.indices) is not None
    assert buffer._recognised_slots(sample.indices.clone()) is None
    loaded = pickle.loads(pickle.dumps(buffer))
    assert loaded._last_sample is None and buffer._last_sample is not None
    sample.indices[0] = -1  # (in place: the tensor's version changes)
    assert buffer._recognised_slots(sample.indices) is None
    with pytest.raises(ValueError, match="indices must be"):
        buffer.update_priorities(sample.indices, th.ones(16))
    # A sampled slot that add() spends (in this mode the slot after the write head receives the next observation)
    # keeps priority 0
    for seed in range(34, 80):
        spent = (int(buffer._positions[0]) + 1) % buffer.buffer_size
        if buffer.priorities()[0, spent] > 0:
            break
        fill(buffer, 1, 1, seed=seed)
    assert buffer.priorities()[0, spent] > 0
    indices = th.full((16,), spent, dtype=th.int64)
    buffer._last_sample = (indices, indices._version, indices.numpy(), buffer._transitions_added)  # as if drawn
    fill(buffer, 1, 1, seed=33)
    assert buffer._recognised_slots(indices) is None
    buffer.update_priorities(indices, th.full((16,), 5.0))
    assert buffer.priorities()[0, spent] == 0.0
    sample = buffer.sample(8)
    buffer.reset()
    assert buffer._recognised_slots(sample.indices) is None
