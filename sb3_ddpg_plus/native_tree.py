"""
C kernels for the priority tree's walk (``find``) and its updates, compiled once per machine at first use.

Why: with numpy, sampling a batch of 256 from :class:`~sb3_ddpg_plus.priorities.PriorityTree` and writing its
priorities back costs a few dozen numpy calls per level, whose fixed cost (about a microsecond each) is most of the
time: about 20% of a [64, 64] DDPG update on one core (``benchmarks/results/speed.md``). The same work in a C loop is
a few microseconds.

The walk's comparisons (which top node, which child) are random, so the kernels count and select instead of
branching: with branches, mispredictions made a walk of 256 fresh masses through a tree of 100k leaves about twice as
slow on the machine this was written on. The outputs and inputs go through staging arrays of the tree whose
addresses are taken once (:class:`~sb3_ddpg_plus.priorities.PriorityTree`).

How: the C source below is compiled with the machine's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) into a
shared library in a per-user cache folder (``$SB3_DDPG_PLUS_CACHE``, else ``$XDG_CACHE_HOME/sb3_ddpg_plus`` or
``~/.cache/sb3_ddpg_plus``), named after a hash of the source and the flags, and loaded with :mod:`ctypes`
(:mod:`sb3_ddpg_plus.native_build`). Nothing
happens at import time. When there is no compiler, the compilation fails, or ``SB3_DDPG_PLUS_NATIVE=0`` is set,
:func:`load_kernels` returns None, :func:`unavailable_reason` says why, and the tree keeps its numpy code: the same
walk, the same results (tested), only slower.

Arithmetic: compiled without ``-ffast-math`` and with ``-ffp-contract=off`` (no fused multiply-adds), so every sum is
the IEEE float64 sum of the order written below. ``find`` takes the same sequential cumulative sums as the numpy walk,
so on the same tree both return the same leaves, bit for bit. A parent's sum is taken here in a fixed order of its
own (four interleaved partial sums), not in torch's: a tree built by these kernels and one built with numpy may differ
in the last bits of their inner sums (1e-16 relative), never in their leaves or minima. Each tree uses one set of
kernels for every update and for its rebuild after loading, so the same leaves always give the same tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator

from sb3_ddpg_plus import native_build

#: Set to ``0`` to never compile or load the kernels (the numpy walk is used)
ENV_SWITCH = native_build.ENV_SWITCH
#: Folder for the compiled library (default: ``$XDG_CACHE_HOME/sb3_ddpg_plus`` or ``~/.cache/sb3_ddpg_plus``)
ENV_CACHE = native_build.ENV_CACHE
# IEEE arithmetic in the order written: no -ffast-math, no contraction of a*b+c into an FMA
_FLAGS = ["-O2", "-std=c99", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math"]

_SOURCE = r"""
#include <math.h>
#include <stdint.h>

/* A parent's sum of its k children: four interleaved partial sums, combined as (s0 + s1) + (s2 + s3) (k a power
   of 2; for k = 2 the two children). The same function for every update and rebuild. */
static double row_sum(const double *row, int64_t k) {
    if (k < 4) {
        double s = row[0];
        for (int64_t j = 1; j < k; j++) s += row[j];
        return s;
    }
    double s0 = row[0], s1 = row[1], s2 = row[2], s3 = row[3];
    for (int64_t j = 4; j < k; j += 4) {
        s0 += row[j];
        s1 += row[j + 1];
        s2 += row[j + 2];
        s3 += row[j + 3];
    }
    return (s0 + s1) + (s2 + s3);
}

/* Smallest positive leaf of a row (0 means "not sampleable"; +inf when none), with selects rather than branches
   (the comparisons are random: a branch would be mispredicted half the time). */
static double row_min_positive(const double *row, int64_t k) {
    double m = INFINITY;
    for (int64_t j = 0; j < k; j++) {
        double v = row[j] > 0.0 ? row[j] : INFINITY;
        m = v < m ? v : m;
    }
    return m;
}

static double row_min(const double *row, int64_t k) {
    double m = row[0];
    for (int64_t j = 1; j < k; j++) m = row[j] < m ? row[j] : m;
    return m;
}

