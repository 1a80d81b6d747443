"""DVC stage `check_params`: thin entry point; the work is `simclr check-params` (see simclr.cli)."""

import sys

from simclr.cli import app

if __name__ == "__main__":
    app(["check-params", *sys.argv[1:]], prog_name="stages/check_params.py")
