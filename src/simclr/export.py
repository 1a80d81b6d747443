"""``simclr export``: the pretrained encoder f (not the projection head g) as a plain state dict in
safetensors, loadable with torch + torchvision (+ safetensors) alone, without this package.

The file holds exactly ``model.encoder.state_dict()`` of ``models/encoder.pt``, every tensor on
the CPU and contiguous, BatchNorm running statistics and ``num_batches_tracked`` included:

* ``resnet18/34/50``: torchvision's own key names (``conv1.weight``, ``bn1.running_mean``,
  ``layer1.0.conv1.weight``, ...), no ``fc.*``: load it into ``torchvision.models.<encoder>
  (weights=None)`` with ``fc = nn.Identity()`` and, when ``cifar_stem`` is ``"true"``,
  ``conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)`` and ``maxpool = nn.Identity()``.
* ``small_cnn``: ``features.<i>.*`` of an ``nn.Sequential`` of four (Conv2d 3x3 no bias,
  BatchNorm2d, ReLU) blocks, widths w, 2w, 4w, 8w, stride 1 then 2, 2, 2; h is the global
  average pool of its output.
* ``small_resnet``: ``features.0.*`` / ``features.1.*`` the stride-2 stem (Conv2d 3x3, BatchNorm2d),
  then ``features.3`` .. ``features.5`` three basic blocks (``body.{0,1,3,4}.*``: conv, BN, ReLU, conv,
  BN; ``shortcut.{0,1}.*``: 1x1 conv and BN), widths 2w, 4w, 8w, each stride 2 (docs/encoder.md's
  ``export-small-resnet`` snippet rebuilds it in plain torch).

Metadata (safetensors' str -> str header; ``safe_open(path, "pt").metadata()``): ``format``
(``simclr-encoder-safetensors/1``), ``encoder``, ``width``, ``cifar_stem`` (``true``/``false``),
``image_size`` (the pretraining images' side), ``feature_dim`` (h's dimension), ``input`` (the
input convention, :data:`INPUT`) and ``source`` (``sha256:<hex>`` of the encoder.pt exported).

Input: as the pipeline feeds f (``simclr.core.evaluate.extract_features`` via
``simclr.core.augment.to_float``): float32 NCHW RGB in [0, 1], i.e. uint8 images / 255, with no
mean/std normalisation, images of ``image_size`` x ``image_size`` (``prepare`` resizes the shorter
side bicubically and centre-crops), the network in ``eval()`` mode.
"""

from __future__ import annotations

from pathlib import Path

from simclr.core.atomic import write_atomic
from simclr.core.errors import SimCLRError

FORMAT = "simclr-encoder-safetensors/1"
INPUT = ("float32 NCHW RGB in [0, 1] (uint8 / 255), no mean/std normalisation, "
         "image_size x image_size, network in eval mode")


def _check_out_path(encoder_path: Path, out_path: Path) -> None:
    if out_path.is_dir():
        raise SimCLRError(f"{out_path} is a directory; give the path of the .safetensors file to write")
    if not out_path.parent.is_dir():
        raise SimCLRError(f"{out_path}: its folder {out_path.parent} does not exist; create it or choose another path")
    if out_path.exists() and encoder_path.exists() and out_path.resolve() == encoder_path.resolve():
        raise SimCLRError(f"{out_path} is the encoder file being exported; choose another output path")


def export_encoder(encoder_path: str | Path, out_path: str | Path) -> dict[str, str]:
    """Write encoder f of ``encoder_path`` (an encoder.pt) to ``out_path`` (safetensors); returns the metadata."""
    encoder_path, out_path = Path(encoder_path), Path(out_path)
    _check_out_path(encoder_path, out_path)  # before importing torch: a wrong path fails at once
    from safetensors.torch import save_file

    from simclr.core.data import sha256_file
    from simclr.core.model import load_model

    model = load_model(encoder_path)  # CheckpointError (one line) when missing or unusable
    cfg = model.config
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.encoder.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "encoder": cfg.encoder,
        "width": str(cfg.width),
        "cifar_stem": "true" if cfg.cifar_stem else "false",
        "image_size": str(cfg.image_size),
        "feature_dim": str(model.encoder.out_dim),
        "input": INPUT,
        "source": f"sha256:{sha256_file(encoder_path)}",
    }
    try:
        write_atomic(out_path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    except OSError as exc:
        raise SimCLRError(f"{out_path} cannot be written ({exc.strerror or type(exc).__name__})") from None
    return metadata
