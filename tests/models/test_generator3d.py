"""Generator3D: official size and init, one forward path (chunks, cameras, seeds), styles, truncation."""

from __future__ import annotations

import math

import pytest
import torch

from cips3d import Camera, ConfigError, Generator3D, PoseConfig, RenderConfig, generator_preset
from cips3d.convert.official import to_official
from cips3d.seeding import generators_for_seeds
from tests.conftest import load_fixture

RENDER = RenderConfig(img_size=16)


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_ffhq_preset_has_official_parameter_counts():
    G = Generator3D(generator_preset("ffhq"), initialize=False)
    assert params(G) == 11_287_743
    assert params(G.field) == 110_049
    assert params(G.nerf_mapping) == 82_432
    assert params(G.decoder) == 8_985_723
    assert params(G.inr_mapping) == 2_109_440
    assert params(G.aux_head) == 99


def test_official_init_is_reproduced_bit_for_bit(small_config):
    """torch.manual_seed(0) + the official constructor gave the fixture weights (with the to-RGB and
    aux weights then scaled by 100 and 25); the same seed in our init gives the same tensors."""
    G = Generator3D(small_config, generator=torch.Generator().manual_seed(0))
    ours = to_official(G.state_dict(), small_config)
    reference = load_fixture("official", "small_G_state_dict.pt")
    assert list(ours) == list(reference)
    for name, expected in reference.items():
        actual = ours[name]
        if name.startswith("inr_net.to_rgbs.") and name.endswith(".weight"):
            actual = actual * 100.0
        elif name == "aux_to_rbg.0.weight":
            actual = actual * 25.0
        assert torch.equal(actual, expected), name


def test_init_depends_only_on_the_given_generator():
    config = generator_preset("tiny")
    torch.manual_seed(123)
    a = Generator3D(config, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(456)
    b = Generator3D(config, generator=torch.Generator().manual_seed(5))
    c = Generator3D(config, generator=torch.Generator().manual_seed(6))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.decoder.blocks[0].mod1.weight, c.decoder.blocks[0].mod1.weight)


def test_all_nine_inr_blocks_run_at_small_sizes(tiny_G):
    calls = []
    hooks = [b.register_forward_hook(lambda *_: calls.append(1)) for b in tiny_G.decoder.blocks]
    z = tiny_G.sample_latents(1, torch.Generator().manual_seed(0))
    tiny_G(*z, render=RenderConfig(img_size=8, deterministic=True))
    for h in hooks:
        h.remove()
    assert len(calls) == 9


def render(G, seeds, render=RENDER, pose=None, camera=None, **kw):
    gens = generators_for_seeds(seeds)
    z = G.sample_latents(len(seeds), gens)
    with torch.no_grad():
        return G(
            *z,
            render=render,
            pose=pose or PoseConfig(),
            camera=camera,
            generator=gens,
            **kw,
        )


def test_chunked_equals_unchunked(small_G):
    whole = render(small_G, [1, 2, 3], RenderConfig(img_size=16, chunk_rows=None))
    chunked = render(small_G, [1, 2, 3], RenderConfig(img_size=16, chunk_rows=100))
    for name in ("img", "aux_img", "nerf_feature", "depth", "opacity"):
        assert torch.allclose(getattr(whole, name), getattr(chunked, name), atol=1e-5, rtol=0), name
    assert not torch.equal(whole.img[0], whole.img[1])


