"""
Prioritised replay: the priority structure and the priority rules of PER and LAP.

- **PER** (Schaul et al. 2016, "Prioritized Experience Replay", arXiv 1511.05952, proportional variant): a transition
  is sampled with probability ``P(i) = p_i^alpha / sum_j p_j^alpha``, ``p_i = |delta_i| + eps``, and its update is
  weighted by ``w_i = (N P(i))^-beta / max_j w_j``, the maximum taken over every transition in the buffer as in the
  paper (not over the batch), which makes ``w_i = (p_i^alpha / min_j p_j^alpha)^-beta``.
- **LAP** (Fujimoto, Meger, Precup 2020, "An Equivalence between Loss Functions and Non-Uniform Sampling in Experience
  Replay", arXiv 2007.06049; used by TD7): ``P(i) = max(|delta_i|^alpha, 1) / sum_j max(|delta_j|^alpha, 1)``, no
  importance weights; the critic loss becomes the Huber loss with ``kappa = 1`` (the algorithm's part).

In both, a new transition gets the running maximum of the priorities set so far (1 before any), so that it is
replayed at least once soon.

:class:`PriorityTree` holds the sampling priorities (``p^alpha``, 0 for slots that cannot be sampled) of every slot of
the replay buffer in one sum-tree with 16 children per node. A batch is sampled and updated level by level with numpy,
never with a Python loop per element: a batch of 256 costs a few dozen numpy calls whatever the buffer's size. Where
the machine has a C compiler, the same walk and updates run as C loops (:mod:`sb3_ddpg_plus.native_tree`), which
removes the fixed cost of those calls; the numpy code is the fallback and gives the same samples.
"""

import ctypes
import math
from typing import Any

import numpy as np
import torch as th

from sb3_ddpg_plus import native_tree

PRIORITIZED_KINDS = ("per", "lap")
PRIORITIZED_DEFAULTS: dict[str, dict[str, Any]] = {
    # Schaul et al. 2016's choice for the proportional variant; eps as in OpenAI Baselines
    "per": {"alpha": 0.6, "beta": 0.4, "beta_final": 1.0, "beta_schedule_steps": None, "eps": 1e-6},
    # Fujimoto et al. 2020 (LAP) and TD7 (Fujimoto et al. 2023)
    "lap": {"alpha": 0.4},
}


