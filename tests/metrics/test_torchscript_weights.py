"""The FID network's TorchScript file read without TorchScript: the same tensors as `torch.jit.load` gives,
features equal to the TorchScript network's in a PyTorch without `torch.jit.load`, and nothing but
weights unpickled from the archive."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch
from torch import nn

from cips3d.errors import CheckpointError
from cips3d.metrics.inception import CONVERTED, TORCHSCRIPT, InceptionExtractor, default_weights_path
from cips3d.metrics.inception_net import FIDInceptionV3
from cips3d.metrics.torchscript_weights import read_torchscript_tensors

TOLERANCE = 1e-4  # max |difference| relative to the largest feature, as tests/metrics/test_inception_net.py


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randint(
        0, 256, (2, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


@pytest.fixture
def no_torchscript(monkeypatch):
    """A PyTorch that has removed `torch.jit.load`."""
    monkeypatch.delattr(torch.jit, "load")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # deprecated in torch 2.x
def test_the_tensors_are_those_torchscript_loads():
    path = default_weights_path()
    ours, theirs = read_torchscript_tensors(path), torch.jit.load(str(path)).state_dict()
    assert len(ours) == 376 and set(ours) == set(theirs)
    for name, tensor in theirs.items():
        assert ours[name].dtype == tensor.dtype and torch.equal(ours[name], tensor), name


@pytest.fixture(scope="module")
def torchscript_features(images) -> torch.Tensor:
    """The TorchScript network's features (module scope: made before any test removes torch.jit.load)."""
    extractor = InceptionExtractor.load()
    assert extractor.network == TORCHSCRIPT
    return extractor.features(images)


def test_without_torchscript_the_default_network_gives_its_features(
    torchscript_features, no_torchscript, images
):
    converted = InceptionExtractor.load()
    assert isinstance(converted.module, FIDInceptionV3) and converted.network == CONVERTED
    assert converted.protocol["extractor_network"] == CONVERTED
    features = converted.features(images)
    error = (features - torchscript_features).abs().max() / torchscript_features.abs().max()
    assert torchscript_features.abs().max() > 1 and error <= TOLERANCE  # real features, and the same


def test_eager_gives_the_converted_network_beside_torchscript(images):
    eager = InceptionExtractor.load(eager=True)
    assert isinstance(eager.module, FIDInceptionV3) and eager.network == CONVERTED
    assert InceptionExtractor.load().network == TORCHSCRIPT


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # deprecated in torch 2.x
def test_another_torchscript_layout_without_torchscript_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "linear.pt"
    torch.jit.script(nn.Linear(3, 2)).save(str(path))
    assert set(read_torchscript_tensors(path)) == {"weight", "bias"}  # readable, but not the FID layout
    monkeypatch.delattr(torch.jit, "load")
    with pytest.raises(
        CheckpointError, match=r"lacks .*This PyTorch cannot run TorchScript \(no torch.jit.load\)"
    ):
        InceptionExtractor.load(path)


class _Payload:
    """A pickle that would run a command when unpickled by a permissive unpickler."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_an_archive_whose_pickle_names_code_is_refused_unrun(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "hostile.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hostile/data.pkl", pickle.dumps(_Payload(str(marker)), protocol=2))
        archive.writestr("hostile/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(CheckpointError, match="is not a readable TorchScript archive .*names posix.system"):
        read_torchscript_tensors(path)
    assert not marker.exists()
    path.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="is not a readable TorchScript archive"):
        read_torchscript_tensors(path)
