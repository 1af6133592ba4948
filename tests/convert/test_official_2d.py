"""Official 2D CIPS checkpoints (`CIPSskip`, and `CIPSres` of the Landscapes model): conversion, and
the converted model renders what the official algorithm renders.

No official 2D outputs exist in the fixtures, so the reference is `cips_official`, an independent
re-statement of the official forward pass in the official form.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest
import torch

from cips3d.config_2d import cips2d_preset
from cips3d.convert.official_2d import official_shapes_2d, to_official_2d
from cips3d.errors import CheckpointError, ConfigError
from cips3d.io.checkpoint import load_generator, save_generator
from cips3d.io.checkpoint2d import (
    generator2d_from_official,
    is_generator2d,
    load_generator2d,
    official_checkpoint2d,
    save_generator2d,
)
from cips3d.models.coordinates import plane_grid
from cips3d.models.generator2d import Generator2D
from tests.convert.cips_official import (
    EMB,
    FIRST,
    FOURIER,
    MAPPING,
    SIZE,
    STYLE,
    WIDTHS,
    official_coords,
    official_forward,
    official_state,
)


@pytest.fixture(scope="module", params=["skip", "res"])
def converted(request) -> tuple[dict[str, torch.Tensor], Generator2D]:
    state = official_state(residual=request.param == "res")
    return state, generator2d_from_official(state).eval()


def test_the_architecture_is_read_from_the_tensors(converted):
    config = converted[1].config
    assert (config.size, config.width, config.style_dim, config.mapping_layers) == (
        SIZE,
        None,
        STYLE,
        MAPPING,
    )
    assert (config.fourier_dim, config.embedding_dim, config.first_width) == (FOURIER, EMB, FIRST)
    assert config.widths == WIDTHS and config.embedding_align_corners is False
    residual = "to_rgb_last.bias" in converted[0]
    assert config.architecture == ("res" if residual else "skip")
    assert converted[1].num_styles == (1 + 2 * 3 + 1 if residual else 1 + 3 * 3)


def test_round_trip_gives_back_every_official_tensor_in_order(converted):
    state, G = converted
    back = to_official_2d(G.state_dict(), G.config)
    assert list(back) == list(state)
    for key, tensor in state.items():
        assert torch.equal(back[key], tensor), key


@pytest.mark.parametrize(("size", "extent"), [(SIZE, 1.0), (13, 1.0), (6, 1.4)])
def test_converted_model_renders_the_official_images(converted, size, extent):
    """Outside training the official code samples the embedding at the coordinates, also on the
    training grid (half an entry off with its alignment); a denser, sparser or wider grid too."""
    state, G = converted
    z = torch.randn(2, STYLE, generator=torch.Generator().manual_seed(1))
    expected = official_forward(state, z, official_coords(size, extent))
    with torch.no_grad():
        ours = G.synthesis(G.mapping(z), plane_grid(size, size, 2, extent))
        on_grid = G.synthesis(G.mapping(z)) if size == SIZE and extent == 1 else ours
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(on_grid, expected, atol=1e-5, rtol=1e-5)


def test_the_official_alignment_matters(converted):
    """Reading the table as is (training) or sampling it on the same grid (rendering) differ for an
    official model, so a converted model that read it as is would not render the official images."""
    state, _ = converted
    z = torch.randn(2, STYLE, generator=torch.Generator().manual_seed(1))
    rendered = official_forward(state, z, official_coords(SIZE))
    as_trained = official_forward(state, z, official_coords(SIZE), training=True)
    assert (rendered - as_trained).abs().max() > 1e-2


def test_converted_model_in_training_reads_the_table_and_matches_the_noise(converted):
    """In training at its size the official code takes the table as is; per-pixel noise is added
    before each activation with the layer's learned weight (same draws on both sides)."""
    state, G = converted
    z = torch.randn(2, STYLE, generator=torch.Generator().manual_seed(2))
    draws = torch.Generator().manual_seed(3)
    noises = [
        torch.randn(2, SIZE * SIZE, 1, generator=draws).view(2, 1, SIZE, SIZE)
        for _ in range(1 + 2 * len(WIDTHS))
    ]
    expected = official_forward(state, z, official_coords(SIZE), training=True, noises=noises)
    G.train()
    try:
        with torch.no_grad():
            ours = G.synthesis(G.mapping(z), noise="random", generator=torch.Generator().manual_seed(3))
    finally:
        G.eval()
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_official_shapes_of_the_released_architecture():
    """CIPSskip-256 (FFHQ, Churches): 122 tensors, 44,317,092 parameters (spec 8.1)."""
    config = cips2d_preset("cips-256")
    with torch.device("meta"):
        ours = Generator2D(config).state_dict()
    shapes = official_shapes_2d(config, ours)
    assert len(shapes) == 122
    assert sum(math.prod(s) for s in shapes.values()) == 44_317_092
    assert shapes["emb.input"] == (1, 512, 256, 256)
    assert shapes["lff.ffm.conv.weight"] == (512, 2, 1, 1)
    assert shapes["conv1.conv.weight"] == (1, 512, 1024, 1, 1)
    assert shapes["linears.13.conv.weight"] == (1, 128, 128, 1, 1)
    assert shapes["to_rgbs.6.bias"] == (1, 3, 1, 1)
    assert shapes["style.8.weight"] == (512, 512)


