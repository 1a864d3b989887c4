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

**Prioritised replay** (``prioritized="per"`` or ``"lap"``, see :mod:`sb3_ddpg_plus.priorities`): one priority per
ring slot, indexed like the flat storage (``env * buffer_size + slot``), in a sum-tree over all environments' rings.
A slot has priority 0 exactly when its flags say it holds no transition (the uniform sampler's rule), and a slot
that ``add()`` writes gets the running maximum priority. Writes are recorded by ``add()`` (a list append, so adding
stays cheap) and applied to the tree before the next sample or priority update.

SB3's public contract is kept on top of this layout: ``observations``, ``next_observations``, ``actions``,
``rewards``, ``dones`` and ``timeouts`` read as SB3's ``[buffer_size, n_envs, ...]`` arrays (one row per ``add()``
call), and ``pos``, ``full`` and ``size()`` count those rows, as SB3 does (see ``DDPGPlusReplayBuffer``).
"""

import math
from typing import Any, NamedTuple, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples, TensorDict
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ddpg_plus.priorities import PriorityTree, check_prioritized_kwargs, priorities_from_td_errors

VALID = np.uint8(1)  # slot holds a sampleable transition
TERMINATED = np.uint8(2)  # the episode terminated at this transition (no bootstrap)
EPISODE_END = np.uint8(4)  # the episode ended here (terminated or truncated): n-step returns stop here

_SINGLE_KEY = ""  # key of the only observation array for non-Dict observation spaces

# A slot's done flag (float32) by its flags byte: 1.0 where TERMINATED is set, else 0.0
_TERMINATED_AS_FLOAT = ((np.arange(256, dtype=np.uint8) & TERMINATED) != 0).astype(np.float32)


def _torch_dtype(dtype: np.dtype) -> th.dtype:
    return th.from_numpy(np.zeros(0, dtype=dtype)).dtype


# Prioritised samples extend SB3's sample tuples the way SB3 added ``discounts``: new fields at the end, with defaults,
# in a subclass, so that ``isinstance(samples, ReplayBufferSamples)``, field access, slicing field by field and
# rebuilding with ``type(samples)(*fields)`` all still work. (Code that unpacks exactly six fields must take the
# first six: ``observations, actions, next_observations, dones, rewards, discounts = samples[:6]``.)
class _PrioritizedFields(NamedTuple):
    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None = None
    indices: th.Tensor | None = None
    weights: th.Tensor | None = None


class _PrioritizedDictFields(NamedTuple):
    observations: TensorDict
    actions: th.Tensor
    next_observations: TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None = None
    indices: th.Tensor | None = None
    weights: th.Tensor | None = None


class PrioritizedReplayBufferSamples(_PrioritizedFields, ReplayBufferSamples):  # type: ignore[misc]
    """
    SB3's ``ReplayBufferSamples`` (an instance of it) with two more fields:

    - ``indices``: int64 tensor ``(batch,)``, each sample's buffer index (``env * buffer_size + slot``), to pass back
      to :meth:`DDPGPlusReplayBuffer.update_priorities`;
    - ``weights``: float32 tensor ``(batch, 1)``, PER's importance-sampling weights, or ``None`` where the loss is not
      weighted (LAP).
    """

    __slots__ = ()


class PrioritizedDictReplayBufferSamples(_PrioritizedDictFields, DictReplayBufferSamples):  # type: ignore[misc]
    """SB3's ``DictReplayBufferSamples`` with ``indices`` and ``weights`` (see ``PrioritizedReplayBufferSamples``)."""

    __slots__ = ()


# Shape of the priority tree (measured fastest for batches of 256 on 1e5 to 1e6 slots)
_TREE_SHAPE: dict[str, Any] = dict(branching=16, top_size=4096)

