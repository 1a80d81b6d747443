"""What the project says about itself is declared once: the citation's version and licence follow
the package's (simclr.__version__, pyproject.toml), and the licence file is the one they name."""

import tomllib

import yaml
from support import ROOT

import simclr


def test_the_citation_names_the_package_version_and_licence():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert citation["version"] == simclr.__version__
    assert citation["license"] == project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    paper = citation["references"][0]
    assert paper["title"] == "A Simple Framework for Contrastive Learning of Visual Representations"
    assert [a["family-names"] for a in paper["authors"]] == ["Chen", "Kornblith", "Norouzi", "Hinton"]
