"""DVC stages `ablate_<grid>@<value>`: thin entry point; the work is `simclr ablate` (see simclr.cli)."""

import sys

from simclr.cli import app

if __name__ == "__main__":
    app(["ablate", *sys.argv[1:]], prog_name="stages/ablate.py")
