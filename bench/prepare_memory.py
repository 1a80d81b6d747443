"""The streaming prepare's peak memory and speed on a large image folder, against the in-memory prepare
it replaced (commit 64cd241), in the same run.

    python bench/prepare_memory.py [--images 51000] [--size 96] [--folder /tmp/simclr-bench-folder]
                                   [--baseline REV] [--write]

Generates (once, then reused) an image folder of JPEGs at ``--size`` px: 10 classes under train/,
1,000 test images, and 10% of the images under unlabeled/ (nested folders). Then runs, each as its own
process under ``/usr/bin/time -v`` while the whole process tree's RSS is sampled every 50 ms:

* reference: the previous prepare (decodes every image into a list, then stacks: the whole set in
  memory twice); it ignores unlabeled/, so it reads the train and test images only;
* streaming: this prepare with ``data.pretrain_on: train+unlabeled`` (every image);
* ``--baseline REV``: also the prepare stage of git revision REV (its stages/ and src/), the same way.

Peak RSS is the sampled maximum of the summed tree (main process + decode workers), and apart
its anonymous part (the process's own data: RSS less shared pages) and its file-backed part
(mapped libraries and files, which processes running the same libraries share, so a tree's sum
counts them once per process); GNU time's figure is the largest single process.
Images/s = images written / wall time.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, today  # noqa: E402

REFERENCE_COMMIT = "64cd241"
CLASSES = 10


def generate(folder: Path, images: int, size: int) -> dict[str, int]:
    """Smooth random images (a 6x6 colour grid upsampled), so JPEG sizes are photo-like; once."""
    from PIL import Image

    stamp = folder / f".complete-{images}-{size}"
    test, unlabeled = 1000, images // 10
    counts = {"train": images - test - unlabeled, "test": test, "unlabeled": unlabeled}
    if stamp.exists():
        return counts
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for split, n in counts.items():
        for i in range(n):
            if split == "unlabeled":
                sub = folder / split / f"batch{i // 1000:03d}" / f"part{i % 3}"
            else:
                sub = folder / split / f"class{i % CLASSES}"
            sub.mkdir(parents=True, exist_ok=True)
            small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            Image.fromarray(small).resize((size + 8, size), Image.BILINEAR).save(sub / f"{i:06d}.jpg", quality=90)
    stamp.touch()
    print(f"generated {sum(counts.values())} images in {time.perf_counter() - start:.0f} s", flush=True)
    return counts


def measure(cmd: list[str], cwd: Path) -> tuple[float, dict[str, float], float]:
    """(wall seconds, peak summed tree RSS / anonymous / file-backed in MiB, GNU time's max RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    root, peak = psutil.Process(proc.pid), {"rss": 0, "anonymous": 0, "file-backed": 0}
    while proc.poll() is None:
        try:
            infos = [p.memory_info() for p in [root, *root.children(recursive=True)] if p.is_running()]
            now = {"rss": sum(m.rss for m in infos), "anonymous": sum(m.rss - m.shared for m in infos),
                   "file-backed": sum(m.shared for m in infos)}
            peak = {k: max(peak[k], now[k]) for k in peak}
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    gnu = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
    return wall, {k: v / 2**20 for k, v in peak.items()}, gnu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=51_000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "simclr-bench-folder")
    ap.add_argument("--baseline", metavar="REV", help="also run the prepare stage of this git revision")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    counts = generate(args.folder, args.images, args.size)
    bytes_per_image = args.size * args.size * 3

    with tempfile.TemporaryDirectory(prefix="simclr-bench-prepare-") as tmp:
        tmp = Path(tmp)
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        raw["data"].update(source="imagefolder", root=str(args.folder), image_size=args.size,
                           pretrain_on="train+unlabeled")
        (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
        old = tmp / "old_prepare.py"
        old.write_text(subprocess.run(["git", "show", f"{REFERENCE_COMMIT}:src/simclr/prepare.py"], cwd=ROOT,
                                      check=True, capture_output=True, text=True).stdout)
        runner = tmp / "run_old.py"
        runner.write_text(
            "import importlib.util, sys\n"
            f"sys.path.insert(0, {str(ROOT / 'src')!r})\n"
            "from pathlib import Path\n"
            "from simclr.core.config import load_params\n"
            f"spec = importlib.util.spec_from_file_location('old_prepare', {str(old)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print(m.prepare(load_params('params.yaml').data, Path('.'), Path('old-prepared')))\n")
        runs = [
            ("in-memory prepare (64cd241; train+test only)", [sys.executable, str(runner)],
             counts["train"] + counts["test"]),
            ("streaming prepare (train+test+unlabeled)",
             [sys.executable, str(ROOT / "stages/prepare.py"), "--sample", str(ROOT / "data/cifar10-sample"),
              "--out", str(tmp / "new-prepared")], sum(counts.values())),
        ]
        if args.baseline:
            rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout.strip()
            archive = subprocess.run(["git", "archive", rev, "src", "stages"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            (tmp / "baseline").mkdir()
            subprocess.run(["tar", "-x", "-C", str(tmp / "baseline")], input=archive, check=True)
            runs.insert(1, (f"streaming prepare at {rev} (train+test+unlabeled)",
                            [sys.executable, str(tmp / "baseline/stages/prepare.py"), "--sample",
                             str(ROOT / "data/cifar10-sample"), "--out", str(tmp / "baseline-prepared")],
                            sum(counts.values())))
        rows = []
        for name, cmd, n in runs:
            wall, peak, gnu = measure(cmd, tmp)
            decoded = n * bytes_per_image / 2**20
            rows.append(f"| {today()} | {name} | {n:,} | {args.size} | {decoded:,.0f} | {peak['rss']:,.0f} | "
                        f"{peak['anonymous']:,.0f} | {peak['file-backed']:,.0f} | {gnu:,.0f} | {n / wall:,.0f} | "
                        f"{machine()} |")
            print(rows[-1], flush=True)
    header = ("| date | prepare | images | px | decoded size (MiB) | peak RSS, process tree (MiB) | "
              "peak anonymous, tree (MiB) | peak file-backed, tree (MiB) | "
              "peak RSS, largest process (MiB) | images/s | machine |\n|---|---|---|---|---|---|---|---|---|---|---|")
    emit("Streaming prepare: peak memory on a large image folder (`bench/prepare_memory.py`)", header, rows, args.write)


if __name__ == "__main__":
    main()