def test_training_checkpoint_files_load_with_their_arguments(tmp_path, converted):
    """An official training checkpoint: {'g', 'g_ema', 'd', 'args': Namespace}; g_ema by default."""
    state, _ = converted
    other = official_state(seed=5)
    path = tmp_path / "official.pt"
    torch.save(
        {"g": other, "g_ema": state, "d": {"x": torch.ones(1)}, "args": argparse.Namespace(size=SIZE)}, path
    )
    z = torch.randn(1, STYLE, generator=torch.Generator().manual_seed(4))
    for which, source in (("G_ema", state), ("G", other)):
        G = load_generator2d(path, which=which)
        with torch.no_grad():
            image = G.synthesis(G.mapping(z), plane_grid(SIZE, SIZE))
        torch.testing.assert_close(
            image, official_forward(source, z, official_coords(SIZE, batch=1)), atol=1e-5, rtol=1e-5
        )


def test_our_folder_keeps_the_official_alignment(tmp_path, converted):
    _, G = converted
    save_generator2d(G, tmp_path / "model")
    again = load_generator2d(tmp_path / "model")
    assert again.config == G.config
    z = torch.randn(1, STYLE)
    with torch.no_grad():
        torch.testing.assert_close(
            again.synthesis(again.mapping(z)), G.synthesis(G.mapping(z)), atol=0, rtol=0
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update({"conv1.bias": torch.zeros(1, FIRST, 1, 1)}), "'sin' or 'sinrelu'"),
        (lambda s: s.update({"linears.4.bias": torch.zeros(1, 12, 1, 1)}), "'sin' or 'sinrelu'"),
        (lambda s: s.pop("linears.3.noise.weight"), r"missing 1 key \(linears\.3\.noise\.weight\)"),
        (lambda s: s.update({"lff.ffm.conv.weight": torch.ones(FOURIER, 3, 1, 1)}), "reads 3 coordinates"),
        (lambda s: s.update({"to_rgbs.0.conv.weight": torch.ones(1, 3, 5, 1, 1)}), "wrongly shaped"),
    ],
)
def test_checkpoints_of_another_kind_are_refused_by_name(change, message):
    state = official_state()
    change(state)
    with pytest.raises(CheckpointError, match=message):
        generator2d_from_official(state)


def test_files_that_hold_no_2d_generator_are_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"g_ema": {"siren.network.0.linear.weight": torch.ones(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="not an official 2D CIPS generator"):
        load_generator2d(path)
    torch.save({"model": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match="holds no official 2D CIPS generator"):
        load_generator2d(path)


def test_a_panorama_model_has_no_official_form():
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=64)
    with pytest.raises(ConfigError, match="no cylinder coordinates"):
        official_checkpoint2d(Generator2D(config))


def test_2d_folders_are_told_from_3d_ones(tmp_path, converted, small_G):
    save_generator2d(converted[1], tmp_path / "two")
    save_generator(small_G, tmp_path / "three")
    assert is_generator2d(tmp_path / "two") and is_generator2d(tmp_path / "two" / "model.safetensors")
    assert not is_generator2d(tmp_path / "three") and not is_generator2d(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="is a 2D CIPS model: render it with cips3d sample2d"):
        load_generator(tmp_path / "two")
    with pytest.raises(CheckpointError, match="is a CIPS-3D model, not a 2D one"):
        load_generator2d(tmp_path / "three")
