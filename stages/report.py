"""DVC stage `report`: thin entry point; the work is `simclr report` (see simclr.cli)."""

import sys

from simclr.cli import app

if __name__ == "__main__":
    app(["report", *sys.argv[1:]], prog_name="stages/report.py")
