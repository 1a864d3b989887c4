"""
What a result file records about where it was made, and how it is written.

:func:`system_info` starts from SB3's ``get_system_info()`` (OS, Python, SB3, PyTorch, GPU, NumPy, Cloudpickle,
Gymnasium) and adds what a benchmark needs that SB3 leaves out: the CPU model, the cores this process may use, the
load, and the versions of this package and of the optional packages that decide the numbers. Result files keep it as
two mappings, ``versions`` and ``machine``.

:func:`write_file` and :func:`write_json` are text front-ends of :func:`sb3_ddpg_plus.checkpoints.atomic_write`, the
package's one atomic writer: a reader (a report, a resumed grid, another worker) never sees a half-written file.
"""

import json
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from stable_baselines3.common.utils import get_system_info

import sb3_ddpg_plus
from sb3_ddpg_plus.checkpoints import atomic_write

#: Distributions whose versions are recorded besides SB3's list (``"-"`` when one is not installed).
EXTRA_PACKAGES = ("pybullet", "pybullet_envs_gymnasium", "rl_zoo3", "optuna", "scipy")
# get_system_info()'s keys that describe the machine rather than a package version.
_MACHINE_KEYS = {"OS": "platform", "GPU Enabled": "gpu"}


def cpu_model() -> str:
    """
    :return: The CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def system_info(packages: Sequence[str] = EXTRA_PACKAGES) -> dict[str, dict[str, Any]]:
    """
    :param packages: Distributions whose versions are recorded besides SB3's list
    :return: ``{"versions": {...}, "machine": {...}}``: SB3's ``get_system_info()`` split into package versions and
        machine (``platform``, ``gpu``), plus ``sb3_ddpg_plus`` and ``packages`` versions and the CPU model, logical
        cores, cores usable by this process and load average
    """
    sb3_info, _ = get_system_info(print_info=False)
    versions = {key: value for key, value in sb3_info.items() if key not in _MACHINE_KEYS}
    versions["sb3_ddpg_plus"] = sb3_ddpg_plus.__version__
    for dist in packages:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "-"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    machine = {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average": load,
        **{name: sb3_info[key] for key, name in _MACHINE_KEYS.items() if key in sb3_info},
    }
    return {"versions": versions, "machine": machine}


def write_file(path: "str | os.PathLike[str]", data: str | bytes) -> Path:
    """
    Write a text (UTF-8) or binary file atomically.

    :param path: Destination (its folder is created if needed)
    :param data: Content
    :return: The path written
    """
    if isinstance(data, str):
        return atomic_write(path, lambda tmp: Path(tmp).write_text(data, encoding="utf-8"))
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path: "str | os.PathLike[str]", obj: Any) -> Path:
    """
    Write ``obj`` as indented JSON, atomically.

    :param path: Destination
    :param obj: JSON-serialisable object
    :return: The path written
    """
    return write_file(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")
