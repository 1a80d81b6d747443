"""DVC stage `prepare`: thin entry point; the work is `simclr prepare` (see simclr.cli)."""

import sys

from simclr.cli import app

if __name__ == "__main__":
    app(["prepare", *sys.argv[1:]], prog_name="stages/prepare.py")