# Attributes added with prioritised replay, and their values for buffers pickled before it existed (uniform ones)
# (the same as in DDPGPlusReplayBuffer.__init__ without prioritisation)
_PRIORITY_STATE_DEFAULTS: dict[str, Any] = dict(
    prioritized=None,
    alpha=None,
    beta=None,
    beta_final=None,
    beta_schedule_steps=None,
    eps=None,
    _priorities=None,
    _written=[],
    _td_queue=[],
    _progress_remaining=1.0,
    _transitions_added=0,
    _last_sample=None,
)


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
    :param prioritized: ``None`` (uniform sampling; ``"uniform"`` means the same), ``"per"`` (Schaul et al. 2016,
        proportional) or ``"lap"`` (Fujimoto et al. 2020). See :meth:`update_priorities` for the priorities and
        ``sample`` for the importance weights. The parameters below apply only with prioritisation; a value given
        where it is not used is refused.
    :param alpha: Prioritisation exponent in ``[0, 1]`` (0: uniform over the transitions); default 0.6 for PER
        (Schaul et al.), 0.4 for LAP (Fujimoto et al., TD7)
    :param beta: PER only: importance-sampling exponent at the start, in ``[0, 1]``; default 0.4 (Schaul et al.)
    :param beta_final: PER only: the exponent at the end of the schedule, in ``[0, 1]``; default 1.0
    :param beta_schedule_steps: PER only: number of environment steps (transitions added, over all environments:
        SB3's ``num_timesteps`` when ``learn()`` fills the buffer) over which ``beta`` grows linearly to
        ``beta_final``. Default ``None``: ``beta`` follows the training progress that the algorithm passes to
        :meth:`set_progress` (reaching ``beta_final`` at the end of ``learn()``), and stays at ``beta`` if nothing
        calls it.
    :param eps: PER only: offset so that no transition has priority 0, ``p = |delta| + eps``, > 0; default 1e-6

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
        prioritized: str | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        beta_final: float | None = None,
        beta_schedule_steps: int | None = None,
        eps: float | None = None,
    ):
        # Checked first, so that a typo in replay_buffer_kwargs fails before a large allocation
        priority_kwargs = check_prioritized_kwargs(prioritized, alpha, beta, beta_final, beta_schedule_steps, eps)
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
        self._obs = {key: self._zeros(shape + _shape(space), space.dtype) for key, space in self._obs_spaces.items()}
        self._next_obs = (
            {}
            if optimize_memory_usage
            else {key: self._zeros(shape + _shape(space), space.dtype) for key, space in self._obs_spaces.items()}
        )
        # Actions are stored as float32 (as SB3 does, GH#1572): they live in the scaled [-1, 1] space
        self._actions = self._zeros((*shape, self.action_dim), np.float32)
        self._rewards = np.zeros(shape, dtype=np.float32)
        self._flags = np.zeros(shape, dtype=np.uint8)
        self._positions = np.zeros(self.n_envs, dtype=np.int64)
        self._full = np.zeros(self.n_envs, dtype=bool)
        self._env_indices = np.arange(self.n_envs)
        self._discount_powers = self.gamma ** np.arange(1, self.n_steps + 1, dtype=np.float64)

        self.prioritized: str | None = priority_kwargs["prioritized"]
        self.alpha: float | None = priority_kwargs.get("alpha")
        self.beta: float | None = priority_kwargs.get("beta")
        self.beta_final: float | None = priority_kwargs.get("beta_final")
        self.beta_schedule_steps: int | None = priority_kwargs.get("beta_schedule_steps")
        self.eps: float | None = priority_kwargs.get("eps")
        self._priorities: PriorityTree | None = None
        if self.prioritized is not None:
            # The minimum priority is only needed for PER's importance weights
            self._priorities = PriorityTree(self.n_envs * self.buffer_size, track_min=self.prioritized == "per", **_TREE_SHAPE)
        self._written: list[int] = []  # flat slots whose flags add() wrote since the tree was last updated
        self._td_queue: list[tuple[Any, th.Tensor]] = []  # (indices, TD errors on a device) not applied yet
        self._progress_remaining = 1.0
        self._transitions_added = 0
        # The latest prioritised sample's indices (the tensor handed out, its version counter), its flat slots and
        # the count of transitions added then: update_priorities() recognises them (see _recognised_slots)
        self._last_sample: tuple[th.Tensor, int | None, np.ndarray, int] | None = None

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
        """:return: Bytes used by the storage (observations, actions, rewards, flags; priorities if prioritised)."""
        arrays = [*self._obs.values(), *self._next_obs.values(), self._actions, self._rewards, self._flags]
        priorities = self._priorities.nbytes() if self._priorities is not None else 0
        return priorities + int(
            sum(a.nbytes if isinstance(a, np.ndarray) else a.element_size() * a.nelement() for a in arrays)
        )

    def bytes_per_transition(self) -> float:
        """:return: Storage bytes per transition slot."""
        return self.nbytes() / (self.n_envs * self.buffer_size)

    def reset(self) -> None:
        self._flags[:] = 0
        self._positions[:] = 0
        self._full[:] = False
        self.pos = 0
        self.full = False
        if self._priorities is not None:
            # (the count of transitions added, which drives beta's schedule, is training progress: it is kept)
            self._priorities.clear()
            self._written = []
            self._td_queue = []
            self._last_sample = None

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
        if self._priorities is not None:
            flat = env * self.buffer_size + pos
            if self.optimize_memory_usage:
                flat = np.concatenate([flat, env * self.buffer_size + next_pos])
            self._note_written(flat.tolist(), self.n_envs)
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
            store = cast(np.ndarray, store)  # the CPU storage of this fast path
            shape = store.shape[2:]
            store[0, pos] = np.asarray(obs[key] if key else obs).reshape(shape)
            next_value = np.asarray(next_obs[key] if key else next_obs).reshape(shape)
            if self.optimize_memory_usage:
                store[0, next_pos] = next_value
            else:
                self._next_obs[key][0, pos] = next_value  # type: ignore[assignment]
        self._actions[0, pos] = np.asarray(action, dtype=np.float32).reshape(self.action_dim)  # type: ignore[assignment]
        self._rewards[0, pos] = np.asarray(reward, dtype=np.float32).reshape(1)[0]  # type: ignore[assignment]
        self._flags[0, pos] = VALID | (TERMINATED if ended and not truncated else 0) | (EPISODE_END if ended else 0)
        step = 1
        if self.optimize_memory_usage:
            # As in the general path: the next slot holds the next observation; an episode end keeps it
            self._flags[0, next_pos] = 0
            step += ended
        if self._priorities is not None:
            self._note_written([pos, next_pos] if self.optimize_memory_usage else [pos], 1)
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
    def next_observations(self) -> np.ndarray | dict[str, np.ndarray]:  # type: ignore[override]
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
    def actions(self) -> np.ndarray:  # type: ignore[override]
        """
        SB3's ``actions``: the actions in the scaled ``[-1, 1]`` space, float32, shape ``(buffer_size, n_envs,
        action_dim)``, read-only. A view without memory optimisation (storage on the CPU), else a copy (zeros for
        rows the ring no longer holds).
        """
        if self.optimize_memory_usage:
            return self._read_only(self._rows(self._actions, *self._row_slots()))
        return self._read_only(self._numpy(self._actions).swapaxes(0, 1))

    @property
    def rewards(self) -> np.ndarray:  # type: ignore[override]
        """
        SB3's ``rewards``: the raw one-step rewards as added (also with ``n_steps > 1``: n-step returns are computed
        when sampling), float32, shape ``(buffer_size, n_envs)``, read-only. A view without memory optimisation, else
        a copy (zeros for rows the ring no longer holds).
        """
        if self.optimize_memory_usage:
            return self._read_only(self._rows(self._rewards, *self._row_slots()))
        return self._read_only(self._rewards.T)

    @property
    def dones(self) -> np.ndarray:  # type: ignore[override]
        """
        SB3's ``dones``: 1.0 where the episode ended at the transition (terminated or truncated, the ``done`` passed
        to ``add``), float32, shape ``(buffer_size, n_envs)``, read-only. Always a copy: the buffer stores one byte
        of flags per slot. An episode closed by ``start_new_trajectory`` (``learn()`` resetting the environments)
        reads as done and timed out: the next row starts a new episode, and the target bootstraps through it.
        """
        return self._read_only(((self._row_flags() & EPISODE_END) != 0).astype(np.float32, order="C"))

    @property
    def timeouts(self) -> np.ndarray:  # type: ignore[override]
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
        Sample transitions: uniformly over the transitions the buffer holds, or in proportion to their priorities
        (independent draws, with replacement: a batch sampled at once for several gradient steps and sliced is
        distributed as separate batches would be).

        :param batch_size: Number of transitions
        :param env: ``VecNormalize`` wrapper whose statistics normalise observations and rewards, if any
        :return: The samples (``discounts`` is set when ``n_steps > 1``); with prioritisation a
            ``PrioritizedReplayBufferSamples`` (or its Dict variant), which adds ``indices`` and ``weights``
        """
        if self.prioritized is not None:
            return self._sample_prioritized(batch_size, env)
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
        # (1.0 where the flags say TERMINATED, else 0.0: one lookup instead of a mask, a comparison and a cast)
        dones = _TERMINATED_AS_FLOAT.take(np.take(self._flags.reshape(-1), last_rows))
        rewards = env.normalize_reward(returns) if env is not None else returns
        device = self.device
        obs_out = self._normalize(observations, env)
        next_obs_out = self._normalize(next_observations, env)
        if self.storage_device != device:
            obs_out = self._to_device(obs_out)
            next_obs_out = self._to_device(next_obs_out)
        actions = self._gather({"": self._actions}, rows)[""]
        if actions.device != device:
            actions = actions.to(device)
        dones_t = self._column(dones)
        rewards_t = self._column(np.asarray(rewards, dtype=np.float32))
        discounts = None
        if discounts_np is not None:
            discounts = self._column(discounts_np.astype(np.float32))
        samples_class = DictReplayBufferSamples if self._is_dict else ReplayBufferSamples
        return samples_class(obs_out, actions, next_obs_out, dones_t, rewards_t, discounts)  # type: ignore[arg-type]

    def _column(self, values: np.ndarray) -> th.Tensor:
        """A ``(batch, 1)`` tensor on the model's device of a new host array (shared with it on the CPU)."""
        column = values.reshape(-1, 1)
        if self.device.type == "cpu":
            return th.from_numpy(column)
        return th.as_tensor(column, device=self.device)

    def _to_device(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: tensor.to(self.device) for key, tensor in value.items()}
        return value.to(self.device)

    # ------------------------------------------------------------------ prioritised replay
    def _note_written(self, slots: list[int], n_transitions: int) -> None:
        """
        Record that ``add()`` wrote the flags of these flat slots (applied to the tree at the next sample or priority
        update: a list append per ``add()`` instead of a tree update).

        :param slots: Flat indices of the slots whose flags ``add()`` wrote
        :param n_transitions: Transitions added (for beta's schedule)
        """
        if self._td_queue:
            # Priority updates queued on a device came before this add(): apply them first, in order
            self._flush_priorities()
        self._written.extend(slots)
        self._transitions_added += n_transitions
        assert self._priorities is not None
        if len(self._written) > self._priorities.capacity:
            # (long runs of add() without sampling, e.g. a large learning_starts: keep the list bounded)
            self._flush_priorities()

    def _flush_priorities(self) -> None:
        """
        Apply what is pending, in the order it happened: first the slots ``add()`` wrote (each gets the running
        maximum priority if it now holds a transition, else 0), then the TD errors queued by ``update_priorities``
        (queued errors are always newer: ``add()`` applies them before it records its slots).
        """
        tree = self._priorities
        assert tree is not None
        if self._written:
            slots = np.array(self._written, dtype=np.int64)
            self._written = []
            valid = (np.take(self._flags.reshape(-1), slots) & VALID) != 0
            tree.update(slots, np.where(valid, tree.max_priority, 0.0))
        if self._td_queue:
            queue, self._td_queue = self._td_queue, []
            # One device-to-host copy for all the updates since the last flush
            errors = th.cat([error for _, error in queue]).cpu().numpy()
            indices = np.concatenate([_as_numpy(index).reshape(-1) for index, _ in queue])
            self._apply_td_errors(indices, errors)

    def _sample_prioritized(
        self, batch_size: int, env: VecNormalize | None
    ) -> PrioritizedReplayBufferSamples | PrioritizedDictReplayBufferSamples:
        """``sample()`` in proportion to the priorities."""
        if self._written or self._td_queue:
            self._flush_priorities()
        tree = self._priorities
        assert tree is not None
        total = tree.total
        if not total > 0:
            raise ValueError("Cannot sample from an empty replay buffer: add transitions first")
        # The global generator, as the uniform sampler (seeded by set_random_seed)
        masses = np.random.random(batch_size)
        masses *= total
        # (the priorities drawn are only needed for PER's importance weights)
        flat, priorities = tree.find(masses, values=self.prioritized == "per")
        if self.n_envs == 1:
            envs, slots = np.zeros_like(flat), flat
        else:
            envs, slots = np.divmod(flat, self.buffer_size)
        samples = self.samples_at(envs, slots, env)
        weights = None
        if self.prioritized == "per":
            # w_i = (N P(i))^-beta / max_j (N P(j))^-beta with the max over every transition in the buffer (Schaul et
            # al.; the least likely one has the largest weight): w_i = (p_i / p_min)^-beta, N and the total cancel.
            # (In place: `priorities` is find()'s copy.)
            assert priorities is not None
            priorities /= tree.min_positive
            np.power(priorities, -self.current_beta(), out=priorities)
            weights = self._column(priorities.astype(np.float32))
        indices = th.from_numpy(flat)
        if self.device.type != "cpu":
            indices = indices.to(self.device)
        # (Tensor._version is torch's in-place modification counter; a torch without it recognises no sample)
        self._last_sample = (indices, getattr(indices, "_version", None), flat, self._transitions_added)
        samples_class = PrioritizedDictReplayBufferSamples if self._is_dict else PrioritizedReplayBufferSamples
        return samples_class(*samples, indices, weights)  # type: ignore[arg-type, call-arg]

    def update_priorities(self, indices: np.ndarray | th.Tensor, td_errors: np.ndarray | th.Tensor) -> None:
        """
        Set the priorities of sampled transitions from their TD errors, by the buffer's rule:

        - PER: ``(|delta| + eps) ** alpha``;
        - LAP: ``max(|delta|, 1) ** alpha`` (which is ``max(|delta| ** alpha, 1)``).

        The running maximum priority (which new transitions get) is raised accordingly. A slot that no longer holds a
        transition keeps priority 0; a slot rewritten since it was sampled takes the given priority (as in other
        implementations; ``train()`` samples and updates with no ``add()`` in between). With two critics, pass the
        larger ``|delta|`` of the two (as TD7). An index given more than once keeps its last value.

        TD errors on a GPU are queued without a device synchronisation and copied to the host all at once at the
        next ``sample()``, ``add()`` or priority read: the tree is on the host, where ``sample()`` needs the slots.

        :param indices: The samples' ``indices`` (numpy or torch, any device)
        :param td_errors: Their TD errors (numpy or torch, any device), ``(batch,)`` or ``(batch, 1)``; the absolute
            value is used; they must be finite
        """
        if self._priorities is None:
            raise ValueError("update_priorities() needs a prioritised buffer (prioritized='per' or 'lap')")
        if isinstance(td_errors, th.Tensor) and _on_device(td_errors):
            # (the shapes are known without a synchronisation: checked now, so that queued batches stay aligned)
            n_indices = indices.numel() if isinstance(indices, th.Tensor) else np.size(indices)
            if n_indices != td_errors.numel():
                raise ValueError(f"update_priorities: {n_indices} indices but {td_errors.numel()} TD errors")
            self._td_queue.append((indices, td_errors.detach().reshape(-1)))
            return
        if self._td_queue:
            self._flush_priorities()
        slots = self._recognised_slots(indices)
        if slots is not None:
            self._apply_td_errors(slots, _as_numpy(td_errors), sampled=True)
            return
        self._flush_priorities()
        self._apply_td_errors(_as_numpy(indices).reshape(-1), _as_numpy(td_errors))

    def _recognised_slots(self, indices: Any) -> np.ndarray | None:
        """
        The flat slots of the latest sample when ``indices`` is its ``indices`` tensor, unmodified (same object,
        same version counter), and no transition was added since (``add()`` is what changes a slot's flags; ``reset()``
        forgets the sample): they are in range and each holds a transition (it was drawn, so its priority was
        positive), so ``update_priorities`` skips the checks and the read of the flags (the hot path of ``train()``).

        :param indices: What ``update_priorities`` was given
        :return: The slots, or None when the indices are not recognised
        """
        last = self._last_sample
        if last is None or last[1] is None or indices is not last[0] or last[3] != self._transitions_added:
            return None
        if getattr(indices, "_version", None) != last[1]:
            return None
        return last[2]

    def _apply_td_errors(self, indices: np.ndarray, td_errors: np.ndarray, sampled: bool = False) -> None:
        """
        Set the priorities from the TD errors (see ``update_priorities``).

        :param indices: Flat slots, one dimension
        :param td_errors: Their TD errors, any shape with as many entries
        :param sampled: The slots of the latest sample, known valid (see ``_recognised_slots``): not checked
        """
        tree = self._priorities
        assert tree is not None
        td_errors = np.asarray(td_errors).reshape(-1)
        if indices.shape != td_errors.shape:
            raise ValueError(f"update_priorities: {len(indices)} indices but {len(td_errors)} TD errors")
        if len(indices) == 0:
            return
        valid = None
        if not sampled:
            # (np.take refuses indices past the end, but not negative ones)
            if not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0:
                raise ValueError(
                    f"update_priorities: indices must be the samples' `indices`, integers in [0, {tree.capacity}), got "
                    f"{indices.dtype} values from {indices.min()}"
                )
            try:
                # 1 where the slot holds a transition, else 0: a slot that holds none (any more) stays unsampleable
                valid = np.take(self._flags.reshape(-1), indices) & VALID
            except IndexError as error:
                raise ValueError(f"update_priorities: indices must be in [0, {tree.capacity}), got {indices.max()}") from error
        assert self.prioritized is not None and self.alpha is not None
        priorities = priorities_from_td_errors(td_errors, self.prioritized, self.alpha, self.eps)
        if valid is not None:
            priorities *= valid
        largest = float(priorities.max())
        if not math.isfinite(largest):  # (NaN propagates to the maximum)
            raise ValueError(f"update_priorities: TD errors must be finite, got {td_errors[~np.isfinite(td_errors)][:5]}")
        tree.update(indices, priorities)
        tree.max_priority = max(tree.max_priority, largest)

    def current_beta(self) -> float:
        """:return: PER's importance-sampling exponent now (see ``beta_schedule_steps``)."""
        if self.prioritized != "per":
            raise ValueError(f"beta only applies with prioritized='per' (prioritized is {self.prioritized!r})")
        assert self.beta is not None and self.beta_final is not None
        if self.beta_schedule_steps is not None:
            steps = self.beta_schedule_steps
            done = 1.0 if steps == 0 else min(1.0, self._transitions_added / steps)
        else:
            done = 1.0 - self._progress_remaining
        return self.beta + done * (self.beta_final - self.beta)

    def set_progress(self, progress_remaining: float) -> None:
        """
        Tell the buffer how far training is, for PER's beta schedule when ``beta_schedule_steps`` is None (otherwise,
        and without PER, it has no effect).

        :param progress_remaining: SB3's ``_current_progress_remaining``: 1 at the start of ``learn()``, 0 at the end
            (clipped to ``[0, 1]``)
        """
        self._progress_remaining = min(1.0, max(0.0, float(progress_remaining)))

    def priorities(self) -> np.ndarray:
        """
        Not in SB3: the sampling priorities, ``(n_envs, buffer_size)`` float64, indexed like the ring slots (flat
        ``indices`` are ``env * buffer_size + slot``): ``(|delta| + eps) ** alpha`` (PER), ``max(|delta|, 1) ** alpha``
        (LAP), the running maximum for transitions not updated yet, 0 for slots that hold no transition. A copy.
        """
        if self._priorities is None:
            raise ValueError("priorities() needs a prioritised buffer (prioritized='per' or 'lap')")
        self._flush_priorities()
        return self._priorities.leaves.reshape(self.n_envs, self.buffer_size).copy()

    def reset_max_priority(self) -> None:
        """
        Set the running maximum priority (which new transitions get) to the largest priority in the buffer now, or
        back to 1 if it holds none, as TD7 does periodically (the running maximum otherwise never decreases).
        """
        if self._priorities is None:
            raise ValueError("reset_max_priority() needs a prioritised buffer (prioritized='per' or 'lap')")
        self._flush_priorities()
        largest = float(self._priorities.leaves.max())
        self._priorities.max_priority = largest if largest > 0 else 1.0

    @property
    def max_priority(self) -> float:
        """The running maximum priority, which new transitions get (1.0 before any update)."""
        if self._priorities is None:
            raise ValueError("max_priority needs a prioritised buffer (prioritized='per' or 'lap')")
        self._flush_priorities()
        return self._priorities.max_priority

    def __getstate__(self) -> dict[str, Any]:
        if self.__dict__.get("_priorities") is not None:
            # Pending writes and queued (device) TD errors are applied first: the pickle holds the tree and plain data
            self._flush_priorities()
        if self.__dict__.get("_last_sample") is not None:
            # (a sample's tensor is no state: a loaded buffer recognises none)
            return {**self.__dict__, "_last_sample": None}
        return self.__dict__

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Buffers pickled before prioritised replay existed are uniform ones
        self.__dict__.update({name: _copy_default(value) for name, value in _PRIORITY_STATE_DEFAULTS.items()})
        self.__dict__.update(state)


def _copy_default(value: Any) -> Any:
    """A default attribute value, with a fresh list for a list (no list shared between buffers)."""
    return list(value) if isinstance(value, list) else value


def _on_device(value: Any) -> bool:
    """Whether ``value`` is a tensor on an accelerator (read there only with a synchronisation)."""
    return isinstance(value, th.Tensor) and value.device.type != "cpu"


def _as_numpy(value: np.ndarray | th.Tensor | Any) -> np.ndarray:
    """A numpy array of the value (a host copy of a tensor on another device, a view of one on the CPU)."""
    if isinstance(value, th.Tensor):
        return value.detach().numpy() if value.device.type == "cpu" else value.detach().cpu().numpy()
    return np.asarray(value)


def _shape(space: spaces.Space) -> tuple[int, ...]:
    shape = get_obs_shape(space)
    assert isinstance(shape, tuple)  # a Dict space is split into its Box parts before this
    return shape