/* Recompute node `node` of level `level + 1` from its children (sums, and minima when mins is not NULL). */
static void recompute_node(double *const *sums, double *const *mins, int64_t level, int64_t shift, int64_t node) {
    int64_t k = (int64_t)1 << shift;
    int64_t first = node << shift;
    sums[level + 1][node] = row_sum(sums[level] + first, k);
    if (mins) {
        mins[level][node] = level == 0 ? row_min_positive(sums[0] + first, k) : row_min(mins[level - 1] + first, k);
    }
}

/* Recompute every node of level `level + 1` (n_parents of them). */
void tree_recompute_level(double *const *sums, double *const *mins, int64_t level, int64_t shift, int64_t n_parents) {
    for (int64_t node = 0; node < n_parents; node++) recompute_node(sums, mins, level, shift, node);
}

/* Set leaves[indices[i]] = priorities[i] in order (a repeated index keeps its last value), then recompute their
   ancestors up to level `depth` from their children; a level where the changes are many (at least half its nodes)
   is recomputed whole, and so are the levels above it. Returns the largest index (-1 when n is 0), or -2 without
   writing anything when an index is outside [0, capacity). */
int64_t tree_update(double *const *sums, double *const *mins, int64_t depth, int64_t shift, int64_t capacity,
                    const int64_t *n_parents, const int64_t *indices, const double *priorities, int64_t n) {
    int64_t largest = -1;
    for (int64_t i = 0; i < n; i++) {
        if (indices[i] < 0 || indices[i] >= capacity) return -2;  /* (checked before anything is written) */
        if (indices[i] > largest) largest = indices[i];
    }
    for (int64_t i = 0; i < n; i++) sums[0][indices[i]] = priorities[i];
    for (int64_t level = 0; level < depth; level++) {
        if (2 * n >= n_parents[level]) {
            for (int64_t upper = level; upper < depth; upper++)
                tree_recompute_level(sums, mins, upper, shift, n_parents[upper]);
            return largest;
        }
        int64_t to_parent = shift * (level + 1);
        int64_t previous = -1;
        for (int64_t i = 0; i < n; i++) {
            int64_t node = indices[i] >> to_parent;
            if (node != previous) recompute_node(sums, mins, level, shift, node);  /* (the same value again if repeated) */
            previous = node;
        }
    }
    return largest;
}

/* The first child of a row whose sequential cumulative sum exceeds the mass: sets *before to the sum of the children
   before it. The cumulative sums never decrease, so that child's index is the number of them that do not exceed the
   mass, and the sum before it is the last of those (0 when there is none): counted without branches, whose outcome
   is random. When every sum is at or below the mass (rounding put it at or past the row's total), the mass is first
   lowered to the largest float below that total, as the numpy walk does before its comparison (a no-op for a mass
   below it). */
static int64_t count_not_past(const double *row, int64_t k, double limit, double *total, double *below) {
    double cumulative = 0.0, last_not_past = 0.0;
    int64_t count = 0;
    for (int64_t j = 0; j < k; j++) {
        cumulative += row[j];
        int64_t not_past = cumulative <= limit;
        count += not_past;
        last_not_past = not_past ? cumulative : last_not_past;
    }
    *total = cumulative;
    *below = last_not_past;
    return count;
}

static int64_t choose_child(const double *row, int64_t k, double *mass, double *before) {
    double total, below;
    int64_t chosen = count_not_past(row, k, *mass, &total, &below);
    if (chosen == k) {
        *mass = nextafter(total, 0.0);
        chosen = count_not_past(row, k, *mass, &total, &below);
        if (chosen == k) {  /* (a row without mass: unreachable on a walk, whose rows have positive mass) */
            *before = 0.0;
            return 0;
        }
    }
    *before = below;
    return chosen;
}

/* Ask for the cache lines of a row of k children (read in the next pass over the masses). */
static void prefetch_row(const double *row, int64_t k) {
    for (int64_t j = 0; j < k; j += 8) __builtin_prefetch(row + j);
}

