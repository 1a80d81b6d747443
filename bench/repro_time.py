"""Wall time of the default pipeline: `dvc repro` on a fresh clone of HEAD (install excluded).

    python bench/repro_time.py            # print the row
    python bench/repro_time.py --write    # and append it to BENCHMARKS.md
    python bench/repro_time.py --in-place # time `dvc repro -f` in this checkout instead of a clone

Uses the interpreter's environment (the project's .venv) for the stages, like `make repro`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, today  # noqa: E402

HEADER = ("| date | commit | wall (s) | pretrain (s) | epochs | top1_h | random_init_top1 | gain | knn_top1 | "
          "ablation points (s) | machine |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def timed_repro(repo: Path, env: dict) -> tuple[float, dict, dict, str]:
    start = time.perf_counter()
    subprocess.run(["dvc", "repro", "-f"], cwd=repo, env=env, check=True)
    wall = time.perf_counter() - start
    points = [json.loads(p.read_text()) for p in sorted((repo / "metrics/ablation").glob("*/*/*.json"))
              if p.stat().st_mtime >= time.time() - wall]  # the points this repro wrote
    ablation = f"{len(points)} points, {sum(p['wall_seconds'] for p in points):.0f}"
    return (wall, json.loads((repo / "metrics/linear_eval.json").read_text()),
            json.loads((repo / "metrics/pretrain.json").read_text()), ablation)


def main(write: bool, in_place: bool) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if in_place:  # a finished run leaves no checkpoint: `dvc repro -f` trains from epoch 1
        wall, le, pre, ablation = timed_repro(ROOT, env)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            clone = Path(tmp) / "clone"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            wall, le, pre, ablation = timed_repro(clone, env)
    row = (f"| {today()} | {commit} | {wall:.0f} | {pre['wall_seconds']:.0f} | {pre['epochs']} | {le['top1_h']:.1f} | "
           f"{le['random_init_top1']:.1f} | {le['top1_h'] - le['random_init_top1']:+.1f} | {le['knn_top1']:.1f} | {ablation} | "
           f"{machine()} |")
    emit("Default pipeline: `dvc repro -f` wall time (every stage runs; install excluded)", HEADER, [row], write)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="append the row to BENCHMARKS.md")
    ap.add_argument("--in-place", action="store_true", help="time `dvc repro -f` in this checkout, not a fresh clone")
    args = ap.parse_args()
    main(args.write, args.in_place)
