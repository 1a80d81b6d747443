"""DVC stage `linear_eval`: thin entry point; the work is `simclr linear-eval` (see simclr.cli)."""

import sys

from simclr.cli import app

if __name__ == "__main__":
    app(["linear-eval", *sys.argv[1:]], prog_name="stages/linear_eval.py")
