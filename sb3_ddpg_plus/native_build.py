"""
Compiling and loading the package's C kernels: one shared library per source, built once per machine.

Used by :mod:`sb3_ddpg_plus.native_tree` (the priority tree) and :mod:`sb3_ddpg_plus.native_update` (the fused DDPG
update). A source is compiled with the machine's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) into a
per-user cache folder (``$SB3_DDPG_PLUS_CACHE``, else ``$XDG_CACHE_HOME/sb3_ddpg_plus`` or ``~/.cache/sb3_ddpg_plus``),
named after a hash of the source, the flags, the compiler and the platform, and loaded with :mod:`ctypes`. The library
is written under a temporary name and then renamed, so processes building it at the same time are safe. Nothing
happens at import time. ``SB3_DDPG_PLUS_NATIVE=0`` turns every kernel off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

#: Set to ``0`` to never compile or load the kernels (the pure PyTorch/numpy code is used)
ENV_SWITCH = "SB3_DDPG_PLUS_NATIVE"
#: Folder for the compiled libraries (default: ``$XDG_CACHE_HOME/sb3_ddpg_plus`` or ``~/.cache/sb3_ddpg_plus``)
ENV_CACHE = "SB3_DDPG_PLUS_CACHE"
COMPILE_TIMEOUT_S = 120


def switched_off() -> str | None:
    """:return: Why the kernels are off by the environment (``SB3_DDPG_PLUS_NATIVE=0``), or None"""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return f"disabled by {ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    return None


def compiler_command() -> list[str] | None:
    """The compiler's command (``$CC`` may hold several words, e.g. ``ccache gcc``), or None when none is found."""
    configured = shlex.split(os.environ.get("CC", ""))
    if configured:
        return [shutil.which(configured[0]) or configured[0], *configured[1:]]
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return [found]
    return None


def cache_dir() -> Path:
    """:return: The folder of the compiled libraries"""
    configured = os.environ.get(ENV_CACHE)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sb3_ddpg_plus"


def library_name(stem: str, source: str, flags: Sequence[str], compiler: Sequence[str]) -> str:
    """:return: The library's file name: the stem and a hash of everything that changes the binary"""
    machine = os.uname().machine if hasattr(os, "uname") else ""
    key = "\n".join([source, " ".join(flags), " ".join(compiler), sys.platform, machine])
    return f"{stem}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def compile_library(stem: str, source: str, flags: Sequence[str], compiler: Sequence[str], target: Path) -> None:
    """Compile ``source`` into ``target`` (written under a temporary name, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        source_file = Path(work) / f"{stem}.c"
        source_file.write_text(source)
        built = Path(work) / target.name
        result = subprocess.run(
            [*compiler, *flags, str(source_file), "-o", str(built), "-lm"],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(compiler)} failed (exit {result.returncode}): {result.stderr.strip()[:500]}")
        os.replace(built, target)


def build_and_load(
    stem: str, source: str, flags: Sequence[str], declare: Callable[[ctypes.CDLL], ctypes.CDLL]
) -> tuple[ctypes.CDLL | None, str | None]:
    """
    :param stem: Start of the library's file name
    :param source: The C source
    :param flags: Compiler flags (``-shared -fPIC`` among them)
    :param declare: Sets the argument and return types of the library's functions (an ``AttributeError`` there, a
        function missing, makes the library unavailable)
    :return: The loaded library and None, or None and why it is not available
    """
    off = switched_off()
    if off is not None:
        return None, off
    compiler = compiler_command()
    if compiler is None:
        return None, "no C compiler found (set CC, or install cc, gcc or clang)"
    target = cache_dir() / library_name(stem, source, flags, compiler)
    try:
        if not target.exists():
            try:
                compile_library(stem, source, flags, compiler, target)
            except OSError:
                # (a cache folder that cannot be written: a private temporary one, for this process)
                target = Path(tempfile.mkdtemp(prefix="sb3_ddpg_plus_")) / target.name
                compile_library(stem, source, flags, compiler, target)
        return declare(ctypes.CDLL(str(target))), None
    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as error:
        return None, f"could not build or load the C kernels with {' '.join(compiler)}: {error}"