class PriorityTree:
    """
    Sum-tree over ``capacity`` non-negative priorities: ``branching`` children per node, one float64 array per level
    (the leaves first), up to a top level of at most ``top_size`` nodes, whose cumulative sum is taken once per
    sample after a change (one ``np.searchsorted`` replaces the upper levels). That cumulative sum covers only the
    top nodes up to the last one that any update has reached (every later node is 0), so a buffer that is far from
    full, as a replay buffer is for most of a run, sums only the part it uses. With ``track_min``, a min-tree over
    the positive priorities (from the first level up: a leaf group's minimum is read from the leaves) gives the
    smallest positive priority, which PER's importance weights need.

    A batch is sampled and updated with a handful of numpy calls per level, all samples together, never with a
    Python loop per element; with the defaults, a million leaves are grouped into 62,500 nodes, under a top of 3,907.
    (Measured on batches of 256: the work is a few passes over ``batch * branching`` numbers per level plus a fixed
    cost per numpy call, so 16 children per node and two levels below the top beat both wider nodes, whose rows
    cost more to scan, and narrower ones, which need more levels or a larger top to sum after every change.)

    Precision: the leaves hold the priorities exactly (float64), and every inner node is **recomputed** as the sum of
    its children whenever one of them changes, never incremented by a difference. So no rounding error accumulates,
    whatever the number of updates: the error of a cumulative sum is that of one float64 summation of the leaves
    (at most about ``(depth * branching + top_size) * 2**-53`` of the total, under 1e-12 with the defaults, where
    float32 would give 1e-4), and the same leaves always give the same tree, bit for bit (which is how it is pickled:
    the leaves only). Sampling compares the draw with sequential cumulative sums, which never decrease, so the child
    chosen always has positive mass; where rounding (a few ulps) puts a draw at or past the end of a node's children,
    it takes the last child with positive mass. So a leaf of priority 0 is never drawn.

    :param capacity: Number of leaves
    :param branching: Children per node below the top level, a power of 2: larger means fewer levels (fewer numpy
        calls) but more work per level
    :param top_size: Largest number of nodes of the top level
    :param track_min: Keep a min-tree too (for PER's importance weights)
    :param native: Walk and update the tree with the compiled C kernels of :mod:`sb3_ddpg_plus.native_tree`: None
        (default) when they are available, else with numpy; True requires them (an error says why they are not
        available); False always uses numpy. Both find the same leaves on the same tree; their inner sums may differ
        in the last bits (see that module).
    """

    # Largest batch whose scratch arrays ``find`` keeps between calls (a training batch; larger ones allocate their own)
    _SCRATCH_LIMIT = 4096

    def __init__(
        self, capacity: int, branching: int = 16, top_size: int = 4096, track_min: bool = False, native: bool | None = None
    ):
        for name, value, low in (("capacity", capacity, 1), ("branching", branching, 2), ("top_size", top_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
        if branching & (branching - 1):
            raise ValueError(f"`branching` must be a power of 2, got {branching!r}")
        self.capacity = int(capacity)
        self.branching = int(branching)
        self.top_size = int(top_size)
        self.track_min = bool(track_min)
        if native is not None and not isinstance(native, bool):
            raise TypeError(f"`native` must be None, True or False, got {native!r}")
        self.native = native
        # Running maximum of the priorities ever set (not lowered when that transition's priority drops), as in
        # Schaul et al.'s Algorithm 1, OpenAI Baselines and the LAP authors' code: new transitions get it
        self.max_priority = 1.0
        self._allocate()

    def _allocate(self) -> None:
        self._shift = self.branching.bit_length() - 1  # (node >> shift is its parent: cheaper than a division)
        # Number of nodes per level, the leaves first, until the top level
        counts = [self.capacity]
        while counts[-1] > self.top_size:
            counts.append(math.ceil(counts[-1] / self.branching))
        self.depth = len(counts) - 1  # levels walked down below the top level
        # Every level but the top is padded to whole groups of `branching` children (padding leaves stay 0)
        sizes = [counts[level + 1] * self.branching for level in range(self.depth)] + [counts[-1]]
        self._sums = [np.zeros(size, dtype=np.float64) for size in sizes]
        # The same arrays, one row per group of children (views)
        self._groups = [level.reshape(-1, self.branching) for level in self._sums[:-1]]
        # The min-tree has no leaf level (it would repeat the leaves, with 0 read as +inf); its padding stays +inf
        self._mins: list[np.ndarray] | None = None
        self._min_groups: list[np.ndarray] = []
        if self.track_min:
            self._mins = [np.full(size, np.inf) for size in sizes[1:]]
            self._min_groups = [level.reshape(-1, self.branching) for level in self._mins[:-1]]
        # Cumulative sums of the top level after a leading 0 (cumulative[i] is the mass before node i), and the same
        # without it (ends[i] is the mass up to the end of node i: a view). Only the first `_extent` top nodes can be
        # positive (every node from `_extent` on is 0): the cumulative sums are taken over those only, so a buffer
        # that is far from full pays for the part it uses.
        self._cumulative = np.zeros(counts[-1] + 1)
        self._ends = self._cumulative[1:]
        self._top_shift = self._shift * self.depth  # (leaf >> _top_shift is its top node)
        self._extent = 0
        self._set_extent_views(0)
        self._total = 0.0
        self._below_total = 0.0
        self._top_stale = True
        # find()'s work arrays for the last batch size (see _scratch_for)
        self._scratch: tuple[np.ndarray, th.Tensor, np.ndarray] | None = None
        self._kernels = self._load_kernels()
        if self._kernels is not None:
            # The arrays' addresses, passed to the C kernels (the arrays live as long as the tree)
            self._sum_pointers = (ctypes.c_void_p * len(self._sums))(*[level.ctypes.data for level in self._sums])
            self._min_pointers = (
                (ctypes.c_void_p * len(self._mins))(*[level.ctypes.data for level in self._mins]) if self._mins else None
            )
            self._n_parents = np.array([len(groups) for groups in self._groups], dtype=np.int64)
            self._n_parents_address = self._n_parents.ctypes.data
            self._cumulative_address = self._cumulative.ctypes.data
            self._ends_address = self._ends.ctypes.data
            # Staging arrays for the kernels' inputs and outputs, made once with their addresses: reading an
            # array's address (`ndarray.ctypes.data`) costs about a microsecond, copying 256 numbers a fraction of it
            self._staging = _Staging(self._SCRATCH_LIMIT)

    def _load_kernels(self) -> Any:
        if self.native is False:
            return None
        kernels = native_tree.load_kernels()
        if kernels is None and self.native:
            reason = native_tree.unavailable_reason()
            raise RuntimeError(f"PriorityTree(native=True): the C kernels are not available: {reason}")
        return kernels

    @property
    def backend(self) -> str:
        """``"native"`` when the tree is walked and updated by the C kernels, else ``"numpy"``."""
        return "native" if self._kernels is not None else "numpy"

    def _set_extent_views(self, extent: int) -> None:
        """Views of the first ``extent`` top nodes and of their cumulative sums (numpy for find, torch for cumsum)."""
        self._views_extent = extent
        self._ends_used = self._ends[:extent]
        self._top_used_tensor = th.from_numpy(self._sums[-1][:extent])
        self._ends_used_tensor = th.from_numpy(self._ends_used)

    @property
    def leaves(self) -> np.ndarray:
        """The priorities (a read-only view), ``capacity`` entries."""
        view = self._sums[0][: self.capacity]
        view.flags.writeable = False
        return view

    def _refresh_top(self) -> None:
        """Recompute the cumulative sums of the top level's first ``_extent`` nodes (once after each change)."""
        extent = self._extent
        if extent != self._views_extent:
            self._set_extent_views(extent)
        if extent:
            # (torch's float64 cumsum: the same sequential sums as numpy's, several times faster; a prefix of the
            # top level gives the same sums as the whole level would, bit for bit, the later nodes being 0)
            th.cumsum(self._top_used_tensor, 0, out=self._ends_used_tensor)
        self._total = float(self._cumulative[extent])
        # find() walks down with masses clamped to the largest float below the total: the first top node whose end
        # exceeds such a mass ends at the total, so it is the last one with positive mass (for a mass at the total)
        self._below_total = math.nextafter(self._total, 0.0)
        self._top_stale = False

    @property
    def total(self) -> float:
        """Sum of all priorities (the total that ``find`` divides)."""
        if self._top_stale:
            self._refresh_top()
        return self._total

    @property
    def min_positive(self) -> float:
        """Smallest positive priority (``inf`` when there is none); needs ``track_min``."""
        if self._mins is None:
            raise RuntimeError("This PriorityTree does not track its minimum (track_min=False)")
        if self.depth == 0:  # (no level above the leaves)
            leaves = self._sums[0]
            return float(leaves[leaves > 0].min(initial=np.inf))
        # (the top nodes from `_extent` on have no positive priority below them: their minimum is +inf)
        return float(self._mins[-1][: max(self._extent, 1)].min())

    def nbytes(self) -> int:
        """:return: Bytes used by the tree(s)."""
        return sum(level.nbytes for level in self._sums + (self._mins or []))

    def clear(self) -> None:
        """Set every priority to 0 and the running maximum back to 1."""
        for level in self._sums:
            level[:] = 0.0
        for min_level in self._mins or []:
            min_level[:] = np.inf
        self.max_priority = 1.0
        self._extent = 0
        self._top_stale = True

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """
        Set the priorities of the given leaves and recompute their ancestors, level by level. The running maximum
        is not changed here (the caller decides which priorities count towards it).

        :param indices: Leaf indices (int); an index given more than once keeps its last priority, as a loop would
        :param priorities: Their new priorities (finite, >= 0; 0 means "never sample")
        """
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return
        if self._kernels is not None:
            self._update_native(indices, priorities)
            return
        self._top_stale = True
        self._sums[0][indices] = priorities
        top = int(indices.max()) >> self._top_shift
        if top >= self._extent:
            self._extent = top + 1
        nodes = indices
        for level in range(self.depth):
            nodes = nodes >> self._shift
            if len(nodes) * 2 >= len(self._groups[level]):
                # Many changes (many transitions added between two samples): recompute the rest of the tree, cheaper
                # than gathering rows many times. The same per-row reductions, so the same bits.
                for upper in range(level, self.depth):
                    self._recompute_level(upper)
                return
            # Recompute the parents from all their children (duplicated parents compute and write the same value).
            # (torch reduces the rows of a [256, 16] array faster than numpy, notably for the minimum; the same row
            # reductions as _recompute_level's)
            children = self._groups[level].take(nodes, axis=0)
            self._sums[level + 1][nodes] = th.from_numpy(children).sum(1).numpy()
            if self._mins is not None:
                if level == 0:
                    # A leaf group's minimum positive priority, from the leaves (0: not sampleable, read as +inf;
                    # in place: `children` is take()'s copy, and its sums are taken)
                    np.putmask(children, children == 0.0, math.inf)
                else:
                    children = self._min_groups[level - 1].take(nodes, axis=0)
                self._mins[level][nodes] = th.from_numpy(children).amin(1).numpy()

    def _update_native(self, indices: np.ndarray, priorities: Any) -> None:
        """``update`` with the C kernels (the same values at the leaves, minima and extent; see the module docstring)."""
        indices = indices.reshape(-1)
        n = len(indices)
        # (copied into arrays whose addresses are known, the tree's own unless the batch is larger; a scalar priority
        # is broadcast, as numpy's assignment does, and one of another length is refused)
        staging = self._staging if n <= self._staging.size else _Staging(n)
        staging.indices[:n] = indices
        staging.priorities[:n] = priorities
        largest = self._kernels.tree_update(
            self._sum_pointers,
            self._min_pointers,
            self.depth,
            self._shift,
            self.capacity,
            self._n_parents_address,
            staging.indices_address,
            staging.priorities_address,
            n,
        )
        if largest < 0:
            raise IndexError(
                f"PriorityTree.update: indices must be in [0, {self.capacity}), got {indices.min()}..{indices.max()}"
            )
        self._top_stale = True
        top = largest >> self._top_shift
        if top >= self._extent:
            self._extent = top + 1

    def rebuild(self) -> None:
        """Recompute every inner node from the leaves."""
        for level in range(self.depth):
            self._recompute_level(level)
        positive = np.flatnonzero(self._sums[-1])
        self._extent = int(positive[-1]) + 1 if len(positive) else 0
        self._top_stale = True

    def _recompute_level(self, level: int) -> None:
        """Recompute every node of level ``level + 1`` from its children."""
        self._top_stale = True
        children = self._groups[level]
        n_parents = len(children)
        if self._kernels is not None:
            self._kernels.tree_recompute_level(self._sum_pointers, self._min_pointers, level, self._shift, n_parents)
            return
        self._sums[level + 1][:n_parents] = th.from_numpy(children).sum(1).numpy()
        if self._mins is not None:
            if level == 0:
                children = np.where(children > 0, children, math.inf)
            else:
                children = self._min_groups[level - 1]
            self._mins[level][:n_parents] = th.from_numpy(children).amin(1).numpy()

    def _scratch_for(self, batch: int) -> tuple[np.ndarray, th.Tensor, np.ndarray]:
        """
        ``find``'s work arrays for a batch: ``[batch, branching + 1]`` cumulative sums of children after a leading
        0 (column 0 is never written), a torch view of its other columns, and the flat index of each row's first
        entry in it. Kept for the next call of the same size.
        """
        if self._scratch is not None and len(self._scratch[0]) == batch:
            return self._scratch
        k = self.branching
        padded = np.zeros((batch, k + 1))
        scratch = (padded, th.from_numpy(padded)[:, 1:], np.arange(0, batch * (k + 1), k + 1))
        if batch <= self._SCRATCH_LIMIT:
            self._scratch = scratch
        return scratch

    def find(self, mass: np.ndarray, values: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """
        Inverse of the cumulative sum: for each ``mass`` in ``[0, total)``, the leaf ``i`` with
        ``sum(leaves[:i]) <= mass < sum(leaves[:i + 1])``, found by walking down with all masses together, one level
        at a time. A uniform ``mass`` draws leaf ``i`` with probability ``leaves[i] / total``.

        :param mass: Positions in ``[0, total)``, float64, one dimension (a mass at or past the total counts as the
            largest float below it)
        :param values: Also return the leaves' priorities (else None in their place)
        :return: Leaf indices (int64) and their priorities (float64, a copy; None without ``values``), in the order
            of the masses, never a leaf of priority 0
        :raises ValueError: When every priority is 0
        """
        if self._top_stale:
            self._refresh_top()
        if not self._total > 0:
            raise ValueError("PriorityTree.find: every priority is 0")
        mass = np.asarray(mass, dtype=np.float64)
        if self._kernels is not None:
            return self._find_native(mass, values)
        # Each mass walks down on its own, so the order they walk in changes nothing but the speed: in increasing
        # order, each binary search of the top level starts where the previous one ended, and rows are gathered in
        # memory order. The results are put back in the order of the masses.
        order = mass.argsort()
        remaining = mass.take(order)
        np.minimum(remaining, self._below_total, out=remaining)
        # The top node whose range holds the mass (the mass is below the total: the node exists and has positive mass;
        # the nodes from `_extent` on are 0, and their cumulative sums are not kept)
        nodes = self._ends_used.searchsorted(remaining, side="right")
        # (>= 0: the mass before the chosen node is <= the mass)
        remaining -= self._cumulative.take(nodes)
        if self.depth:
            padded, within, row_starts = self._scratch_for(len(nodes))
            cumulative, last = padded[:, 1:], padded[:, -1]
            for level in range(self.depth - 1, -1, -1):
                # (ndarray methods rather than numpy's functions, which only forward to them: a microsecond each)
                children = self._groups[level].take(nodes, axis=0)
                # Sequential float64 sums (torch's cumsum along rows is several times faster than numpy's): they
                # never decrease along a row, so the first one past the mass is that of a child with positive mass
                th.cumsum(th.from_numpy(children), 1, out=within)
                # Where rounding puts the mass at or past the children's total, take the largest float below it: the
                # first child whose cumulative sum exceeds the mass then exists, and is the last with positive mass
                np.minimum(remaining, np.nextafter(last, 0.0), out=remaining)
                chosen = (cumulative > remaining[:, None]).argmax(axis=1)
                nodes <<= self._shift
                nodes += chosen
                if level:
                    # The mass left inside the chosen child: minus the cumulative sum before it, read after the
                    # leading 0 (<= the mass, so >= 0). (Not needed below the last level.)
                    chosen += row_starts
                    remaining -= padded.take(chosen)
        found = np.empty_like(nodes)
        found[order] = nodes
        # (the leaves just read are in the cache)
        return found, (self._sums[0].take(found) if values else None)

    def _find_native(self, mass: np.ndarray, values: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``find`` with the C kernels: the same walk, the same sequential sums, so the same leaves."""
        mass = mass.reshape(-1)
        n = len(mass)
        # The kernel overwrites the masses: it works on a staging copy (the tree's own unless the batch is larger),
        # and its outputs are copied out (the caller keeps them)
        staging = self._staging if n <= self._staging.size else _Staging(n)
        staging.masses[:n] = mass
        self._kernels.tree_find(
            self._sum_pointers,
            self.depth,
            self._shift,
            self._ends_address,
            self._cumulative_address,
            self._extent,
            self._below_total,
            staging.masses_address,
            n,
            staging.found_address,
            staging.values_address if values else None,
        )
        return staging.found[:n].copy(), (staging.values[:n].copy() if values else None)

    def __getstate__(self) -> dict[str, Any]:
        # Only the leaves are saved: the inner nodes are rebuilt on load, bit for bit the same (see the class docstring)
        state = {name: value for name, value in self.__dict__.items() if not name.startswith("_")}
        state["leaves"] = self._sums[0][: self.capacity].copy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.setdefault("native", None)  # (trees saved before the C kernels existed)
        leaves = state.pop("leaves")
        self.__dict__.update(state)
        self._allocate()
        self._sums[0][: self.capacity] = leaves
        self.rebuild()


class _Staging:
    """Arrays the C kernels read and write, with their addresses (taken once): ``size`` masses, leaf indices and
    priorities."""

    def __init__(self, size: int):
        self.size = size
        self.masses = np.empty(size)
        self.found = np.empty(size, dtype=np.int64)
        self.values = np.empty(size)
        self.indices = np.empty(size, dtype=np.int64)
        self.priorities = np.empty(size)
        self.masses_address = self.masses.ctypes.data
        self.found_address = self.found.ctypes.data
        self.values_address = self.values.ctypes.data
        self.indices_address = self.indices.ctypes.data
        self.priorities_address = self.priorities.ctypes.data


def priorities_from_td_errors(td_errors: np.ndarray, kind: str, alpha: float, eps: float | None = None) -> np.ndarray:
    """
    The sampling priority (the quantity sampling is proportional to) of transitions with the given TD errors.

    :param td_errors: TD errors (their absolute value is used), any real dtype: computed in float64
    :param kind: ``"per"``: ``(|delta| + eps) ** alpha``; ``"lap"``: ``max(|delta|, 1) ** alpha``, which is
        ``max(|delta| ** alpha, 1)``
    :param alpha: Prioritisation exponent
    :param eps: PER's offset, so that no transition gets priority 0
    :return: Priorities, float64 (a new array)
    """
    # One float64 array, made by the first ufunc (which converts the input) and then updated in place: the same
    # values as converting first, with fewer allocations
    magnitude = np.abs(td_errors, dtype=np.float64)
    if kind == "per":
        assert eps is not None
        magnitude += eps
    else:
        np.maximum(magnitude, 1.0, out=magnitude)
    return np.power(magnitude, alpha, out=magnitude)


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a number, got {value!r} ({type(value).__name__})")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1], got {value!r}")
    return float(value)


def _check_steps(steps: Any) -> int | None:
    """``beta_schedule_steps``: None or a count (an integral float such as YAML's ``1.0e5`` is accepted)."""
    if steps is None:
        return None
    integral_float = isinstance(steps, float | np.floating) and float(steps).is_integer()
    if isinstance(steps, bool) or not (isinstance(steps, int | np.integer) or integral_float):
        raise TypeError(f"`beta_schedule_steps` must be None or an integer, got {steps!r} ({type(steps).__name__})")
    if steps < 0:
        raise ValueError(f"`beta_schedule_steps` must be >= 0, got {steps!r}")
    return int(steps)


def check_prioritized_kwargs(
    prioritized: Any,
    alpha: Any = None,
    beta: Any = None,
    beta_final: Any = None,
    beta_schedule_steps: Any = None,
    eps: Any = None,
) -> dict[str, Any]:
    """
    Validate the replay buffer's prioritisation arguments (plain data, as written in YAML) and fill in the defaults.

    :return: ``prioritized`` (None, ``"per"`` or ``"lap"``) and, for PER and LAP, the resolved parameters
    :raises TypeError: For values of the wrong type
    :raises ValueError: For values out of range, or given where they are not used
    """
    given = {
        name: value
        for name, value in dict(
            alpha=alpha, beta=beta, beta_final=beta_final, beta_schedule_steps=beta_schedule_steps, eps=eps
        ).items()
        if value is not None
    }
    if prioritized is not None and not isinstance(prioritized, str):
        raise TypeError(f"`prioritized` must be None, 'per' or 'lap', got {prioritized!r} ({type(prioritized).__name__})")
    kind = None if prioritized is None or prioritized.lower() == "uniform" else prioritized.lower()
    if kind is not None and kind not in PRIORITIZED_KINDS:
        raise ValueError(f"`prioritized` must be None, 'per' or 'lap', got {prioritized!r}")
    if kind is None:
        if given:
            raise ValueError(f"{sorted(given)} only apply with prioritized='per' or 'lap' (prioritized is {prioritized!r})")
        return {"prioritized": None}
    unused = sorted(set(given) - set(PRIORITIZED_DEFAULTS[kind]))
    if unused:
        raise ValueError(
            f"{unused} are not used with prioritized='lap' (LAP has no importance weights, and its priorities are "
            "max(|delta|^alpha, 1), without eps)"
        )
    resolved = {**PRIORITIZED_DEFAULTS[kind], **given}
    resolved["alpha"] = _check_fraction("alpha", resolved["alpha"])
    if kind == "per":
        resolved["beta"] = _check_fraction("beta", resolved["beta"])
        resolved["beta_final"] = _check_fraction("beta_final", resolved["beta_final"])
        eps = resolved["eps"]
        if isinstance(eps, bool) or not isinstance(eps, int | float | np.integer | np.floating):
            raise TypeError(f"`eps` must be a number, got {eps!r} ({type(eps).__name__})")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"`eps` must be a finite number > 0, got {eps!r}")
        resolved["eps"] = float(eps)
        resolved["beta_schedule_steps"] = _check_steps(resolved["beta_schedule_steps"])
    return {"prioritized": kind, **resolved}
