"""DVC stage `pretrain`: thin entry point; the work is `simclr pretrain` (see simclr.cli)."""

import sys

from simclr.cli import app

if __name__ == "__main__":
    app(["pretrain", *sys.argv[1:]], prog_name="stages/pretrain.py")
