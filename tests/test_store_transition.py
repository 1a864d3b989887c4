"""
Storing a transition per environment step: without VecNormalize and without an episode end, DDPGPlus skips SB3's
deepcopy of ``new_obs`` (its buffer copies what ``add()`` is given). What is stored, what callbacks see in
``locals``, ``_last_obs`` and ``_last_original_obs`` stay SB3's: checked against SB3's own ``_store_transition``,
with time-limit truncations (``terminal_observation``), several environments, Dict observations, memory-optimised
storage and VecNormalize.
"""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_ddpg_plus import DDPGPlus

ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
SMALL = dict(learning_starts=40, batch_size=16, policy_kwargs=dict(net_arch=[8]), seed=0)
STEPS = 130


class DictPendulum(gym.ObservationWrapper):
    """Pendulum with its observation split into a Dict."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = spaces.Dict(
            {"xy": spaces.Box(-1.0, 1.0, (2,), np.float32), "speed": spaces.Box(-8.0, 8.0, (1,), np.float32)}
        )

    def observation(self, observation):
        return {"xy": observation[:2], "speed": observation[2:]}


def make_env(case):
    lengths = (30, 23) if case == "two-envs" else (30,)

    def one(length):
        def build():
            env = gym.make("Pendulum-v1", max_episode_steps=length)
            return DictPendulum(env) if case == "dict" else env

        return build

    env = DummyVecEnv([one(length) for length in lengths])
    env.seed(0)
    return VecNormalize(env) if case == "vecnormalize" else env


class UpstreamStore(DDPGPlus):
    """The reference: SB3's ``_store_transition`` (deepcopy of ``new_obs``, terminal observations written into it)."""

    def _store_transition(self, *args):
        OffPolicyAlgorithm._store_transition(self, *args)


class NewObsUnchanged(BaseCallback):
    """
    Keeps each step's ``new_obs`` with a copy of it: one step later (its transition stored) it is unchanged and is the
    model's ``_last_obs``, as with SB3.
    """

    def __init__(self):
        super().__init__()
        self.previous = None
        self.checked = 0
        self.episode_ends = 0

    def _check(self):
        if self.previous is None:
            return
        kept, snapshot = self.previous
        assert self.model._last_obs is kept
        for key in snapshot if isinstance(snapshot, dict) else [None]:
            np.testing.assert_array_equal(kept[key] if key else kept, snapshot[key] if key else snapshot)
        self.checked += 1

    def _on_step(self):
        self._check()
        new_obs = self.locals["new_obs"]
        self.previous = (new_obs, copy.deepcopy(new_obs))
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done:
                assert info.get("terminal_observation") is not None
                self.episode_ends += 1
        return True

    def _on_training_end(self):
        self._check()


def arrays(model):
    buffer = model.replay_buffer
    out = {}
    for name in ARRAYS:
        value = getattr(buffer, name)
        if isinstance(value, dict):
            out.update({f"{name}/{key}": np.array(item) for key, item in value.items()})
        else:
            out[name] = np.array(value)
    return out


@pytest.mark.parametrize("case", ["one-env", "two-envs", "dict", "memory-optimised", "vecnormalize"])
def test_stored_transitions_and_callback_locals_are_sb3s(case, monkeypatch):
    upstream_calls = []
    upstream_store = OffPolicyAlgorithm._store_transition

    def counted(self, *args):
        upstream_calls.append(type(self))
        upstream_store(self, *args)

    monkeypatch.setattr(OffPolicyAlgorithm, "_store_transition", counted)
    policy = "MultiInputPolicy" if case == "dict" else "MlpPolicy"
    kwargs = dict(SMALL, optimize_memory_usage=case == "memory-optimised")
    models, callbacks = [], []
    for cls in (DDPGPlus, UpstreamStore):
        model = cls(policy, make_env(case), **kwargs)
        callback = NewObsUnchanged()
        model.learn(STEPS, callback=callback)
        models.append(model)
        callbacks.append(callback)
    ours, reference = models

    for callback in callbacks:
        assert callback.checked >= STEPS // ours.n_envs
        assert callback.episode_ends >= 4  # time-limit truncations, with their terminal observation
    ours_arrays, reference_arrays = arrays(ours), arrays(reference)
    assert ours_arrays.keys() == reference_arrays.keys()
    for name, value in ours_arrays.items():
        np.testing.assert_array_equal(value, reference_arrays[name], err_msg=name)
    assert np.array(ours.replay_buffer.timeouts).any()
    for name in ("_last_obs", "_last_original_obs"):
        mine, theirs = getattr(ours, name), getattr(reference, name)
        for key in mine if isinstance(mine, dict) else [None]:
            np.testing.assert_array_equal(mine[key] if key else mine, theirs[key] if key else theirs)
    for mine, theirs in zip(ours.policy.state_dict().values(), reference.policy.state_dict().values(), strict=True):
        assert th.equal(mine, theirs)

    # SB3's path (deepcopy) only where it is needed: VecNormalize, or a step where an episode ended
    ours_calls = upstream_calls.count(DDPGPlus)
    steps = STEPS // ours.n_envs
    if case == "vecnormalize":
        assert ours_calls == steps
    else:
        assert 0 < ours_calls < steps // 4
    assert upstream_calls.count(UpstreamStore) == steps


def test_patched_buffer_add_gets_sb3s_copy():
    """A buffer whose add() is replaced (it may keep what it is given) is handed SB3's deep copy."""
    model = DDPGPlus("MlpPolicy", make_env("one-env"), **SMALL)
    model.learn(1)
    kept = []
    own_add = model.replay_buffer.add

    def keeping_add(obs, next_obs, *args):
        kept.append(next_obs)
        own_add(obs, next_obs, *args)

    model.replay_buffer.add = keeping_add
    callback = NewObsUnchanged()
    model.learn(5, callback=callback, reset_num_timesteps=False)
    assert kept and all(next_obs is not model._last_obs for next_obs in kept)
