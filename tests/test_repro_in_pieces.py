"""scripts/repro_in_pieces.py: at the limit the whole process group goes, grandchildren too."""

import importlib.util
import os
import time

from support import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("repro_in_pieces", ROOT / "scripts/repro_in_pieces.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


def test_a_piece_over_its_limit_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    cmd = ["bash", "-c", f"sleep 60 & echo $! > {pidfile}; wait"]  # like dvc -> accelerate -> python
    start = time.monotonic()
    assert load_script().run_piece(cmd, seconds=2) is None
    assert time.monotonic() - start < 30
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(grandchild)


def test_a_piece_within_its_limit_returns_the_exit_code():
    assert load_script().run_piece(["bash", "-c", "exit 3"], seconds=10) == 3
