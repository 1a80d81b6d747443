"""SimCLR (Chen, Kornblith, Norouzi, Hinton, 2020) as a DVC pipeline: see README.md."""

__version__ = "0.1.0"
