"""
Action noise for exploration: Gaussian and Ornstein-Uhlenbeck processes with sigma schedules.

Both follow SB3's :class:`~stable_baselines3.common.noise.ActionNoise` interface (``noise()`` and ``reset()``), so
they plug into any off-policy algorithm, and they are vectorised natively: one independent state per environment,
``reset(indices=[i])`` resets environment ``i`` only (what SB3's ``VectorizedActionNoise`` does with deep copies).

All noise lives in the scaled action space ``[-1, 1]``: ``sigma=0.1`` on Pendulum (torque in ``[-2, 2]``) is 0.2 N.m.

Each process keeps its own ``numpy.random.Generator``, which is pickled with the model, so a reloaded checkpoint
continues the exact same noise sequence. :meth:`ScheduledActionNoise.seed` is called by ``DDPGPlus.set_random_seed``.
"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.noise import ActionNoise, VectorizedActionNoise

SCHEDULE_TYPES = ("constant", "linear", "exponential")
SCHEDULE_UNITS = ("step", "episode")


class SigmaSchedule:
    """
    How the standard deviation of a noise process changes during training.

    - ``constant``: ``sigma(n) = sigma_0``
    - ``linear``: from ``sigma_0`` to ``final`` over ``duration`` units, then ``final``
    - ``exponential``: ``sigma(n) = max(final, sigma_0 * decay ** n)`` (e.g. ``decay=0.99`` per episode, ``final=0.005``)

    ``n`` counts environment steps (summed over environments, like ``model.num_timesteps``) or finished episodes.

    :param schedule_type: ``"constant"``, ``"linear"`` or ``"exponential"``
    :param final: Value reached at the end of a linear schedule, or the floor of an exponential one
    :param duration: Number of units over which a linear schedule goes from ``sigma_0`` to ``final``
    :param decay: Multiplicative factor applied per unit by an exponential schedule, in ``(0, 1]``
    :param unit: ``"step"`` or ``"episode"``
    """

    def __init__(
        self,
        schedule_type: str = "constant",
        final: float | None = None,
        duration: int | None = None,
        decay: float | None = None,
        unit: str = "step",
    ) -> None:
        if schedule_type not in SCHEDULE_TYPES:
            raise ValueError(f"Unknown sigma schedule type {schedule_type!r}, expected one of {SCHEDULE_TYPES}")
        if unit not in SCHEDULE_UNITS:
            raise ValueError(f"Unknown sigma schedule unit {unit!r}, expected one of {SCHEDULE_UNITS}")
        if schedule_type == "linear":
            if final is None or duration is None:
                raise ValueError("A linear sigma schedule needs `final` and `duration`")
            if not duration > 0:
                raise ValueError(f"A linear sigma schedule needs `duration` > 0, got {duration}")
        if schedule_type == "exponential":
            if decay is None:
                raise ValueError("An exponential sigma schedule needs `decay`")
            if not 0.0 < decay <= 1.0:
                raise ValueError(f"An exponential sigma schedule needs 0 < `decay` <= 1, got {decay}")
        if final is not None and not (math.isfinite(final) and final >= 0):
            raise ValueError(f"A sigma schedule needs a finite `final` >= 0, got {final}")
        self.schedule_type = schedule_type
        self.final = final
        self.duration = duration
        self.decay = decay
        self.unit = unit

    def value(self, initial: np.ndarray, steps: int, episodes: int) -> np.ndarray:
        """
        :param initial: The initial standard deviation ``sigma_0``
        :param steps: Environment steps taken so far
        :param episodes: Episodes finished so far
        :return: The standard deviation to use now
        """
        n = steps if self.unit == "step" else episodes
        if self.schedule_type == "linear":
            fraction = min(1.0, n / self.duration)  # type: ignore[operator]
            return initial + fraction * (self.final - initial)  # type: ignore[operator]
        if self.schedule_type == "exponential":
            return np.maximum(self.final or 0.0, initial * self.decay**n)  # type: ignore[operator]
        return initial

    def to_dict(self) -> dict[str, Any]:
        """:return: The schedule as plain data (accepted by :func:`make_sigma_schedule`)."""
        data: dict[str, Any] = {"type": self.schedule_type, "unit": self.unit}
        for key in ("final", "duration", "decay"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def __repr__(self) -> str:
        return f"SigmaSchedule({self.to_dict()})"


def make_sigma_schedule(config: "SigmaSchedule | Mapping[str, Any] | None") -> SigmaSchedule | None:
    """
    Build a schedule from plain data, e.g. ``{"type": "exponential", "decay": 0.99, "final": 0.005, "unit": "episode"}``.

    :param config: A schedule, a mapping or ``None``
    :return: The schedule, or ``None`` for a constant sigma
    """
    if config is None or isinstance(config, SigmaSchedule):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"A sigma schedule must be a mapping, got {type(config).__name__}: {config!r}")
    allowed = {"type", "final", "duration", "decay", "unit"}
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"Unknown sigma schedule key(s) {sorted(unknown)}, expected a subset of {sorted(allowed)}")
    return SigmaSchedule(
        schedule_type=config.get("type", "constant"),
        final=config.get("final"),
        duration=config.get("duration"),
        decay=config.get("decay"),
        unit=config.get("unit", "step"),
    )


def _as_vector(name: str, value: Any, dim: int | None = None) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim > 1:
        raise ValueError(f"Noise `{name}` must be a scalar or a 1-D array, got shape {array.shape}")
    if dim is not None:
        if array.ndim == 0:
            array = np.full(dim, float(array))
        elif array.shape != (dim,):
            raise ValueError(f"Noise `{name}` has shape {array.shape}, expected ({dim},) for this action space")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Noise `{name}` must be finite, got {value!r}")
    return np.atleast_1d(array)


class ScheduledActionNoise(ActionNoise):
    """
    Base class: a vectorised noise process whose sigma follows a :class:`SigmaSchedule`.

    ``noise()`` returns an array of shape ``(action_dim,)`` when there is one environment and ``(n_envs, action_dim)``
    otherwise, as SB3's ``VectorizedActionNoise`` does.

    :param mean: Mean of the noise (scalar or one value per action dimension)
    :param sigma: Initial standard deviation (scalar or one value per action dimension), >= 0
    :param schedule: How sigma changes over training (constant if ``None``)
    :param n_envs: Number of environments (``DDPGPlus`` sets it at the start of ``learn``)
    :param dtype: Dtype of the returned noise
    """

    def __init__(
        self,
        mean: np.ndarray | float,
        sigma: np.ndarray | float,
        schedule: SigmaSchedule | Mapping[str, Any] | None = None,
        n_envs: int = 1,
        dtype: type = np.float32,
    ) -> None:
        super().__init__()
        self._sigma0 = _as_vector("sigma", sigma)
        self._mu = _as_vector("mean", mean, self._sigma0.shape[0] if np.ndim(mean) == 0 else None)
        if self._sigma0.shape[0] == 1 and self._mu.shape[0] > 1:
            self._sigma0 = np.full_like(self._mu, self._sigma0[0])
        if self._mu.shape != self._sigma0.shape:
            raise ValueError(f"Noise `mean` {self._mu.shape} and `sigma` {self._sigma0.shape} shapes differ")
        if np.any(self._sigma0 < 0):
            raise ValueError(f"Noise `sigma` must be >= 0, got {sigma!r}")
        self.schedule = make_sigma_schedule(schedule)
        self._dtype = dtype
        self.n_envs = 0
        self.num_steps = 0
        self.num_episodes = 0
        self._rng = np.random.default_rng()
        self.set_n_envs(n_envs)

    @property
    def action_dim(self) -> int:
        return self._mu.shape[0]

    @property
    def sigma(self) -> np.ndarray:
        """The current standard deviation (after the schedule)."""
        if self.schedule is None:
            return self._sigma0
        return self.schedule.value(self._sigma0, self.num_steps, self.num_episodes)

    @property
    def initial_sigma(self) -> np.ndarray:
        return self._sigma0

    def set_progress(self, num_steps: int, num_episodes: int) -> None:
        """
        Set the counters that drive the schedule. Used standalone, the process counts its own calls and resets;
        ``DDPGPlus`` sets them from ``num_timesteps`` and its episode count before each use.

        :param num_steps: Environment steps taken so far
        :param num_episodes: Episodes finished so far
        """
        self.num_steps = int(num_steps)
        self.num_episodes = int(num_episodes)

    def seed(self, seed: int | None) -> None:
        """
        Re-seed this process's own random generator.

        :param seed: The seed (``None`` for fresh entropy)
        """
        self._rng = np.random.default_rng(seed)

    def set_n_envs(self, n_envs: int) -> None:
        """
        Set the number of environments (resets every environment's state when it changes).

        :param n_envs: Number of environments
        """
        if not (isinstance(n_envs, int | np.integer) and n_envs >= 1):
            raise ValueError(f"`n_envs` must be a positive integer, got {n_envs!r}")
        if n_envs != self.n_envs:
            self.n_envs = int(n_envs)
            self._reset_state(np.arange(self.n_envs))

    def _reset_state(self, indices: np.ndarray) -> None:
        """Reset the internal state of the given environments (stateless by default)."""

    def _sample(self, sigma: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self) -> np.ndarray:
        noise: np.ndarray = self._sample(self.sigma).astype(self._dtype, copy=False)
        self.num_steps += self.n_envs
        return noise[0] if self.n_envs == 1 else noise

    def reset(self, indices: "list[int] | np.ndarray | None" = None) -> None:
        """
        Call at the end of an episode: resets the process of the given environments (all if ``None``) and counts
        their episodes for per-episode schedules.

        :param indices: Indices of the environments whose episode ended
        """
        idx = np.arange(self.n_envs) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        self.num_episodes += len(idx)
        self._reset_state(idx)

    def _schedule_repr(self) -> str:
        return "" if self.schedule is None else f", schedule={self.schedule.to_dict()}"


# Natively vectorised (one state per environment), so SB3's off-policy loop must not wrap it in deep copies (which
# would share one generator state): registered as a virtual subclass, which is what SB3 checks before wrapping.
VectorizedActionNoise.register(ScheduledActionNoise)


class GaussianActionNoise(ScheduledActionNoise):
    """
    Gaussian action noise: ``mean + sigma * N(0, 1)``, independent at every step.

    :param mean: Mean of the noise (scalar or per action dimension)
    :param sigma: Standard deviation of the noise (scalar or per action dimension)
    :param schedule: How sigma changes over training (constant if ``None``)
    :param n_envs: Number of environments
    :param dtype: Dtype of the returned noise
    """

    def _sample(self, sigma: np.ndarray) -> np.ndarray:
        return self._mu + sigma * self._rng.standard_normal((self.n_envs, self.action_dim))

    def __repr__(self) -> str:
        return f"GaussianActionNoise(mu={self._mu}, sigma={self._sigma0}{self._schedule_repr()})"


class OUActionNoise(ScheduledActionNoise):
    """
    Ornstein-Uhlenbeck process, one per environment, as in SB3 and the DDPG paper (named apart from SB3's
    ``OrnsteinUhlenbeckActionNoise``, a different class: this one is vectorised, scheduled and has its own generator;
    ``make_action_noise({"type": "ou", ...})`` builds it):

    ``x <- x + theta * (mean - x) * dt + sigma * sqrt(dt) * N(0, 1)``

    Its ``sigma`` is **not** the standard deviation of the noise. The lag-1 autocorrelation is ``1 - theta * dt``
    and the stationary standard deviation is ``sigma / sqrt(2 * theta - theta**2 * dt)`` (see
    :meth:`stationary_std`): with SB3's defaults (``theta=0.15``, ``dt=0.01``) that is ~1.83 sigma, reached only after
    ~1/(theta*dt) = 667 steps. Starting from zero, the std is 0.31 sigma after 10 steps and 1.23 sigma after 200 (one
    Pendulum episode). ``initial_noise="stationary"`` starts each episode from the stationary distribution instead.

    :param mean: Long-run mean of the process (scalar or per action dimension)
    :param sigma: Scale of the increments (scalar or per action dimension)
    :param theta: Rate of mean reversion, > 0
    :param dt: Time step, > 0, with ``theta * dt < 2`` so the process is stable
    :param initial_noise: State after a reset: ``None`` (the mean), ``"stationary"`` (a draw from the
        stationary distribution) or an array
    :param schedule: How sigma changes over training (constant if ``None``)
    :param n_envs: Number of environments
    :param dtype: Dtype of the returned noise
    """

    def __init__(
        self,
        mean: np.ndarray | float,
        sigma: np.ndarray | float,
        theta: float = 0.15,
        dt: float = 1e-2,
        initial_noise: "np.ndarray | str | None" = None,
        schedule: SigmaSchedule | Mapping[str, Any] | None = None,
        n_envs: int = 1,
        dtype: type = np.float32,
    ) -> None:
        if not (math.isfinite(theta) and theta > 0):
            raise ValueError(f"OU `theta` must be > 0, got {theta}")
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"OU `dt` must be > 0, got {dt}")
        if not theta * dt < 2:
            raise ValueError(f"OU needs `theta * dt` < 2 to be stable, got theta={theta}, dt={dt}")
        if isinstance(initial_noise, str) and initial_noise != "stationary":
            raise ValueError(f"OU `initial_noise` must be None, 'stationary' or an array, got {initial_noise!r}")
        self._theta = float(theta)
        self._dt = float(dt)
        self.initial_noise = initial_noise
        self.noise_prev = np.zeros((0, 0))
        super().__init__(mean, sigma, schedule=schedule, n_envs=n_envs, dtype=dtype)
        if initial_noise is not None and not isinstance(initial_noise, str):
            self.initial_noise = _as_vector("initial_noise", initial_noise, self.action_dim)

    @property
    def theta(self) -> float:
        return self._theta

    @property
    def dt(self) -> float:
        return self._dt

    def stationary_std(self) -> np.ndarray:
        """:return: The standard deviation of the stationary distribution, for the current sigma."""
        return self.sigma / math.sqrt(2 * self._theta - self._theta**2 * self._dt)

    def _reset_state(self, indices: np.ndarray) -> None:
        if self.noise_prev.shape != (self.n_envs, self.action_dim):
            self.noise_prev = np.tile(self._mu, (self.n_envs, 1))
        if self.initial_noise is None:
            self.noise_prev[indices] = self._mu
        elif isinstance(self.initial_noise, str):
            std = self.stationary_std()
            self.noise_prev[indices] = self._mu + std * self._rng.standard_normal((len(indices), self.action_dim))
        else:
            self.noise_prev[indices] = self.initial_noise

    def _sample(self, sigma: np.ndarray) -> np.ndarray:
        self.noise_prev = (
            self.noise_prev
            + self._theta * (self._mu - self.noise_prev) * self._dt
            + sigma * math.sqrt(self._dt) * self._rng.standard_normal(self.noise_prev.shape)
        )
        return self.noise_prev.copy()

    def __repr__(self) -> str:
        return f"OUActionNoise(mu={self._mu}, sigma={self._sigma0}, theta={self._theta}, dt={self._dt}{self._schedule_repr()})"


NOISE_TYPES = {
    "normal": GaussianActionNoise,
    "gaussian": GaussianActionNoise,
    "ornstein-uhlenbeck": OUActionNoise,
    "ou": OUActionNoise,
    "none": None,
}
_NOISE_KEYS = {"type", "mean", "sigma", "theta", "dt", "initial_noise", "schedule"}


def make_action_noise(config: "ActionNoise | Mapping[str, Any] | None", action_dim: int) -> ActionNoise | None:
    """
    Build action noise from plain data (for YAML files and command lines; never ``eval()``), e.g.
    ``{"type": "ornstein-uhlenbeck", "sigma": 0.5, "theta": 0.15, "dt": 0.01}`` or
    ``{"type": "normal", "sigma": 0.3, "schedule": {"type": "exponential", "decay": 0.99, "final": 0.005,
    "unit": "episode"}}``. ``{"type": "none"}`` means no noise at all.

    :param config: An existing ``ActionNoise`` (returned unchanged), a mapping, or ``None``
    :param action_dim: Dimension of the action space
    :return: The noise object, or ``None``
    """
    if config is None or isinstance(config, ActionNoise):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"`action_noise` must be an ActionNoise, a mapping or None, got {type(config).__name__}")
    unknown = set(config) - _NOISE_KEYS
    if unknown:
        raise ValueError(f"Unknown action noise key(s) {sorted(unknown)}, expected a subset of {sorted(_NOISE_KEYS)}")
    noise_type = config.get("type")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"Unknown action noise type {noise_type!r}, expected one of {sorted(NOISE_TYPES)}")
    noise_class = NOISE_TYPES[noise_type]
    if noise_class is None:
        extra = set(config) - {"type"}
        if extra:
            raise ValueError(f"Action noise type 'none' takes no other key, got {sorted(extra)}")
        return None
    if "sigma" not in config:
        raise ValueError(f"Action noise {noise_type!r} needs `sigma`")
    mean = _as_vector("mean", config.get("mean", 0.0), action_dim)
    sigma = _as_vector("sigma", config["sigma"], action_dim)
    kwargs: dict[str, Any] = {"schedule": config.get("schedule")}
    if noise_class is OUActionNoise:
        kwargs.update(theta=float(config.get("theta", 0.15)), dt=float(config.get("dt", 1e-2)))
        kwargs["initial_noise"] = config.get("initial_noise")
    else:
        for key in ("theta", "dt", "initial_noise"):
            if key in config:
                raise ValueError(f"Action noise key `{key}` only applies to 'ornstein-uhlenbeck' noise")
    return noise_class(mean, sigma, **kwargs)


def current_sigma(action_noise: ActionNoise | None) -> float | None:
    """
    :param action_noise: Any action noise
    :return: The mean of its current sigma vector when it can be read (for logging), else ``None``
    """
    base = getattr(action_noise, "base_noise", action_noise)  # SB3's VectorizedActionNoise wraps the real one
    sigma = getattr(base, "sigma", None)
    if sigma is None:
        sigma = getattr(base, "_sigma", None)
    return None if sigma is None else float(np.mean(sigma))
