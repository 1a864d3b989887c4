"""
Worker process of the speed benchmark: one library per process (``sb3``, ``ours`` or ``sbx``), started by
``benchmarks/speed.py`` pinned to one CPU core, answering one request at a time so that the parent can alternate the
libraries' measurements.

Protocol: one JSON object per line on stdin, one JSON answer per line on the original stdout (anything the libraries
print goes to stderr instead). The first answer says whether the library could be imported. Requests:

- ``{"op": "setup", "key": K, "timer": "learn" | "train" | "floor" | "env_step", "kwargs": {...}}``: build a timer
  (:class:`~benchmarks.speed.LearnTimer`, :class:`~benchmarks.speed.TrainTimer`, :class:`~benchmarks.speed.FloorDDPG`,
  :class:`~benchmarks.speed.EnvStepTimer`); answers its warm-up seconds and, for models, the parameter count. A
  ``train`` timer with ``"model_of": K2`` in its arguments times on the model of timer ``K2``;
- ``{"op": "measure", "key": K}``: answers ``{"rate": ...}``;
- ``{"op": "gemm", "shape": [m, k, n], "budget_s": s, "rounds": r}``: GEMM rates of this process's kernels;
- ``{"op": "clear"}``: drop every timer (between cases).

Run by the benchmark, not by hand: ``python -m benchmarks.speed_worker {sb3,ours,sbx} --threads 1``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import IO, Any


def load_library(name: str) -> type:
    """
    :param name: ``sb3``, ``ours`` or ``sbx``.
    :return: The library's DDPG class.
    """
    if name == "sb3":
        from stable_baselines3 import DDPG

        return DDPG
    if name == "ours":
        from sb3_ddpg_plus import DDPGPlus

        return DDPGPlus
    if name == "sbx":
        from sbx import DDPG as SbxDDPG

        return SbxDDPG
    raise ValueError(f"unknown library {name!r}: expected sb3, ours or sbx")


class Worker:
    """
    The timers of one library in this process.

    :param name: ``sb3``, ``ours`` or ``sbx``.
    :param cls: The library's DDPG class.
    """

    def __init__(self, name: str, cls: type) -> None:
        self.name = name
        self.cls = cls
        self.timers: dict[str, Any] = {}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        :param request: One request (see the module docstring).
        :return: Its answer.
        """
        from benchmarks import speed

        op = request["op"]
        if op == "measure":
            return {"rate": self.timers[request["key"]].measure()}
        if op == "setup":
            kind, kwargs = request["timer"], dict(request["kwargs"])
            if kind == "learn":
                timer = speed.LearnTimer(self.cls, **kwargs)
            elif kind == "train":
                if "model_of" in kwargs:  # time another form of train() on a model already built and filled
                    kwargs = dict(kwargs, model=self.timers[kwargs.pop("model_of")].model, env_id="", arch=(), seed=0)
                timer = speed.TrainTimer(self.cls, **kwargs)
            elif kind == "floor":
                timer = speed.FloorDDPG(**kwargs)
            elif kind == "env_step":
                timer = speed.EnvStepTimer(**kwargs)
            else:
                raise ValueError(f"unknown timer {kind!r}")
            self.timers[request["key"]] = timer
            answer: dict[str, Any] = {"warmup_s": getattr(timer, "warmup_s", None)}
            if hasattr(timer, "model"):
                answer["params"] = speed.count_parameters(timer.model)
                # The BLAS the native update picked for this network (None: the native update did not run)
                prepared = getattr(getattr(timer.model, "_native_update", None), "_prepared", None)
                answer["native_blas"] = None if prepared is None else prepared.blas.name
            return answer
        if op == "gemm":
            m, k, n = request["shape"]
            budget_s, rounds = request["budget_s"], request["rounds"]
            if self.name == "sbx":
                return {"gflops": speed.jax_gemm_rates(m, k, n, budget_s, rounds)}
            return {"gflops": speed.gemm_rates(m, k, n, budget_s, rounds)}
        if op == "clear":
            self.timers.clear()
            gc.collect()
            return {}
        raise ValueError(f"unknown request {op!r}")


def send(stream: IO[str], answer: dict[str, Any]) -> None:
    """
    :param stream: The protocol stream (the original stdout).
    :param answer: One answer, written as one JSON line.
    """
    stream.write(json.dumps(answer) + "\n")
    stream.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """
    :param argv: Arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_worker", description=__doc__.strip().splitlines()[0])
    parser.add_argument("library", choices=("sb3", "ours", "sbx"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    # Keep the original stdout for the protocol; whatever the libraries print (PyBullet's C code included) goes to
    # stderr from here on.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        import torch as th

        th.set_num_threads(args.threads)
        cls = load_library(args.library)
    except ImportError as error:
        send(protocol, {"ready": False, "import_error": f"{type(error).__name__}: {error}"})
        return
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = []
    send(protocol, {"ready": True, "pid": os.getpid(), "affinity": affinity, "torch_threads": th.get_num_threads()})
    worker = Worker(args.library, cls)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = worker.handle(json.loads(line))
        except Exception:  # reported to the parent, which raises it
            answer = {"error": traceback.format_exc()}
        send(protocol, answer)


if __name__ == "__main__":
    main()
