"""Run `dvc repro` in pieces of at most N seconds, resuming from the pretrain checkpoint.

For machines with a wall-clock limit per job (SLURM, a shared box, a 10-minute CI step):

    python scripts/repro_in_pieces.py --piece-seconds 600 [--max-pieces 20] [-- extra dvc args]

Each piece runs `dvc repro` in its own process group; at the limit the whole group gets
SIGTERM (then SIGKILL), like a scheduler ending a job. The next piece resumes: the pretrain
stage continues from its last epoch's checkpoint in the store (pretrain.checkpoint_dir; same
params, data and code), finished stages are skipped by DVC. Exits 0 when a piece completes the pipeline, 1 if it fails, 2 when out of pieces.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def run_piece(cmd: list[str], seconds: float) -> int | None:
    """The command's exit code, or None if the piece hit its time limit."""
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--piece-seconds", type=float, default=600)
    ap.add_argument("--max-pieces", type=int, default=20)
    ap.add_argument("dvc_args", nargs="*")
    args = ap.parse_args()
    for piece in range(1, args.max_pieces + 1):
        start = time.monotonic()
        print(f"[repro_in_pieces] piece {piece}: dvc repro {' '.join(args.dvc_args)}", flush=True)
        code = run_piece(["dvc", "repro", *args.dvc_args], args.piece_seconds)
        took = time.monotonic() - start
        if code is None:
            print(f"[repro_in_pieces] piece {piece} stopped at its limit after {took:.0f} s; resuming", flush=True)
            continue
        print(f"[repro_in_pieces] piece {piece} exited {code} after {took:.0f} s", flush=True)
        return 0 if code == 0 else 1
    print(f"[repro_in_pieces] out of pieces ({args.max_pieces})", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
