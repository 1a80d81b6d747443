"""``simclr export``: encoder f as safetensors that torch + torchvision load without this package.

The export snippets below (docs/encoder.md) are run verbatim in a child process where ``simclr`` (and the pipeline's
other dependencies) cannot be imported; their features must equal the pipeline's own."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from support import BIN, ROOT, run

from simclr.core.evaluate import extract_features
from simclr.core.model import ModelConfig, SimCLRModel, load_model, save_model

SIMCLR = str(BIN / "simclr")


# The docs snippets, run as they are: each reads models/encoder.safetensors and the
# prepared test images data/prepared/test_x.npy (uint8 NHWC RGB) of the folder it runs in.
def doc_snippet(name: str) -> str:
    """The ```python block after `<!-- snippet: NAME -->` in docs/encoder.md, as users copy it."""
    text = (ROOT / "docs/encoder.md").read_text()
    match = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"docs/encoder.md has no snippet {name}"
    return match.group(1)


SNIPPETS = {"small_cnn": doc_snippet("export-small-cnn"), "small_resnet": doc_snippet("export-small-resnet"),
            "resnet18": doc_snippet("export-resnet")}

# The child: nothing of this project (nor of its heavy dependencies) can be imported, first thing.
# A None in sys.modules is how Python spells "not installed": `import x` raises ModuleNotFoundError
# and importlib.util.find_spec("x") is None (torch._dynamo probes pandas that way at import).
CHILD = """\
import sys

BLOCKED = ("simclr", "dvc", "seaborn", "accelerate", "pandas")
sys.modules.update(dict.fromkeys(BLOCKED))
try:
    import simclr  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("simclr is importable in the child")

import json
import os

import torch

for case, snippet in json.loads(sys.argv[1]):
    os.chdir(case)
    scope = {"__name__": "__readme__"}
    exec(compile(snippet, "docs/encoder.md snippet", "exec"), scope)
    torch.save(scope["h"], "h.pt")
assert all(sys.modules[name] is None for name in BLOCKED)
assert not [m for m in sys.modules if m.partition(".")[0] in BLOCKED and m not in BLOCKED]
"""

CASES = {  # name: (encoder, width, cifar_stem, image_size)
    "small_cnn": ("small_cnn", 8, True, 32),
    "small_resnet": ("small_resnet", 8, True, 32),
    "resnet18_cifar": ("resnet18", 8, True, 32),
    "resnet18_imagenet_stem": ("resnet18", 8, False, 64),
}


def _random_model(encoder: str, width: int, cifar_stem: bool, image_size: int) -> SimCLRModel:
    """Random weights and non-trivial BatchNorm affine parameters and running statistics."""
    torch.manual_seed(0)
    model = SimCLRModel(ModelConfig(encoder, width, cifar_stem, "mlp", 32, 16, 2, image_size))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.momentum = 0.5
        model.train()
        for _ in range(3):
            model(torch.rand(8, 3, image_size, image_size) * 2)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each case exported by `simclr export` (in parallel) and then loaded by the docs/encoder.md snippet in a
    child without this package; returns {name: (encoder.pt, folder)}."""
    root = tmp_path_factory.mktemp("export")
    cases, procs = {}, []
    for name, (encoder, width, cifar_stem, size) in CASES.items():
        folder = root / name
        (folder / "models").mkdir(parents=True)
        (folder / "data" / "prepared").mkdir(parents=True)
        enc = folder / "encoder.pt"
        save_model(_random_model(encoder, width, cifar_stem, size), enc)
        images = np.random.default_rng(1).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
        np.save(folder / "data" / "prepared" / "test_x.npy", images)
        out = folder / "models" / "encoder.safetensors"
        procs.append(subprocess.Popen([SIMCLR, "export", str(enc), str(out)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
        cases[name] = (enc, folder)
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert len(stdout.splitlines()) == 1 and stdout.startswith("wrote "), stdout
    snippets = [(str(folder), SNIPPETS[CASES[name][0]]) for name, (_, folder) in cases.items()]
    child = root / "child.py"
    child.write_text(CHILD)
    run([sys.executable, str(child), json.dumps(snippets)], cwd=root, timeout=120)
    return cases


@pytest.mark.parametrize("name", list(CASES))
def test_doc_snippet_reproduces_the_pipeline_features(exported, name):
    enc, folder = exported[name]
    encoder, width, cifar_stem, size = CASES[name]
    out = folder / "models" / "encoder.safetensors"
    model = load_model(enc).eval()
    images = np.load(folder / "data" / "prepared" / "test_x.npy")
    h_pipeline, _ = extract_features(model, images, torch.device("cpu"))  # how the stages feed f
    with torch.no_grad():
        h_direct = model.encoder(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    h_child = torch.load(folder / "h.pt", weights_only=True)
    assert h_child.shape == (8, model.encoder.out_dim)
    assert h_child.std() > 0
    assert (h_child - h_pipeline).abs().max().item() <= 1e-6
    assert (h_child - h_direct).abs().max().item() <= 1e-6

    with safe_open(out, framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
        running_var = [f.get_tensor(k) for k in keys if k.endswith("running_var")]
    assert meta == {
        "format": "simclr-encoder-safetensors/1", "encoder": encoder, "width": str(width),
        "cifar_stem": "true" if cifar_stem else "false", "image_size": str(size),
        "feature_dim": str(model.encoder.out_dim), "input": meta["input"],
        "source": "sha256:" + hashlib.sha256(enc.read_bytes()).hexdigest(),
    }
    assert "[0, 1]" in meta["input"] and "no mean/std" in meta["input"]
    assert keys == set(model.encoder.state_dict()) and not any(k.startswith("fc.") for k in keys)
    assert running_var and not all(torch.equal(v, torch.ones_like(v)) for v in running_var)  # stats were trained


def test_the_load_snippet_gives_h_and_z_of_the_saved_model(tmp_path, monkeypatch):
    """docs/encoder.md's first snippet (with this package), run as written in a folder with models/encoder.pt."""
    model = _random_model("small_cnn", 8, True, 32)
    (tmp_path / "models").mkdir()
    save_model(model, tmp_path / "models" / "encoder.pt")
    monkeypatch.chdir(tmp_path)
    images = torch.rand(4, 3, 32, 32)
    scope = {"images": images}
    exec(compile(doc_snippet("load-encoder"), "docs/encoder.md snippet", "exec"), scope)
    with torch.no_grad():
        h, z = model(images)
    assert torch.equal(scope["h"], h) and torch.equal(scope["z"], z) and torch.equal(scope["features"], h)


def test_missing_encoder_is_one_error_line_and_leaves_the_output(tmp_path):
    out = tmp_path / "encoder.safetensors"
    out.write_bytes(b"previous")
    proc = run([SIMCLR, "export", str(tmp_path / "nope.pt"), str(out)], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "nope.pt" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.safetensors"]


@pytest.mark.parametrize("where", ["missing folder", "a directory"])
def test_bad_output_path_is_one_error_line_and_writes_nothing(tmp_path, where):
    enc = tmp_path / "encoder.pt"
    enc.write_bytes(b"not read: the output path is checked first")
    out = tmp_path / "no" / "such" / "encoder.safetensors" if where == "missing folder" else tmp_path / "out"
    if where == "a directory":
        out.mkdir()
    proc = run([SIMCLR, "export", str(enc), str(out)], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert str(out) in proc.stderr
    assert not (tmp_path / "no").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["encoder.pt"] if where == "missing folder"
                                                           else ["encoder.pt", "out"])


def test_help_has_no_double_backquotes():
    proc = run([SIMCLR, "export", "--help"], cwd=Path.cwd())
    assert "``" not in proc.stdout and "safetensors state dict" in proc.stdout
