"""
Which BLAS ``sgemm`` the native update (:mod:`sb3_ddpg_plus.native_update`) calls: PyTorch's own or numpy's OpenBLAS,
chosen once per machine and network shape.

Two BLAS libraries are at hand in a typical install: the ``sgemm_`` inside PyTorch's CPU library (MKL on x86 builds:
what ``torch.mm`` runs) and the OpenBLAS inside numpy's wheels. Which one is faster depends on the CPU: on the AMD
EPYC this project is measured on, numpy's OpenBLAS (its AVX-512 kernels) ran the update's 256 x 400 @ 400 x 300
products 2-5% faster than MKL (whose kernels for AMD CPUs use AVX2), and the 64-wide ones at the same speed.

How the choice is made:

- products under ``PROBE_MIN_FLOPS`` (a [64, 64] network's) always use PyTorch's: timing noise there exceeds any gain;
- otherwise both are timed once on the update's largest product (the least CPU time of ``PROBE_ROUNDS`` alternated
  calls each, after a warm-up, on inputs from a private generator), and numpy's is taken only when it is at least
  ``MIN_GAIN`` faster;
- the result is written to ``blas_choices.json`` in the package's cache folder (:mod:`sb3_ddpg_plus.native_build`),
  per machine (CPU model, thread count, library versions) and shape, and read from there by later processes: the
  two libraries round differently, so that a seeded run must not depend on a fresh timing each time. The first
  process on a machine decides; ``SB3_DDPG_PLUS_BLAS=torch`` or ``=numpy`` decides instead (the same numbers on every
  machine where the library is the same).

Both give the same training to float32 rounding (``tests/test_native_update.py`` runs its comparisons with each).
numpy's OpenBLAS is called with as many threads as PyTorch uses (``openblas_set_num_threads_local``, for the call
only), so that ``torch.set_num_threads`` keeps its meaning.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch as th

from sb3_ddpg_plus import native_build

#: ``torch`` or ``numpy``: the library to use, without timing anything
ENV_BLAS = "SB3_DDPG_PLUS_BLAS"
#: Products under this many FLOPs use PyTorch's sgemm_ without a probe (a 256 x 64 @ 64 x 64 product is ~2 MFLOP)
PROBE_MIN_FLOPS = 8_000_000
#: numpy's OpenBLAS is taken when its best time is at least this much below PyTorch's
MIN_GAIN = 0.03
PROBE_ROUNDS = 10
CHOICES_FILE = "blas_choices.json"


class BlasSettingError(ValueError):
    """``SB3_DDPG_PLUS_BLAS`` names a library that is not available (raised to the user: a setting, not a fallback)."""


@dataclass(frozen=True)
class Blas:
    """
    A BLAS ``sgemm`` (Fortran interface) the kernel can call.

    :param name: ``"torch"`` (the ``sgemm_`` of PyTorch's own library) or ``"numpy"`` (the OpenBLAS in numpy's wheel)
    :param address: The function's address
    :param ilp64: Whether it takes 64-bit integers
    :param set_threads: The library's ``openblas_set_num_threads_local`` (the calling thread's count; returns the
        previous one), or None when the library follows PyTorch's thread setting itself
    """

    name: str
    address: int
    ilp64: bool
    set_threads: Callable[[int], int] | None = None

    @contextlib.contextmanager
    def threads_of_torch(self) -> Any:
        """Within the block the library computes with as many threads as PyTorch does."""
        if self.set_threads is None:
            yield
            return
        previous = self.set_threads(th.get_num_threads())
        try:
            yield
        finally:
            self.set_threads(previous)


_lock = threading.Lock()
_found: dict[str, Blas | None] = {}
_chosen: dict[str, str] = {}


def torch_blas() -> Blas | None:
    """:return: ``sgemm_`` of the running PyTorch's CPU library, or None when it does not export one"""
    with _lock:
        if "torch" not in _found:
            _found["torch"] = _find_torch()
        return _found["torch"]


def numpy_blas() -> Blas | None:
    """:return: The OpenBLAS ``sgemm`` inside numpy's wheel, or None when there is none"""
    with _lock:
        if "numpy" not in _found:
            _found["numpy"] = _find_numpy()
        return _found["numpy"]


def _find_torch() -> Blas | None:
    folder = Path(th.__file__).parent / "lib"
    for candidate in sorted(folder.glob("libtorch_cpu.*")) + sorted(folder.glob("libtorch.*")):
        try:
            address = ctypes.cast(ctypes.CDLL(str(candidate)).sgemm_, ctypes.c_void_p).value
        except (OSError, AttributeError):
            continue
        if address:
            return Blas("torch", address, ilp64=False)
    return None


def _find_numpy() -> Blas | None:
    import numpy as np

    folder = Path(np.__file__).parent.parent / "numpy.libs"
    for candidate in sorted(folder.glob("lib*openblas*.so*")):
        try:
            library = ctypes.CDLL(str(candidate))
            set_threads = library.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        set_threads.argtypes = [ctypes.c_int]
        set_threads.restype = ctypes.c_int
        for symbol, ilp64 in (("scipy_sgemm_64_", True), ("sgemm_64_", True), ("scipy_sgemm_", False), ("sgemm_", False)):
            function = getattr(library, symbol, None)
            address = None if function is None else ctypes.cast(function, ctypes.c_void_p).value
            if address:
                return Blas("numpy", address, ilp64=ilp64, set_threads=set_threads)
    return None


