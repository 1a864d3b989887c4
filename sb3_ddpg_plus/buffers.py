"""
The DDPGPlus replay buffer, written from scratch.

Layout: one ring of ``buffer_size // n_envs`` slots per environment (``[n_envs, slots, ...]``), each with its own
write position, so that every environment's transitions are contiguous in time. This makes three things simple and
exact:

- **n-step returns** walk forward along an environment's ring, stopping at the episode's end (termination or
  truncation, inclusive) and before the write head, so they are correct across wrap-around;
- **memory-optimised mode with time limits** (which SB3 forbids): the next observation of a transition is the
  observation in the next slot, and when an episode ends its final observation is kept in one extra slot that is
  never sampled, so a truncated episode still bootstraps from its true last observation;
- **per-slot flags** in one byte (valid, terminated, episode end) instead of SB3's two float32 arrays.

Observations and actions live on ``storage_device`` (the model's device by default): numpy arrays on the CPU (the
cheapest to write one transition at a time; samples are wrapped as tensors without a copy), torch tensors on a GPU
(sampling makes no host-to-device copy). Rewards and flags are small numpy arrays used to compute targets.
The buffer stores raw observations and rewards: ``VecNormalize`` is applied at sample time, as in SB3.

SB3's public contract is kept on top of this layout: ``observations``, ``next_observations``, ``actions``,
``rewards``, ``dones`` and ``timeouts`` read as SB3's ``[buffer_size, n_envs, ...]`` arrays (one row per ``add()``
call), and ``pos``, ``full`` and ``size()`` count those rows, as SB3 does (see ``DDPGPlusReplayBuffer``).
"""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecNormalize

VALID = np.uint8(1)  # slot holds a sampleable transition
TERMINATED = np.uint8(2)  # the episode terminated at this transition (no bootstrap)
EPISODE_END = np.uint8(4)  # the episode ended here (terminated or truncated): n-step returns stop here

_SINGLE_KEY = ""  # key of the only observation array for non-Dict observation spaces


def _torch_dtype(dtype: np.dtype) -> th.dtype:
    return th.from_numpy(np.zeros(0, dtype=dtype)).dtype


