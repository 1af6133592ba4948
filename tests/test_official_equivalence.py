"""Every official fixture case, replayed through the public API with the official draws injected.

Definition of correct (fixtures README): img, aux_img and nerf_feature within 1e-4 of the official
float32 outputs; we also check cameras, pitch/yaw and styles. The deterministic variants check our
no-randomness mode against the official code fed zero jitter and linspace importance draws.
"""

from __future__ import annotations

import copy

import pytest
import torch

from cips3d import Camera, PoseConfig, RenderConfig, RenderDraws
from tests.conftest import load_fixture

ATOL = 1e-4
OFFICIAL = load_fixture("official", "inputs.pt"), load_fixture("official", "outputs.pt")
DENSE = load_fixture("official-dense", "inputs.pt"), load_fixture("official-dense", "outputs.pt")


def replay(G, inputs, case, **render_overrides):
    """Run one official case: same latents, call options, camera and injected draws."""
    kwargs = case["call_kwargs"]
    explicit = case.get("method", "forward") == "forward_camera_pos_and_lookup"
    render = RenderConfig.from_official_kwargs(kwargs, **render_overrides)
    draws = RenderDraws.from_official_order(
        [d["value"] for d in case["rng_draws"]], hierarchical=render.hierarchical, camera_drawn=not explicit
    )
    camera = Camera(origin=kwargs["camera_pos"], forward=kwargs["camera_lookup"]) if explicit else None
    with torch.no_grad():
        return G(
            inputs["z_nerf"],
            inputs["z_inr"],
            camera=camera,
            pose=PoseConfig.from_official_kwargs(kwargs),
            render=render,
            psi=float(kwargs["psi"]),
            truncation_mean=case.get("avg_style_dict"),
            draws=draws,
        )


def assert_close(actual, expected, name, atol=ATOL):
    err = (actual - expected).abs().max().item()
    assert err <= atol, f"{name}: max abs error {err:.2e} > {atol:.0e}"


def check_case(out, ref):
    batch = out.img.shape[0]
    for name in ("img", "aux_img", "nerf_feature", "cam2world", "camera_origin"):
        assert_close(getattr(out, name), ref[name], name)
    # Official pitch_yaw rows are duplicated for the aux half of its 2B batch.
    assert_close(out.pitch_yaw, ref["pitch_yaw"][:batch], "pitch_yaw")
    assert_close(out.pitch_yaw, ref["pitch_yaw"][batch:], "pitch_yaw (aux rows)")


def check_styles(G, inputs, ref_styles):
    styles = G.mapping(inputs["z_nerf"], inputs["z_inr"])
    assert set(styles) == set(ref_styles)
    for name, value in ref_styles.items():
        assert_close(styles[name], value, f"style {name}", atol=1e-5)


@pytest.mark.parametrize("case", OFFICIAL[0]["cases"], ids=lambda c: c["key"])
def test_official_case(small_G, case):
    inputs, outputs = OFFICIAL
    check_case(replay(small_G, inputs, case), outputs[case["key"]])


@pytest.mark.parametrize("case", OFFICIAL[0]["cases"], ids=lambda c: c["key"])
def test_official_deterministic_variant(small_G, case):
    inputs, outputs = OFFICIAL
    ref = outputs[case["key"]]["deterministic_variant"]
    kwargs = case["call_kwargs"]
    with torch.no_grad():
        out = small_G(
            inputs["z_nerf"],
            inputs["z_inr"],
            pose=PoseConfig.from_official_kwargs(kwargs),
            render=RenderConfig.from_official_kwargs(kwargs, deterministic=True),
        )
    for name in ("img", "aux_img", "nerf_feature"):
        assert_close(getattr(out, name), ref[name], name)


def test_official_styles(small_G):
    check_styles(small_G, OFFICIAL[0], OFFICIAL[1]["style_dict"])


@pytest.mark.parametrize("case", DENSE[0]["cases"], ids=lambda c: c["key"])
def test_dense_case(dense_G, case):
    inputs, outputs = DENSE
    ref = outputs[case["key"]]
    out = replay(dense_G, inputs, case)
    check_case(out, ref)
    if "truncated_style_dict" in ref:
        for name, value in ref["truncated_style_dict"].items():
            assert_close(out.styles[name], value, f"truncated style {name}", atol=1e-5)


def test_dense_styles(dense_G):
    check_styles(dense_G, DENSE[0], DENSE[1]["style_dict"])


def test_hierarchical_sampling_matters_in_dense_fixture(dense_G):
    """Guard on the fixture itself: switching importance sampling off must break the match, so the
    dense cases really test it (the README quotes 0.18 to 0.20)."""
    inputs, outputs = DENSE
    case = next(c for c in inputs["cases"] if c["key"] == "cam0_frontal_hier1_s32")
    out = replay(dense_G, inputs, case)
    no_hier = RenderConfig.from_official_kwargs(case["call_kwargs"], hierarchical=False)
    with torch.no_grad():
        coarse_only = dense_G(
            inputs["z_nerf"],
            inputs["z_inr"],
            pose=PoseConfig.from_official_kwargs(case["call_kwargs"]),
            render=no_hier,
            draws=RenderDraws(jitter_u=case["rng_draws"][0]["value"]),
        )
    assert (out.img - outputs[case["key"]]["img"]).abs().max() < ATOL
    assert (coarse_only.img - outputs[case["key"]]["img"]).abs().max() > 0.1


@pytest.mark.parametrize("case", DENSE[0]["cases"], ids=lambda c: c["key"])
def test_dense_case_in_float64_stays_within_the_official_float32_noise(dense_G, case):
    """The fixture README measured float64 replays within 8.7e-6 (img) and 1.6e-5 (feature) of the
    official float32 outputs; a float64 copy of our model must land there too."""
    inputs, outputs = DENSE
    G64 = copy.deepcopy(dense_G).double()
    as64 = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in inputs.items()}
    out = replay(G64, as64, case)
    ref = outputs[case["key"]]
    assert_close(out.img, ref["img"].double(), "img", atol=2e-5)
    assert_close(out.nerf_feature, ref["nerf_feature"].double(), "nerf_feature", atol=3e-5)