def _machine() -> str:
    """What a choice holds for: CPU model, threads, the two libraries' versions."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import numpy as np

    return f"{model} | threads {th.get_num_threads()} | torch {th.__version__} | numpy {np.__version__}"


def choose(rows: int, inner: int, columns: int) -> Blas:
    """
    :param rows: Rows of the update's largest product (the batch)
    :param inner: Its inner dimension
    :param columns: Its columns
    :return: The library the kernel calls for this network shape (see the module's docstring)
    :raises BlasSettingError: When ``SB3_DDPG_PLUS_BLAS`` names a library that is not available
    :raises ValueError: When neither library exports ``sgemm``
    """
    reference = torch_blas()
    alternative = numpy_blas()
    forced = os.environ.get(ENV_BLAS, "").strip().lower()
    if forced:
        found = {"torch": reference, "numpy": alternative}.get(forced)
        if found is None:
            available = [name for name, blas in (("torch", reference), ("numpy", alternative)) if blas is not None]
            raise BlasSettingError(f"{ENV_BLAS}={forced!r}: not an available BLAS here (available: {', '.join(available)})")
        return found
    if reference is None or alternative is None:
        found = reference or alternative
        if found is None:
            raise ValueError("neither PyTorch's library nor numpy's exports a BLAS sgemm")
        return found
    if 2 * rows * inner * columns < PROBE_MIN_FLOPS:
        return reference
    key = f"{rows}x{inner}x{columns}"
    with _lock:
        name = _chosen.get(key)
    if name is None:
        name = _recorded(key)
        if name is None:
            name = _probe(reference, alternative, rows, inner, columns)
            name = _record(key, name)
        with _lock:
            _chosen[key] = name
    return alternative if name == "numpy" else reference


def _choices_path() -> Path:
    return native_build.cache_dir() / CHOICES_FILE


def _read_choices() -> dict[str, Any]:
    try:
        data = json.loads(_choices_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded(key: str) -> str | None:
    entry = _read_choices().get(_machine(), {})
    name = entry.get(key) if isinstance(entry, dict) else None
    return name if name in ("torch", "numpy") else None


def _record(key: str, name: str) -> str:
    """
    Write the choice (atomically); if another process recorded one first, that one is kept and returned, so that
    processes on one machine agree.
    """
    with contextlib.suppress(OSError):
        path = _choices_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        choices = _read_choices()
        entry = choices.setdefault(_machine(), {})
        if not isinstance(entry, dict):
            entry = choices[_machine()] = {}
        if entry.get(key) in ("torch", "numpy"):
            return str(entry[key])
        entry[key] = name
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump(choices, handle, indent=1, sort_keys=True)
        os.replace(handle.name, path)
    return name


def _call(blas: Blas, rows: int, inner: int, columns: int, a: th.Tensor, b: th.Tensor, c: th.Tensor) -> None:
    # Row-major c = a @ b as the column-major product c^T = b^T a^T
    integer = ctypes.c_int64 if blas.ilp64 else ctypes.c_int
    function = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(blas.address)
    one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
    n, m, k = integer(columns), integer(rows), integer(inner)
    function(
        b"N",
        b"N",
        ctypes.addressof(n),
        ctypes.addressof(m),
        ctypes.addressof(k),
        ctypes.addressof(one),
        b.data_ptr(),
        ctypes.addressof(n),
        a.data_ptr(),
        ctypes.addressof(k),
        ctypes.addressof(zero),
        c.data_ptr(),
        ctypes.addressof(n),
    )


def _probe(reference: Blas, alternative: Blas, rows: int, inner: int, columns: int) -> str:
    """:return: ``"numpy"`` when numpy's OpenBLAS runs the product at least ``MIN_GAIN`` faster, else ``"torch"``"""
    generator = th.Generator().manual_seed(0)  # (torch's global stream, which seeds training, is left alone)
    a = th.randn(rows, inner, generator=generator)
    b = th.randn(inner, columns, generator=generator)
    outputs = {blas.name: th.empty(rows, columns) for blas in (reference, alternative)}
    best = {reference.name: float("inf"), alternative.name: float("inf")}
    for idx in range(PROBE_ROUNDS + 1):
        order = (reference, alternative) if idx % 2 == 0 else (alternative, reference)
        for blas in order:
            with blas.threads_of_torch():
                start = time.process_time()
                _call(blas, rows, inner, columns, a, b, outputs[blas.name])
                elapsed = time.process_time() - start
            if idx > 0:  # (the first round warms up)
                best[blas.name] = min(best[blas.name], elapsed)
    # A library that computes something else is never chosen
    if not th.allclose(outputs[alternative.name], outputs[reference.name], rtol=1e-4, atol=1e-3):
        return reference.name
    return alternative.name if best[alternative.name] < (1 - MIN_GAIN) * best[reference.name] else reference.name


def _forget() -> None:
    """Forget the libraries found and the choices made in this process (tests)."""
    with _lock:
        _found.clear()
        _chosen.clear()
