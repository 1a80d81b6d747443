"""Shared by the bench/ scripts: the machine line and appending rows to BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    import torch

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cores} cores {cpu}{gpu}; {platform.system()} {platform.machine()}; torch {torch.__version__}"


def today() -> str:
    return datetime.date.today().isoformat()


def append_row(section: str, header: str, row: str) -> None:
    """Append `row` under `## section` in BENCHMARKS.md (creating the section with `header`)."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    marker = f"## {section}\n"
    if marker not in text:
        text = text.rstrip("\n") + f"\n\n{marker}\n{header}\n"
    head, tail = text.split(marker, 1)
    lines = tail.split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    body = "\n".join(lines[:end]).rstrip("\n") + "\n" + row + "\n"
    rest = "\n".join(lines[end:])
    path.write_text(head + marker + body + ("\n" + rest if rest.strip() else ""))


def emit(section: str, header: str, rows: list[str], write: bool) -> None:
    """Print the table; with `write`, append its rows under `## section` in BENCHMARKS.md."""
    print(header + "\n" + "\n".join(rows))
    if write:
        for row in rows:
            append_row(section, header, row)
