"""
Speed of DDPGPlus at two commits, side by side: ``python -m benchmarks.ab_commits BASE_TREE HEAD_TREE`` where each
argument is a checkout (e.g. ``git worktree add /tmp/base <commit>``). Each repeat runs one fresh process per tree,
alternating their order, pinned to one core with one torch thread, and times ``learn()`` (env steps/s) and
``train(1)`` (updates/s) on Pendulum-v1 at [64, 64] and [400, 300]. Prints medians and the per-repeat HEAD/BASE ratios:
a regression check that runs on this noisy shared machine (ratios from the same run, not absolute figures).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CODE = r"""
import json, time, warnings
import torch as th
warnings.filterwarnings("ignore")
th.set_num_threads(1)
from sb3_ddpg_plus import DDPGPlus
out = {}
for arch in ([64, 64], [400, 300]):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", learning_starts=300, policy_kwargs=dict(net_arch=arch), seed=0)
    model.learn(400)
    n = 1500 if arch == [64, 64] else 200
    start = time.perf_counter(); model.learn(n, reset_num_timesteps=False); learn = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(n):
        model.train(1, 256)
    out[str(arch)] = (learn, n / (time.perf_counter() - start))
print(json.dumps(out))
"""


def main(base: str, head: str, repeats: int = 4, core: int = 1) -> None:
    """
    :param base: Checkout of the base commit
    :param head: Checkout of the commit to compare
    :param repeats: Alternated repeats
    :param core: CPU core to pin to
    """
    trees = {"base": base, "head": head}
    results: dict[str, list[dict[str, list[float]]]] = {name: [] for name in trees}
    for repeat in range(repeats):
        for name in list(trees) if repeat % 2 == 0 else list(reversed(trees)):
            completed = subprocess.run(
                ["taskset", "-c", str(core), sys.executable, "-c", CODE],
                cwd=trees[name],
                env={"PYTHONPATH": trees[name], "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                check=True,
            )
            results[name].append(json.loads(completed.stdout.strip().splitlines()[-1]))
    for arch in ("[64, 64]", "[400, 300]"):
        for index, what in enumerate(("learn() env steps/s", "train(1) updates/s")):
            medians = {name: statistics.median(run[arch][index] for run in runs) for name, runs in results.items()}
            ratios = [h[arch][index] / b[arch][index] for h, b in zip(results["head"], results["base"], strict=True)]
            print(
                f"{arch} {what}: base {medians['base']:.1f}, head {medians['head']:.1f}; head/base median "
                f"{statistics.median(ratios):.3f}, per repeat {', '.join(f'{r:.3f}' for r in ratios)}"
            )


if __name__ == "__main__":
    main(*sys.argv[1:3])