class DDPGPlusReplayBuffer(ReplayBuffer):
    """
    Replay buffer for Box and Dict observations with n-step returns, time-limit handling in every mode and a
    memory-optimised mode. It subclasses SB3's ``ReplayBuffer`` for ``isinstance`` checks and
    ``load_replay_buffer``, but shares none of its storage code.

    :param buffer_size: Max number of transitions (split evenly between environments)
    :param observation_space: Observation space (Box or Dict)
    :param action_space: Action space
    :param device: Device of the sampled tensors
    :param n_envs: Number of parallel environments
    :param optimize_memory_usage: Store each observation once (the next observation is read from the next slot).
        Unlike SB3, this works together with ``handle_timeout_termination``: each episode end costs one extra slot.
    :param handle_timeout_termination: Treat time-limit truncations (``info["TimeLimit.truncated"]``) as non-terminal,
        so the target bootstraps through them
    :param n_steps: Number of steps of the returns (1 for the usual one-step TD target)
    :param gamma: Discount factor used for n-step returns
    :param storage_device: Device of the stored tensors (default: ``device``)

    SB3's public attributes have SB3's names, shapes, dtypes and meanings, so that code written for SB3's buffer
    (``rb.observations[: rb.size()]``, ``rb.rewards[rb.pos - 1]``, exporting a dataset) reads the same data:
    ``pos`` is the row the next ``add()`` writes, ``full`` whether the rows have wrapped around, ``size()`` the
    number of rows per environment. The arrays are read-only. Without memory optimisation (storage on the CPU)
    ``observations``, ``next_observations``, ``actions`` and ``rewards`` are views of the storage and ``dones`` and
    ``timeouts`` small copies built from the flags. In memory-optimised mode every array is a copy gathered at each
    access (the rings spend a slot on each episode end, so their slots are not SB3's rows): ``next_observations``
    exists there too, with the true final observations, and the oldest rows that the rings no longer hold read as
    zeros (``valid_mask()`` tells which rows hold a transition). With storage on a GPU they are host copies.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 1,
        gamma: float = 0.99,
        storage_device: th.device | str | None = None,
    ):
        if not isinstance(buffer_size, int | np.integer) or buffer_size < 1:
            raise ValueError(f"`buffer_size` must be a positive integer, got {buffer_size!r}")
        if not isinstance(n_envs, int | np.integer) or n_envs < 1:
            raise ValueError(f"`n_envs` must be a positive integer, got {n_envs!r}")
        if not isinstance(n_steps, int | np.integer) or n_steps < 1:
            raise ValueError(f"`n_steps` must be a positive integer, got {n_steps!r}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"`gamma` must be in [0, 1], got {gamma!r}")
        if not isinstance(observation_space, spaces.Box | spaces.Dict):
            raise ValueError(f"DDPGPlusReplayBuffer supports Box and Dict observation spaces, got {observation_space}")
        # BaseBuffer only sets the shapes, device and positions; none of ReplayBuffer's arrays are allocated.
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(int(buffer_size) // n_envs, 2 if optimize_memory_usage else 1)
        self.optimize_memory_usage = optimize_memory_usage
        self.handle_timeout_termination = handle_timeout_termination
        self.n_steps = int(n_steps)
        self.gamma = float(gamma)
        self.storage_device = get_device(storage_device) if storage_device is not None else self.device
        self.action_dim = get_action_dim(action_space)

        if isinstance(observation_space, spaces.Dict):
            self._obs_spaces = dict(observation_space.spaces)
        else:
            self._obs_spaces = {_SINGLE_KEY: observation_space}
        shape = (self.n_envs, self.buffer_size)
        self._obs = {key: self._zeros(shape + get_obs_shape(space), space.dtype) for key, space in self._obs_spaces.items()}
        self._next_obs = (
            {}
            if optimize_memory_usage
            else {key: self._zeros(shape + get_obs_shape(space), space.dtype) for key, space in self._obs_spaces.items()}
        )
        # Actions are stored as float32 (as SB3 does, GH#1572): they live in the scaled [-1, 1] space
        self._actions = self._zeros((*shape, self.action_dim), np.float32)
        self._rewards = np.zeros(shape, dtype=np.float32)
        self._flags = np.zeros(shape, dtype=np.uint8)
        self._positions = np.zeros(self.n_envs, dtype=np.int64)
        self._full = np.zeros(self.n_envs, dtype=bool)
        self._env_indices = np.arange(self.n_envs)
        self._discount_powers = self.gamma ** np.arange(1, self.n_steps + 1, dtype=np.float64)

    @property
    def _on_cpu(self) -> bool:
        return self.storage_device.type == "cpu"

    def _zeros(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray | th.Tensor:
        if self._on_cpu:
            return np.zeros(shape, dtype=dtype)
        return th.zeros(shape, dtype=_torch_dtype(np.dtype(dtype)), device=self.storage_device)

    # ------------------------------------------------------------------ size and memory
    def size(self) -> int:
        """
        :return: SB3's size: the number of rows filled per environment, ``buffer_size`` once the buffer has wrapped
            around, else ``pos`` (one row per ``add()`` call, as in SB3; not summed over environments)
        """
        return self.buffer_size if self.full else self.pos

    def nbytes(self) -> int:
        """:return: Bytes used by the storage (observations, actions, rewards, flags)."""
        arrays = [*self._obs.values(), *self._next_obs.values(), self._actions, self._rewards, self._flags]
        return int(sum(a.nbytes if isinstance(a, np.ndarray) else a.element_size() * a.nelement() for a in arrays))

    def bytes_per_transition(self) -> float:
        """:return: Storage bytes per transition slot."""
        return self.nbytes() / (self.n_envs * self.buffer_size)

    def reset(self) -> None:
        self._flags[:] = 0
        self._positions[:] = 0
        self._full[:] = False
        self.pos = 0
        self.full = False

    # ------------------------------------------------------------------ writing
    def _write(
        self, store: np.ndarray | th.Tensor, env: np.ndarray, pos: np.ndarray, value: Any, key: str | None = None
    ) -> None:
        shape = store.shape[2:]
        value = np.asarray(value).reshape((self.n_envs, *shape))
        if isinstance(store, np.ndarray):
            store[env, pos] = value
        else:
            index = (th.as_tensor(env, device=self.storage_device), th.as_tensor(pos, device=self.storage_device))
            store[index] = th.as_tensor(value, device=self.storage_device).to(store.dtype)

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        next_obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """
        Store one transition per environment.

        :param obs: Observations (raw, not normalised)
        :param next_obs: Next observations (the terminal observation when an episode ended)
        :param action: Actions in the scaled ``[-1, 1]`` space
        :param reward: Rewards (raw)
        :param done: Whether each episode ended (terminated or truncated)
        :param infos: Infos, read for ``TimeLimit.truncated``
        """
        if self.n_envs == 1 and self._on_cpu:
            self._add_single(obs, next_obs, action, reward, done, infos)
        else:
            self._add_general(obs, next_obs, action, reward, done, infos)

    def _add_general(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        next_obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """``add`` for any number of environments and either storage."""
        env, pos = self._env_indices, self._positions
        done = np.asarray(done, dtype=bool).reshape(self.n_envs)
        if self.handle_timeout_termination:
            truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos], dtype=bool)
            terminated = done & ~truncated
        else:
            terminated = done
        next_pos = (pos + 1) % self.buffer_size
        for key in self._obs:
            self._write(self._obs[key], env, pos, obs[key] if key else obs, key)
            next_value = next_obs[key] if key else next_obs
            if self.optimize_memory_usage:
                self._write(self._obs[key], env, next_pos, next_value, key)
            else:
                self._write(self._next_obs[key], env, pos, next_value, key)
        self._write(self._actions, env, pos, np.asarray(action, dtype=np.float32).reshape(self.n_envs, self.action_dim))
        self._rewards[env, pos] = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        self._flags[env, pos] = VALID | (TERMINATED * terminated) | (EPISODE_END * done)
        step = np.ones(self.n_envs, dtype=np.int64)
        if self.optimize_memory_usage:
            # The slot after the transition holds its next observation: it is not a transition (yet)
            self._flags[env, next_pos] = 0
            # After an episode end, keep that slot (the final observation) and start the next episode after it
            step += done
        self._advance(step)
        self._next_row()

    def _add_single(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        next_obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """
        ``add`` for one environment on the CPU (the common case), with Python scalars instead of one-element arrays.
        The same writes as the general path (``tests/test_buffers.py`` compares them).
        """
        pos = int(self._positions[0])
        ended = bool(np.asarray(done, dtype=bool).reshape(1)[0])
        truncated = self.handle_timeout_termination and bool(infos[0].get("TimeLimit.truncated", False))
        next_pos = (pos + 1) % self.buffer_size
        for key, store in self._obs.items():
            shape = store.shape[2:]
            store[0, pos] = np.asarray(obs[key] if key else obs).reshape(shape)
            next_value = np.asarray(next_obs[key] if key else next_obs).reshape(shape)
            if self.optimize_memory_usage:
                store[0, next_pos] = next_value
            else:
                self._next_obs[key][0, pos] = next_value
        self._actions[0, pos] = np.asarray(action, dtype=np.float32).reshape(self.action_dim)
        self._rewards[0, pos] = np.asarray(reward, dtype=np.float32).reshape(1)[0]
        self._flags[0, pos] = VALID | (TERMINATED if ended and not truncated else 0) | (EPISODE_END if ended else 0)
        step = 1
        if self.optimize_memory_usage:
            # As in the general path: the next slot holds the next observation; an episode end keeps it
            self._flags[0, next_pos] = 0
            step += ended
        new_position = pos + step
        if new_position >= self.buffer_size:
            self._full[0] = True
        self._positions[0] = new_position % self.buffer_size
        # SB3's row counter (_next_row inlined on this hot path; Python ints, cheaper than reading numpy positions)
        row = self.pos + 1
        if row == self.buffer_size:
            self.full = True
            row = 0
        self.pos = row

    def _advance(self, step: np.ndarray) -> None:
        """Move each environment's write position (its ring slot) by ``step`` slots."""
        new_positions = self._positions + step
        self._full |= new_positions >= self.buffer_size
        self._positions = new_positions % self.buffer_size

    def _next_row(self) -> None:
        """
        Move SB3's ``pos``/``full`` by one row: one per ``add()`` call, common to all environments, whatever the
        rings spent on episode ends (without memory optimisation it equals every environment's ring position).
        """
        row = self.pos + 1
        if row == self.buffer_size:
            self.full = True
            row = 0
        self.pos = row

    def start_new_trajectory(self) -> None:
        """
        Close every environment's unfinished episode as truncated, e.g. when ``learn()`` resets the environments.
        The last transition then bootstraps from the next observation it really had (SB3 instead marks it done,
        GH#46); in memory-optimised mode that observation's slot is kept.
        """
        last = (self._positions - 1) % self.buffer_size
        written = self._full | (self._positions > 0)
        open_episode = written & (self._flags[self._env_indices, last] & VALID).astype(bool)
        open_episode &= ~(self._flags[self._env_indices, last] & EPISODE_END).astype(bool)
        if not open_episode.any():
            return
        self._flags[self._env_indices[open_episode], last[open_episode]] |= EPISODE_END
        if self.optimize_memory_usage:
            self._advance(open_episode.astype(np.int64))

    # ------------------------------------------------------------------ SB3's public arrays
    # SB3's layout is [buffer_size, n_envs, ...] with one row per add() call; the rings are [n_envs, slots, ...]. Without
    # memory optimisation slot i of every ring is row i, so the arrays are transposed views; in memory-optimised mode the
    # rings spend a slot on each episode end and drift apart, so rows are gathered (a copy).

    @staticmethod
    def _read_only(array: np.ndarray) -> np.ndarray:
        # Writes to these arrays would either bypass the flags the sampler reads (views) or be lost (copies): refuse them
        array.flags.writeable = False
        return array

    @staticmethod
    def _numpy(store: np.ndarray | th.Tensor) -> np.ndarray:
        """The storage as a numpy array: itself on the CPU, a host copy of a GPU tensor."""
        return store if isinstance(store, np.ndarray) else store.detach().cpu().numpy()

    def _row_slots(self) -> tuple[np.ndarray, np.ndarray]:
        """
        Where SB3's rows are in the rings (memory-optimised mode). Each ring holds its transitions in time order from
        its write position (the oldest) onwards, exactly one per ``add()`` call, with slots that hold only an
        observation in between (after an episode end, and the newest transition's next observation). So the newest
        transition is row ``pos - 1``, the one before it row ``pos - 2``, and so on.

        :return: Slot of each row's transition, shape ``(buffer_size, n_envs)``, and whether the ring still holds it
        """
        slots = np.zeros((self.buffer_size, self.n_envs), dtype=np.int64)
        held = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        offsets = np.arange(self.buffer_size)
        for env in range(self.n_envs):
            order = (self._positions[env] + offsets) % self.buffer_size
            transitions = order[(self._flags[env, order] & VALID) != 0]
            # (at most size(): a ring always keeps one slot for the newest next observation, and holds at most one
            # transition per add() call)
            count = min(len(transitions), self.size())
            rows = (self.pos - count + offsets[:count]) % self.buffer_size
            slots[rows, env] = transitions[len(transitions) - count :]
            held[rows, env] = True
        return slots, held

    def _rows(self, store: np.ndarray | th.Tensor, slots: np.ndarray, held: np.ndarray) -> np.ndarray:
        """A ring store's values at the given slots, in SB3's layout, zero where the ring no longer holds the row."""
        values = self._numpy(store)[self._env_indices, slots]
        values[~held] = 0
        return values

    def _row_flags(self) -> np.ndarray:
        """The per-slot flags in SB3's layout, ``(buffer_size, n_envs)`` (0 for rows without a transition)."""
        if not self.optimize_memory_usage:
            return self._flags.T
        slots, held = self._row_slots()
        return np.where(held, self._flags[self._env_indices, slots], 0)

    def valid_mask(self) -> np.ndarray:
        """
        Not in SB3: which rows of the SB3 arrays hold a transition. Without memory optimisation these are the rows
        below ``size()``; in memory-optimised mode each episode end in the buffer costs one of the oldest rows (and
        row ``pos`` never holds one once the buffer is full, as in SB3's memory-optimised buffer).

        :return: Boolean array of shape ``(buffer_size, n_envs)``
        """
        return self._read_only(np.ascontiguousarray((self._row_flags() & VALID) != 0))

    @property
    def observations(self) -> np.ndarray | dict[str, np.ndarray]:  # type: ignore[override]
        """
        SB3's ``observations``: shape ``(buffer_size, n_envs, *obs_shape)`` (a dict of such arrays for Dict
        observation spaces, as SB3's ``DictReplayBuffer``), raw (not normalised), read-only.

        - Without memory optimisation: a view of the storage (no copy) when it is on the CPU.
        - Memory-optimised mode: a copy (each access gathers the rows: read it once, then index the result). As in
          SB3's memory-optimised buffer, row ``pos`` holds the newest transition's next observation, so
          ``observations[(i + 1) % buffer_size]`` is row ``i``'s next observation except at episode ends (use
          ``next_observations``, which is right there too). Rows the ring no longer holds are zeros (see
          ``valid_mask``).
        - Storage on a GPU: a host copy.
        """
        stores = {key: self._numpy(store) for key, store in self._obs.items()}
        if self.optimize_memory_usage:
            slots, held = self._row_slots()
            result = {key: self._rows(store, slots, held) for key, store in stores.items()}
            newest = (self.pos - 1) % self.buffer_size
            envs = np.flatnonzero(held[newest])
            for key, store in stores.items():
                result[key][self.pos, envs] = store[envs, (slots[newest, envs] + 1) % self.buffer_size]
        else:
            result = {key: store.swapaxes(0, 1) for key, store in stores.items()}
        result = {key: self._read_only(value) for key, value in result.items()}
        return result if self._is_dict else result[_SINGLE_KEY]

    @property
    def next_observations(self) -> np.ndarray | dict[str, np.ndarray]:
        """
        SB3's ``next_observations``: the observation after each row's transition (the final observation of an
        episode, not the reset one), same shape as ``observations``, read-only.

        - Without memory optimisation: a view of the storage when it is on the CPU.
        - Memory-optimised mode (where SB3 has no such array): a copy, read from the slot after each transition
          (which keeps an episode's final observation); zeros for rows the ring no longer holds.
        - Storage on a GPU: a host copy.
        """
        if self.optimize_memory_usage:
            slots, held = self._row_slots()
            next_slots = (slots + 1) % self.buffer_size
            result = {key: self._rows(store, next_slots, held) for key, store in self._obs.items()}
        else:
            result = {key: self._numpy(store).swapaxes(0, 1) for key, store in self._next_obs.items()}
        result = {key: self._read_only(value) for key, value in result.items()}
        return result if self._is_dict else result[_SINGLE_KEY]

    @property
    def actions(self) -> np.ndarray:
        """
        SB3's ``actions``: the actions in the scaled ``[-1, 1]`` space, float32, shape ``(buffer_size, n_envs,
        action_dim)``, read-only. A view without memory optimisation (storage on the CPU), else a copy (zeros for
        rows the ring no longer holds).
        """
        if self.optimize_memory_usage:
            return self._read_only(self._rows(self._actions, *self._row_slots()))
        return self._read_only(self._numpy(self._actions).swapaxes(0, 1))

    @property
    def rewards(self) -> np.ndarray:
        """
        SB3's ``rewards``: the raw one-step rewards as added (also with ``n_steps > 1``: n-step returns are computed
        when sampling), float32, shape ``(buffer_size, n_envs)``, read-only. A view without memory optimisation, else
        a copy (zeros for rows the ring no longer holds).
        """
        if self.optimize_memory_usage:
            return self._read_only(self._rows(self._rewards, *self._row_slots()))
        return self._read_only(self._rewards.T)

    @property
    def dones(self) -> np.ndarray:
        """
        SB3's ``dones``: 1.0 where the episode ended at the transition (terminated or truncated, the ``done`` passed
        to ``add``), float32, shape ``(buffer_size, n_envs)``, read-only. Always a copy: the buffer stores one byte
        of flags per slot. An episode closed by ``start_new_trajectory`` (``learn()`` resetting the environments)
        reads as done and timed out: the next row starts a new episode, and the target bootstraps through it.
        """
        return self._read_only(((self._row_flags() & EPISODE_END) != 0).astype(np.float32, order="C"))

    @property
    def timeouts(self) -> np.ndarray:
        """
        SB3's ``timeouts``: 1.0 where the episode ended without terminating (a time-limit truncation when
        ``handle_timeout_termination``, or an episode closed by ``start_new_trajectory``), float32, shape
        ``(buffer_size, n_envs)``, read-only, always a copy. As in SB3, ``dones * (1 - timeouts)`` is the done flag
        that the TD target uses.
        """
        ended = (self._row_flags() & (EPISODE_END | TERMINATED)) == EPISODE_END
        return self._read_only(ended.astype(np.float32, order="C"))

    # ------------------------------------------------------------------ sampling
    def _sample_slots(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform over valid transitions: draw (env, slot) pairs and redraw the few that are not valid."""
        extents = np.where(self._full, self.buffer_size, self._positions)
        max_extent = int(extents.max())
        # (a non-empty ring always holds a valid transition: its first slot is written as one)
        if max_extent == 0:
            raise ValueError("Cannot sample from an empty replay buffer: add transitions first")
        draws = np.random.randint(0, self.n_envs * max_extent, size=batch_size)
        if self.n_envs == 1:
            # (the same draws as the divmod below, without it)
            envs, slots = np.zeros(batch_size, dtype=draws.dtype), draws
        else:
            envs, slots = np.divmod(draws, max_extent)
        if not self.optimize_memory_usage:
            # Every environment writes one slot per step: all slots below the (common) extent are valid
            return envs, slots
        bad = ~(self._flags[envs, slots] & VALID).astype(bool) | (slots >= extents[envs])
        while bad.any():
            n_bad = int(bad.sum())
            envs[bad] = np.random.randint(0, self.n_envs, size=n_bad)
            slots[bad] = np.random.randint(0, max_extent, size=n_bad)
            bad = ~(self._flags[envs, slots] & VALID).astype(bool) | (slots >= extents[envs])
        return envs, slots

    def _n_step_targets(self, envs: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, ...]:
        """
        Discounted reward sums up to ``n_steps`` transitions, stopping at an episode end (inclusive) and before the
        write head (the oldest data). Returns (returns, last slot used, discounts ``gamma ** steps``).
        """
        returns = self._rewards[envs, slots].astype(np.float64)
        last = slots.copy()
        discounts = np.full(len(slots), self.gamma)
        alive = ~(self._flags[envs, slots] & EPISODE_END).astype(bool)
        heads = self._positions[envs]
        for k in range(1, self.n_steps):
            candidate = (slots + k) % self.buffer_size
            flags = self._flags[envs, candidate]
            alive &= (candidate != heads) & (flags & VALID).astype(bool)
            if not alive.any():
                break
            returns += np.where(alive, self._discount_powers[k - 1] * self._rewards[envs, candidate], 0.0)
            last = np.where(alive, candidate, last)
            discounts = np.where(alive, self._discount_powers[k], discounts)
            alive &= ~(flags & EPISODE_END).astype(bool)
        return returns, last, discounts

    def _flat_index(self, envs: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Row indices into the ``[n_envs * buffer_size, ...]`` view of the storage."""
        return slots if self.n_envs == 1 else envs * self.buffer_size + slots

    def _gather(self, store: dict[str, Any], rows: np.ndarray) -> dict[str, th.Tensor]:
        """The given rows (flat indices) of each array; on the CPU wrapped as tensors without a further copy."""
        if self._on_cpu:
            # np.take on the flat view is faster than indexing [envs, slots]
            return {
                key: th.from_numpy(np.take(value.reshape(-1, *value.shape[2:]), rows, axis=0)) for key, value in store.items()
            }
        index = th.as_tensor(rows, device=self.storage_device)
        return {key: value.flatten(0, 1)[index] for key, value in store.items()}

    def _normalize(self, observations: dict[str, th.Tensor], env: VecNormalize | None) -> Any:
        if env is None:
            return observations if self._is_dict else observations[_SINGLE_KEY]
        # VecNormalize works on numpy with its current statistics (exactly SB3's semantics)
        raw = {key: value.cpu().numpy() for key, value in observations.items()}
        normalized = env.normalize_obs(raw if self._is_dict else raw[_SINGLE_KEY])
        if self._is_dict:
            return {key: th.as_tensor(value, device=self.device) for key, value in normalized.items()}  # type: ignore[union-attr]
        return th.as_tensor(normalized, device=self.device)

    @property
    def _is_dict(self) -> bool:
        return isinstance(self.observation_space, spaces.Dict)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples | DictReplayBufferSamples:  # type: ignore[override]
        """
        Sample transitions uniformly.

        :param batch_size: Number of transitions
        :param env: ``VecNormalize`` wrapper whose statistics normalise observations and rewards, if any
        :return: The samples (``discounts`` is set when ``n_steps > 1``)
        """
        envs, slots = self._sample_slots(batch_size)
        return self.samples_at(envs, slots, env)

    def samples_at(
        self, envs: np.ndarray, slots: np.ndarray, env: VecNormalize | None = None
    ) -> ReplayBufferSamples | DictReplayBufferSamples:
        """
        The samples for given (environment, slot) pairs.

        :param envs: Environment index of each sample
        :param slots: Slot index of each sample
        :param env: ``VecNormalize`` wrapper, if any
        :return: The samples
        """
        rows = self._flat_index(envs, slots)
        if self.n_steps > 1:
            returns, last, discounts_np = self._n_step_targets(envs, slots)
            last_rows = self._flat_index(envs, last)
        else:
            returns, last, discounts_np = np.take(self._rewards.reshape(-1), rows), slots, None
            last_rows = rows
        observations = self._gather(self._obs, rows)
        if self.optimize_memory_usage:
            next_observations = self._gather(self._obs, self._flat_index(envs, (last + 1) % self.buffer_size))
        else:
            next_observations = self._gather(self._next_obs, last_rows)
        dones = ((np.take(self._flags.reshape(-1), last_rows) & TERMINATED) != 0).astype(np.float32)
        rewards = env.normalize_reward(returns) if env is not None else returns
        device = self.device
        obs_out = self._normalize(observations, env)
        next_obs_out = self._normalize(next_observations, env)
        if self.storage_device != device:
            obs_out = self._to_device(obs_out)
            next_obs_out = self._to_device(next_obs_out)
        actions = self._gather({"": self._actions}, rows)[""].to(device)
        dones_t = th.as_tensor(dones, device=device).reshape(-1, 1)
        rewards_t = th.as_tensor(np.asarray(rewards, dtype=np.float32), device=device).reshape(-1, 1)
        discounts = None
        if discounts_np is not None:
            discounts = th.as_tensor(discounts_np.astype(np.float32), device=device).reshape(-1, 1)
        samples_class = DictReplayBufferSamples if self._is_dict else ReplayBufferSamples
        return samples_class(obs_out, actions, next_obs_out, dones_t, rewards_t, discounts)  # type: ignore[arg-type]

    def _to_device(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: tensor.to(self.device) for key, tensor in value.items()}
        return value.to(self.device)
