"""Imported first by every stage: this checkout's src/ goes ahead of any installed copy of simclr.

`pip install -e .` points `import simclr` at the checkout it was run in. DVC runs queued and
temporary experiments (`dvc exp run --queue` / `--temp`) in a copy of the project, so without
this the copy's stages would run the workspace's code, which may differ from the code the
experiment was queued with and which dvc.lock records beside its results.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