/* For each mass, the leaf whose range of the cumulative sum holds it (see PriorityTree.find): a binary search of the
   top level's cumulative sums `ends` (ends[i] = mass up to the end of top node i, `extent` of them; `before[i]` the
   mass before node i), then down the levels with sequential cumulative sums of each node's children. All masses
   walk one level at a time, and each asks for the row it reads at the next level as soon as it knows it, so a whole
   pass over the masses hides the latency of those reads (random rows of a large array). `masses` is
   overwritten (the mass left at each level). Writes the leaf indices, and their priorities when `values` is not
   NULL. */
void tree_find(double *const *sums, int64_t depth, int64_t shift, const double *ends, const double *before,
               int64_t extent, double below_total, double *masses, int64_t n, int64_t *found, double *values) {
    int64_t k = (int64_t)1 << shift;
    for (int64_t i = 0; i < n; i++) {
        double mass = masses[i];
        if (mass > below_total) mass = below_total;
        /* The first top node whose end exceeds the mass (searchsorted, side="right"): the answer is in
           [low, low + left]; halving that range with a select, not a branch (the comparisons are random) */
        int64_t low = 0, left = extent;
        while (left > 1) {
            int64_t half = left / 2;
            low = ends[low + half - 1] <= mass ? low + half : low;
            left -= half;
        }
        low += ends[low] <= mass;
        found[i] = low;
        masses[i] = mass - before[low];
        if (depth > 0) prefetch_row(sums[depth - 1] + (low << shift), k);
    }
    for (int64_t level = depth - 1; level >= 0; level--) {
        const double *nodes = sums[level];
        for (int64_t i = 0; i < n; i++) {
            double mass = masses[i], previous = 0.0;
            int64_t chosen = choose_child(nodes + (found[i] << shift), k, &mass, &previous);
            int64_t node = (found[i] << shift) + chosen;
            found[i] = node;
            masses[i] = mass - previous;
            if (level > 0) prefetch_row(sums[level - 1] + (node << shift), k);
        }
    }
    if (values) {
        for (int64_t i = 0; i < n; i++) values[i] = sums[0][found[i]];
    }
}
"""

_lock = threading.Lock()
_state: dict[str, object] = {}  # "kernels" (ctypes.CDLL or None) and "reason" once loading was tried
_disabled = 0  # depth of nested disabled() blocks
_DISABLED_REASON = "disabled by sb3_ddpg_plus.native_tree.disabled()"


def _declare(library: ctypes.CDLL) -> ctypes.CDLL:
    pointer, integer, real = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    library.tree_recompute_level.argtypes = [pointer, pointer, integer, integer, integer]
    library.tree_recompute_level.restype = None
    library.tree_update.argtypes = [pointer, pointer, integer, integer, integer, pointer, pointer, pointer, integer]
    library.tree_update.restype = integer
    library.tree_find.argtypes = [
        *(pointer, integer, integer, pointer, pointer, integer, real),  # the tree and its top
        *(pointer, integer, pointer, pointer),  # masses, count, found, values
    ]
    library.tree_find.restype = None
    return library


def _load() -> tuple[ctypes.CDLL | None, str | None]:
    return native_build.build_and_load("priority_tree", _SOURCE, _FLAGS, _declare)


def load_kernels() -> ctypes.CDLL | None:
    """
    :return: The compiled kernels (compiled on the first call of this machine, loaded on the first call of this
        process), or None when they are not available (see :func:`unavailable_reason`)
    """
    with _lock:
        if _disabled:
            return None
        if "reason" not in _state:
            _state["kernels"], _state["reason"] = _load()
        return _state["kernels"]  # type: ignore[return-value]


def unavailable_reason() -> str | None:
    """:return: Why the kernels are not available, or None when they are (loads them if that was not tried yet)"""
    if load_kernels() is None and _disabled:
        return _DISABLED_REASON
    return _state["reason"]  # type: ignore[return-value]


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """
    Within this block :func:`load_kernels` returns None, so the trees made there use the numpy walk (to measure or
    test the fallback on a machine that has a compiler); trees made before or after are not affected.
    """
    global _disabled
    with _lock:
        _disabled += 1
    try:
        yield
    finally:
        with _lock:
            _disabled -= 1


def _forget() -> None:
    """Forget the outcome of loading (tests: the next :func:`load_kernels` tries again)."""
    with _lock:
        _state.clear()
