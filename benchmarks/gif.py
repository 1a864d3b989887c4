"""
GIF of a trained agent: ``python -m benchmarks gif --env Pendulum-v1 --algo ddpg_plus --budget 20000 --seed 0``.

Uses the model that ``benchmarks run`` saved for that (env, algo, budget, seed) under ``--runs`` (profiles save the
models of the envs shown in the report), or trains it there first with the runner's protocol, then plays one
deterministic episode with ``render_mode="rgb_array"`` and writes ``<out>/<env>.gif`` and a ``.json`` beside it
(what was shown and the command that made it, which the report quotes).
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, command_line, now_utc
from sb3_ddpg_plus.experiments.envs import make_env
from sb3_ddpg_plus.experiments.records import write_file, write_json

#: Frames are shrunk to this width (pixels): the classic-control renderers draw 500-600 px, more than a README needs.
DEFAULT_WIDTH = 240


def load_model(algo: str, path: Path) -> Any:
    """
    :param algo: Algorithm key (decides the class).
    :param path: Saved model (zip).
    :return: The loaded model, on the CPU.
    """
    from benchmarks.algos import get_algo

    library = get_algo(algo).library
    if library == "sb3_ddpg":
        from stable_baselines3 import DDPG as cls
    elif library == "sb3_td3":
        from stable_baselines3 import TD3 as cls
    else:
        from sb3_ddpg_plus import DDPGPlus as cls
    return cls.load(path, device="cpu")


def record_episode(
    model: Any, env_id: str, seed: int, max_steps: int, frame_skip: int = 1, width: int = DEFAULT_WIDTH
) -> tuple[list[np.ndarray], float, int]:
    """
    Play one deterministic episode and keep its frames.

    :param model: Trained model (anything with ``predict``).
    :param env_id: Environment id.
    :param seed: Seed of the episode's ``reset``.
    :param max_steps: Stop after this many steps.
    :param frame_skip: Keep every ``frame_skip``-th frame (long episodes make big files).
    :param width: Width of the kept frames (height scales with it).
    :return: ``(frames, episode return, steps)``.
    """
    from PIL import Image

    # pygame (the classic-control renderer) opens an audio device by default, which fails noisily on a headless box.
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = make_env(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    frames, total, steps = [], 0.0, 0
    done = False
    while not done and steps < max_steps:
        if steps % frame_skip == 0:
            frame = Image.fromarray(env.render())
            height = round(frame.height * width / frame.width)
            frames.append(np.asarray(frame.resize((width, height), Image.Resampling.LANCZOS)))
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps += 1
        done = terminated or truncated
    frames.append(np.asarray(Image.fromarray(env.render()).resize(frames[0].shape[1::-1], Image.Resampling.LANCZOS)))
    env.close()
    return frames, total, steps


def encode_gif(frames: list[np.ndarray], fps: float) -> bytes:
    """
    :param frames: RGB frames of equal size.
    :param fps: Frames per second of the animation.
    :return: An endlessly looping GIF.
    """
    from PIL import Image

    images = [Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE, colors=64) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=True
    )
    return buffer.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    :param parser: Parser to add the ``gif`` options to.
    """
    parser.add_argument("--env", required=True, help="environment id (with an rgb_array renderer)")
    parser.add_argument("--algo", default="ddpg_plus", help="algorithm key (default ddpg_plus)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the run to show")
    parser.add_argument("--budget", type=int, default=None, help="training env steps (default: the standard profile's)")
    parser.add_argument("--runs", type=Path, default=RESULTS_DIR / "standard", help="results folder with models/")
    parser.add_argument("--model", type=Path, default=None, help="a saved model to show instead")
    parser.add_argument("--episode-seed", type=int, default=0, help="seed of the recorded episode's reset")
    parser.add_argument("--max-steps", type=int, default=1000, help="longest episode to record")
    parser.add_argument("--frame-skip", type=int, default=None, help="keep every n-th frame (default: 1, MountainCar 2)")
    parser.add_argument("--fps", type=float, default=None, help="GIF frame rate (default: the env's, over frame-skip)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "gifs", help="folder of the GIF (default results/gifs)")


def _standard_entry(env_id: str) -> Any:
    from benchmarks.profiles import STANDARD

    for entry in STANDARD.entries:
        if entry.env == env_id:
            return entry
    return None


def main(args: argparse.Namespace) -> Path:
    """
    Make the GIF.

    :param args: Parsed options (see :func:`add_arguments`).
    :return: Path of the GIF.
    """
    from benchmarks.runner import Task, model_path, run_task

    budget = args.budget
    entry = _standard_entry(args.env)
    if args.model is not None:
        path = args.model
    else:
        if budget is None:
            if entry is None:
                raise SystemExit(f"--budget is needed: {args.env} is not in the standard profile")
            budget = entry.budget
        path = model_path(args.runs, args.env, args.algo, budget, args.seed)
        if not path.exists():
            print(f"[gif] no saved model at {path}: training it ({budget} steps)", flush=True)
            overrides = tuple(sorted(entry.overrides.items())) if entry is not None and entry.budget == budget else ()
            task = Task(
                env=args.env,
                algo=args.algo,
                seed=args.seed,
                budget=budget,
                eval_freq=entry.eval_freq if entry is not None else max(budget // 10, 1),
                n_eval_episodes=entry.n_eval_episodes if entry is not None else 10,
                overrides=overrides,
                save_model=True,
                profile="standard" if entry is not None else "custom",
            )
            run_task(task, args.runs, command_line())
    model = load_model(args.algo, path)
    frame_skip = args.frame_skip or (2 if "MountainCar" in args.env else 1)
    frames, episode_return, steps = record_episode(model, args.env, args.episode_seed, args.max_steps, frame_skip)
    env = make_env(args.env, render_mode="rgb_array")
    fps = args.fps or env.metadata.get("render_fps", 30) / frame_skip
    env.close()
    out = args.out / f"{args.env}.gif"
    write_file(out, encode_gif(frames, fps))
    write_json(
        out.with_suffix(".json"),
        {
            "env": args.env,
            "algo": args.algo,
            "seed": args.seed,
            "budget": budget,
            "model": str(path),
            "episode_seed": args.episode_seed,
            "episode_return": episode_return,
            "episode_steps": steps,
            "frames": len(frames),
            "fps": fps,
            "date": now_utc(),
            "command": command_line(),
        },
    )
    print(f"[gif] {out}: {len(frames)} frames, episode return {episode_return:.1f} over {steps} steps", flush=True)
    return out