def test_deterministic_mode_repeats_bit_exactly(small_G):
    cfg = RenderConfig(img_size=16, deterministic=True)
    z = small_G.sample_latents(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = small_G(*z, render=cfg, pose=PoseConfig.fixed())
        b = small_G(*z, render=cfg, pose=PoseConfig.fixed(), generator=torch.Generator().manual_seed(9))
    assert torch.equal(a.img, b.img) and torch.equal(a.depth, b.depth)


def test_random_mode_varies_with_the_draws(small_G):
    z = small_G.sample_latents(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = small_G(*z, render=RENDER, pose=PoseConfig.fixed(), generator=torch.Generator().manual_seed(1))
        b = small_G(*z, render=RENDER, pose=PoseConfig.fixed(), generator=torch.Generator().manual_seed(2))
    assert (a.img - b.img).abs().max() > 1e-3


def test_a_seed_gives_the_same_image_at_batch_1_and_4(small_G):
    single = render(small_G, [7])
    batch = render(small_G, [3, 7, 11, 12])
    assert torch.allclose(single.img[0], batch.img[1], atol=1e-5, rtol=0)
    assert torch.allclose(single.pitch_yaw[0], batch.pitch_yaw[1])


def test_explicit_camera_equal_to_sampled_pose_gives_the_same_image(small_G):
    yaw, pitch = math.pi / 2 + 0.25, math.pi / 2 - 0.1
    cfg = RenderConfig(img_size=16, deterministic=True)
    z = small_G.sample_latents(2, torch.Generator().manual_seed(4))
    by_angles = Camera.from_angles(yaw, pitch, batch=2)
    position = by_angles.origin.clone()
    explicit = Camera(origin=position, forward=-position, up=torch.tensor([0.0, 1.0, 0.0]))
    with torch.no_grad():
        sampled = small_G(*z, render=cfg, pose=PoseConfig.fixed(yaw, pitch))
        a = small_G(*z, render=cfg, camera=by_angles)
        b = small_G(*z, render=cfg, camera=explicit)
    assert torch.equal(sampled.img, a.img)
    assert torch.allclose(sampled.img, b.img, atol=1e-5, rtol=0)
    assert torch.allclose(sampled.cam2world, b.cam2world, atol=1e-6)
    assert torch.allclose(explicit.position_angles(), torch.tensor([[pitch, yaw]] * 2), atol=1e-6)


def test_explicit_cameras_any_batch_and_up_vector(small_G):
    """A 90-degree roll of the up vector turns the image by 90 degrees (the square pixel grid is
    symmetric), and each camera of a batch gets its own up vector."""
    cfg = RenderConfig(img_size=15, deterministic=True)
    z = small_G.sample_latents(2, torch.Generator().manual_seed(2))
    origin = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    upright = Camera(origin=origin, forward=-origin)
    rolled = Camera(origin=origin, forward=-origin, up=torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    with torch.no_grad():
        a = small_G(*z, render=cfg, camera=upright)
        b = small_G(*z, render=cfg, camera=rolled)
    assert torch.equal(a.img[0], b.img[0])
    # Up = +x: the image's top now shows what was on the right, so the picture turns clockwise.
    turned = torch.rot90(a.img[1], k=1, dims=(1, 2))
    assert torch.allclose(b.img[1], turned, atol=1e-5), (b.img[1] - turned).abs().max()


def test_style_mixing_nerf_from_one_latent_inr_from_another(small_G):
    cfg = RenderConfig(img_size=16, deterministic=True)
    za = small_G.sample_latents(1, torch.Generator().manual_seed(1))
    zb = small_G.sample_latents(1, torch.Generator().manual_seed(2))
    sa, sb = small_G.mapping(*za), small_G.mapping(*zb)
    mixed = {n: (sa[n] if n.startswith("nerf_") else sb[n]) for n in sa}
    cam = Camera.from_angles(math.pi / 2, math.pi / 2)
    with torch.no_grad():
        a, b, m = (small_G.synthesis(s, cam, cfg) for s in (sa, sb, mixed))
    assert torch.equal(m.nerf_feature, a.nerf_feature)  # geometry and NeRF appearance from A
    assert torch.equal(m.aux_img, a.aux_img)
    assert (m.img - a.img).abs().max() > 1e-3  # the decoder styles from B change the final image
    per_layer = dict(sa) | {"inr_w1024_1": sb["inr_w1024_1"]}
    with torch.no_grad():
        p = small_G.synthesis(per_layer, cam, cfg)
    assert (p.img - a.img).abs().max() > 1e-5 and torch.equal(p.nerf_feature, a.nerf_feature)


def test_styles_are_one_vector_per_network(small_G):
    styles = small_G.mapping(*small_G.sample_latents(3, torch.Generator().manual_seed(0)))
    assert len(styles) == 21
    assert all(torch.equal(styles[n], styles["nerf_w0"]) for n in ("nerf_w1", "nerf_rgb"))
    assert all(torch.equal(v, styles["inr_w4_0"]) for n, v in styles.items() if n.startswith("inr_"))


def test_truncation_mean_is_a_seeded_saved_buffer(small_config):
    G = Generator3D(small_config)
    state = G.state_dict()
    assert "truncation_mean_nerf" in state and "truncation_mean_inr" in state
    before = G.truncation_mean_inr.clone()
    G.update_truncation_mean()
    assert torch.equal(before, G.truncation_mean_inr)  # same seed, same mean
    z = G.sample_latents(4000, torch.Generator().manual_seed(77))
    with torch.no_grad():
        fresh = G.inr_mapping(z[1]).mean(0)
    assert torch.allclose(fresh, G.truncation_mean_inr, atol=0.05)  # it is the mean of mapped latents


def test_truncation_psi(small_G):
    z = small_G.sample_latents(3, torch.Generator().manual_seed(0))
    styles = small_G.mapping(*z)
    centre = small_G.truncation_centre()
    zero = small_G.truncate(styles, 0.0)
    assert all(torch.allclose(zero[n], centre[n].expand_as(zero[n])) for n in zero)
    half = small_G.truncate(styles, 0.5)
    assert torch.allclose(half["inr_w8_1"], (styles["inr_w8_1"] + centre["inr_w8_1"]) / 2)
    assert small_G.truncate(styles, 1.0)["nerf_w0"] is styles["nerf_w0"]
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError):
            small_G.truncate(styles, bad)


def test_mismatched_batches_are_refused(small_G):
    styles = small_G.mapping(*small_G.sample_latents(2, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="batch"):
        small_G.synthesis(styles, Camera.from_angles(1.5, 1.5, batch=3), RENDER)


def test_latents_of_the_wrong_shape_or_type_are_named(tiny_G):
    z_nerf, z_inr = tiny_G.sample_latents(2, torch.Generator().manual_seed(0))
    render = RenderConfig(img_size=4, num_steps=3)
    cases = [
        ((z_nerf[:0], z_inr[:0]), "z_nerf must be \\[B, 256\\] with B >= 1, got \\[0, 256\\]"),
        ((z_nerf[:, :128], z_inr), "z_nerf must be \\[B, 256\\] with B >= 1, got \\[2, 128\\]"),
        ((z_nerf, z_inr[0]), "z_inr must be \\[B, 512\\]"),
        ((z_nerf.double(), z_inr), "z_nerf must be torch.float32 like the model's weights, got .*float64"),
        ((z_nerf, z_inr[:1]), "z_nerf and z_inr must have one row per image, got 2 and 1"),
    ]
    for latents, message in cases:
        with pytest.raises(ConfigError, match=message):
            tiny_G(*latents, render=render)
