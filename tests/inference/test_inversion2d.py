"""2D inversion: the model's own image is found again from the mean style, in W and in W+, and a
per-layer w with equal rows is the shared w."""

from __future__ import annotations

import pytest
import torch

from cips3d.config_2d import cips2d_preset
from cips3d.errors import ConfigError
from cips3d.inference.inversion2d import Inversion2DConfig, invert2d, w_statistics
from cips3d.models.generator2d import Generator2D


@pytest.fixture(scope="module")
def G() -> Generator2D:
    return Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)).eval()


@pytest.fixture(scope="module")
def target(G) -> torch.Tensor:
    with torch.no_grad():
        return G(G.sample_latents(1, torch.Generator().manual_seed(7)))


@torch.no_grad()
def test_a_per_layer_w_with_equal_rows_is_the_shared_w(G):
    w = G.mapping(G.sample_latents(2, torch.Generator().manual_seed(3)))
    rows = w[:, None].expand(-1, G.num_styles, -1)
    assert G.num_styles == 1 + 3 * 3
    assert torch.equal(G.synthesis(rows), G.synthesis(w))
    mixed = rows.clone()
    mixed[:, -1] = w.flip(0)  # another style for the last to-RGB head only
    assert not torch.equal(G.synthesis(mixed), G.synthesis(w))
    with pytest.raises(ConfigError, match=r"\[B, 10, D\]"):
        G.synthesis(rows[:, :4])


@pytest.mark.parametrize("per_layer", [False, True])
def test_the_models_own_image_is_found_again(G, target, per_layer):
    mean, spread = w_statistics(G)
    with torch.no_grad():
        start_error = (G.synthesis(mean[None]) - target).abs().mean()
    result = invert2d(G, target, Inversion2DConfig(steps=80, per_layer=per_layer))
    assert result.w.shape == ((1, G.num_styles, 64) if per_layer else (1, 64)) and spread > 0
    assert len(result.losses) == 80 and result.losses[-1] < result.losses[0] / 10
    error = (result.image - target).abs().mean()
    assert error < start_error / 2.5, (float(error), float(start_error))
    assert all(p.requires_grad for p in G.parameters())  # the model's flags are restored


def test_a_target_of_another_shape_is_refused(G):
    with pytest.raises(ConfigError, match=r"\[1, 3, 32, 32\]"):
        invert2d(G, torch.zeros(1, 3, 16, 16), Inversion2DConfig(steps=1))
    with pytest.warns(UserWarning, match=r"if it is on the \[0, 1\] scale, give x \* 2 - 1"):
        invert2d(G, torch.rand(1, 3, 32, 32), Inversion2DConfig(steps=1))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"steps": 0}, r"steps \(--steps\) must be a whole number of 1 or more, got 0"),
        ({"steps": True}, "steps must be a whole number, got True"),
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"lr": float("nan")}, r"the learning rate \(--lr\) must be positive, got nan"),
        ({"per_layer": 2}, "per_layer must be True or False, got 2"),
        ({"lr": 1e38}, r"the learning rate \(--lr\) is at most 10 .*, got 1e\+38"),  # Adam overflowed
    ],
    ids=["zero-steps", "bool-steps", "text-lr", "nan-lr", "per-layer", "huge-lr"],
)
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        Inversion2DConfig(**settings)


def test_a_fitted_style_of_the_other_kind_of_model_is_named_as_such(tmp_path, tiny_G):
    from safetensors.torch import save_file  # noqa: PLC0415

    from cips3d.errors import CheckpointError  # noqa: PLC0415
    from cips3d.inference.inversion import Inversion, load_inversion, save_inversion  # noqa: PLC0415
    from cips3d.inference.inversion2d import load_fitted_w  # noqa: PLC0415
    from cips3d.inference.multiview import styles_for_seeds  # noqa: PLC0415

    save_inversion(Inversion(styles_for_seeds(tiny_G, [1]), 1.5, 1.5, 12.0), tmp_path / "styles.safetensors")
    G2 = Generator2D(cips2d_preset("cips-tiny"))
    with pytest.raises(CheckpointError, match="holds styles fitted to a 3D model .*cips3d invert2d writes"):
        load_fitted_w(tmp_path / "styles.safetensors", G2)  # was "holds no 'w', not a style of this model"
    save_file({"w": torch.zeros(1, G2.config.style_dim)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match="holds a fitted 2D CIPS style .*for a 2D model"):
        load_inversion(tmp_path / "w.safetensors", tiny_G)  # was "not a file of inverted styles"
