"""What Generator3D says when a Python caller hands it something it cannot use: one ConfigError
naming the cause (it used to be torch's own errors, or misleading words)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from cips3d import (
    Camera,
    ConfigError,
    Generator3D,
    PoseConfig,
    RenderConfig,
    RenderDraws,
    generators_for_seeds,
)
from cips3d.config import MappingConfig
from cips3d.config_2d import cips2d_preset
from cips3d.inference.geometry import normals_from_depth
from cips3d.inference.inversion import InversionConfig, invert, style_spread
from cips3d.inference.inversion2d import Inversion2DConfig, w_statistics
from cips3d.inference.multiview import sample_mixed_seeds
from cips3d.inference.sample import sample_seeds
from cips3d.inference.video import seed_latents
from cips3d.inference.walk2d import walk_styles_2d
from cips3d.io.checkpoint import load_generator, save_generator
from cips3d.io.checkpoint2d import save_generator2d
from cips3d.metrics.consistency import generator_consistency
from cips3d.metrics.swd import swd
from cips3d.models.generator2d import Generator2D

RENDER = RenderConfig(img_size=4, deterministic=True)


def test_latents_come_in_the_models_dtype_and_a_seed_gives_the_same_ones(tiny_G):
    G64 = copy.deepcopy(tiny_G).double()
    z32 = tiny_G.sample_latents(2, torch.Generator().manual_seed(3))
    z64 = G64.sample_latents(2, torch.Generator().manual_seed(3))
    assert z64[0].dtype == torch.float64 and torch.equal(z64[0].float(), z32[0])
    G64.update_truncation_mean(num_samples=8)  # draws latents: raised a dtype RuntimeError before
    out = G64(*z64, camera=Camera.from_angles(1.5, 1.5, batch=2).to("cpu", torch.float64), render=RENDER)
    assert out.img.dtype == out.depth.dtype == torch.float64  # the image was float32 beside a float64 depth
    assert (
        G64(*z64, camera=Camera.from_angles(1.5, 1.5, batch=2).to("cpu", torch.float64), render=RENDER)
        .img.isfinite()
        .all()
    )


# Found by a review acting as a hurried notebook user: torch's errors, or silently wrong images, before.
REVIEW_CASES = [
    (lambda G: Generator3D(G.config, 0), "generator must be a torch.Generator or None, got int (seeded_"),
    (lambda G: G(*G.sample_latents(1), generator=[0]), "got list of seeds (generators_for_seeds(seeds)"),
    (lambda G: G.sample_cameras(PoseConfig(), 0), "the number of cameras must be a whole number of 1"),
    (lambda G: G.sample_cameras(PoseConfig(), 2.5), "the number of cameras must be a whole number"),
    (lambda G: G.sample_cameras("frontal", 2), "pose must be a PoseConfig, got str"),  # an AttributeError
    (lambda G: G.sample_cameras(PoseConfig(), 2, generators_for_seeds([1])), "1 generator for 2 images"),
    (
        lambda G: G(
            *G.sample_latents(1),
            draws=RenderDraws(jitter_u=torch.full((1, 16, 6), math.nan)),
            render=RenderConfig(img_size=4),
        ),  # fmt: skip
        "draws.jitter_u holds values outside [0, 1] (or NaN)",  # was: an image of NaN
    ),
    (
        lambda G: G(
            *G.sample_latents(1),
            draws=RenderDraws(importance_u=torch.full((1, 16, 6), 5.0)),
            render=RenderConfig(img_size=4),
        ),  # fmt: skip
        "draws.importance_u holds values outside [0, 1]",  # was: samples past the far bound
    ),
    (
        lambda G: G(
            *G.sample_latents(1),
            render=RenderConfig(img_size=4, nerf_noise=0.5),
            draws=RenderDraws(coarse_noise=torch.full((1, 16, 6), math.inf)),
        ),  # fmt: skip
        "draws.coarse_noise holds NaN or infinite values",
    ),
    (
        lambda G: G(
            *G.sample_latents(1),
            draws=RenderDraws(jitter_u=[[0.5] * 6] * 16),
            render=RenderConfig(img_size=4),
        ),  # fmt: skip
        "draws.jitter_u must be a floating-point tensor, got a list",
    ),
    (
        lambda G: G(
            *G.sample_latents(1),
            draws=RenderDraws(yaw_draw=torch.tensor([math.nan])),
            render=RenderConfig(img_size=4),
        ),  # fmt: skip
        "yaw and pitch draws hold NaN or infinite values",
    ),
    (
        lambda G: G.synthesis(
            _styles_and_camera(G)[0], Camera(torch.zeros(0, 3), torch.ones(0, 3)), RENDER
        ),  # fmt: skip
        "the camera batch is empty",  # was: "cannot reshape tensor of 0 elements"
    ),
    (
        lambda G: G(*(z.to("meta") for z in G.sample_latents(1))),
        "z_nerf is on meta but the model is on cpu; move it with .to('cpu')",
    ),
    (
        lambda G: G.synthesis(
            {k: v.to("meta") for k, v in _styles_and_camera(G)[0].items()}, _styles_and_camera(G)[1], RENDER
        ),  # fmt: skip
        "but the model is on cpu",
    ),
    (
        lambda G: G(*G.sample_latents(1), truncation_mean={"x": torch.zeros(1)}),  # psi 1: was ignored
        "are missing from truncation_mean",
    ),
]
REVIEW_IDS = ["int-generator-init", "seed-list", "no-cameras", "half-camera", "str-pose",
              "generators-vs-batch", "nan-jitter", "jitter-5", "inf-noise", "list-draw", "nan-yaw-draw",
         "empty-camera", "meta-latents", "meta-styles", "mean-at-psi-1"]  # fmt: skip


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda G: G.sample_latents(0), "the number of latents must be a whole number of 1 or more, got 0"),
        (lambda G: G.sample_latents(4, generators_for_seeds([1, 2])), "got 2 generators for 4 images"),
        (lambda G: G.sample_latents(2, 5), "generator must be a torch.Generator or a list of them, got int"),
        (lambda G: G.update_truncation_mean(num_samples=0), "num_samples must be a whole number of 1"),
        (lambda G: G(np.zeros((1, 16), np.float32), torch.zeros(1, 32)), "z_nerf must be a torch.Tensor"),
        (lambda G: G(*G.sample_latents(2), psi=torch.tensor([0.5, 1.0])), "psi must be a number between"),
        (lambda G: G(*G.sample_latents(2), generator=generators_for_seeds([1])), "1 generator for 2 images"),
        (lambda G: G(*G.sample_latents(1), psi=0.5, truncation_mean={}), "are missing from truncation_mean"),
        (lambda G: G.update_truncation_mean(num_samples="4"), "num_samples must be a whole number"),
        (lambda G: G(*G.sample_latents(1), draws={}), "draws must be a RenderDraws, got dict"),
        (lambda G: G(*G.sample_latents(1), render={}), "render must be a RenderConfig, got dict"),
        (lambda G: G.modulate(G.mapping(*G.sample_latents(1)), render={}), "render must be a RenderConfig"),
        (lambda G: invert(G, torch.zeros(1, 3, 8, 8), {"steps": 1}), "must be an InversionConfig, got dict"),
        (lambda G: invert(G, np.zeros((1, 3, 8, 8), np.float32)), "the target image must be a torch.Tensor"),
        (lambda G: load_generator(5), "path must be a file or folder path, got int"),
        (
            lambda G: G.synthesis({k: v * math.nan for k, v in G.mapping(*G.sample_latents(1)).items()},
                                  Camera.from_angles(1.5, 1.5), RENDER),  # fmt: skip
            "holds NaN or infinite values",  # was: a black image
        ),
        (lambda G: G.modulate({}), "are missing from styles"),  # was: a KeyError
        (
            lambda G: next(sample_mixed_seeds(G, [0], [1], render=RENDER, pose=PoseConfig(), batch_size=-1)),
            "batch_size must be a whole number of 1 or more, got -1",  # was: nothing rendered
        ),
        (lambda G: G.mapping(G.sample_latents(1)[0] * math.nan, G.sample_latents(1)[1]), "z_nerf holds NaN"),
        (lambda G: G(G.sample_latents(1)[0], G.sample_latents(1)[1] / 0), "z_inr holds NaN or infinite"),
        *REVIEW_CASES,
    ],
    ids=["no-rows", "too-few-generators", "int-generator", "no-samples", "numpy", "psi-tensor",
         "one-generator-two-images", "partial-mean", "str-samples", "dict-draws", "dict-render",
         "modulate-render", "dict-inversion-config", "numpy-target", "int-path", "nan-styles",
         "empty-modulate", "negative-batch", "nan-latents",
         "inf-latents", *REVIEW_IDS],
)  # fmt: skip
def test_unusable_inputs_are_one_config_error(tiny_G, call, words):
    with pytest.raises(ConfigError) as caught:
        call(tiny_G)
    assert words in str(caught.value)


def test_styles_of_the_wrong_shape_or_dtype_say_what_they_are(tiny_G):
    styles = tiny_G.mapping(*tiny_G.sample_latents(1))
    camera = Camera.from_angles(1.5, 1.5)
    name = tiny_G.nerf_style_names[0]
    width = styles[name].shape[-1]
    with pytest.raises(
        ConfigError, match=rf"the styles of {name} are \[1, 1, {width}\] where this model's are"
    ):
        tiny_G.synthesis(styles | {name: styles[name][:, None]}, camera, RENDER)
    with pytest.raises(ConfigError, match=rf"the styles of {name} are \[{width}\]: \[B, D\] tensors were"):
        tiny_G.synthesis(styles | {name: styles[name][0]}, camera, RENDER)  # was "batch sizes [1, {width}]"
    with pytest.raises(
        ConfigError, match="styles must be torch.float32 like the model's weights, got torch.float64"
    ):
        tiny_G.synthesis({k: v.double() for k, v in styles.items()}, camera, RENDER)
    misspelt = styles | {"inr_w1024_1x": styles["inr_w1024_1"]}  # style mixing with a typo took no effect
    with pytest.raises(ConfigError, match=r"styles name layers this model does not have: \['inr_w1024_1x'\]"):
        tiny_G.synthesis(misspelt, camera, RENDER)
    with pytest.raises(ConfigError, match="are missing from styles"):
        tiny_G.truncate({name: styles[name]}, 0.5)  # was: half the layers back, truncated
    with pytest.raises(
        ConfigError, match="styles must be a dict of .B, D. tensors by layer name, got Tensor"
    ):
        tiny_G.truncate(styles[name], 0.5)


def test_arguments_of_the_wrong_kind_are_named(tiny_G):
    z = tiny_G.sample_latents(1)
    with pytest.raises(ConfigError, match="Generator3D takes a GeneratorConfig"):
        Generator3D("tiny")
    with pytest.raises(ConfigError, match="render must be a RenderConfig, got dict"):
        tiny_G(*z, render={"img_size": 4})
    with pytest.raises(ConfigError, match="pose must be a PoseConfig, got str"):
        tiny_G(*z, pose="frontal", render=RENDER)


def test_a_modulation_folded_for_another_batch_or_precision_is_refused(tiny_G):
    styles = tiny_G.mapping(*tiny_G.sample_latents(2))
    camera = Camera.from_angles(1.5, 1.5, batch=2)
    folded = tiny_G.modulate(styles, RENDER)
    assert torch.equal(
        tiny_G.synthesis(styles, camera, RENDER, modulation=folded).img,
        tiny_G.synthesis(styles, camera, RENDER).img,
    )
    one = tiny_G.modulate({k: v[:1] for k, v in styles.items()}, RENDER)
    with pytest.raises(ConfigError, match="folded for 1 image, not the 2 asked for"):
        tiny_G.synthesis(styles, camera, RENDER, modulation=one)
    with pytest.raises(ConfigError, match="folded in torch.float32, but this render needs torch.bfloat16"):
        tiny_G.synthesis(styles, camera, replace(RENDER, precision="bf16"), modulation=folded)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: RenderConfig(deterministic="no"), "deterministic must be True or False, got 'no'"),
        (lambda: RenderConfig(fov="12"), "fov must be a number, got '12'"),
        (lambda: RenderConfig(img_size=32.0), "img_size must be a whole number, got 32.0"),
        (lambda: PoseConfig(yaw_mean=None), "yaw_mean must be a number, got None"),
        (lambda: InversionConfig(yaw=float("nan")), "yaw and pitch must be finite radians"),
        (lambda: MappingConfig(8, 8, 2, layer_norm="false"), "layer_norm must be True or False, got 'false'"),
    ],
    ids=["bool-text", "float-text", "int-float", "none", "nan-yaw", "mapping-bool-text"],
)
def test_config_fields_take_their_own_types(make, words):
    with pytest.raises(ConfigError) as caught:
        make()
    assert words in str(caught.value)


def test_config_fields_take_numpy_numbers_as_plain_ones():
    render = RenderConfig(
        img_size=np.int64(8), fov=np.float32(12), deterministic=np.int64(1), grad_rays=np.int32(4)
    )
    assert (type(render.img_size), type(render.fov), render.deterministic, type(render.grad_rays)) == (
        int,
        float,
        True,
        int,
    )


def test_a_float16_model_renders_close_to_the_float32_one(tiny_G):
    """The last sample's 1e10 spacing overflowed float16; it is float16's largest value there."""
    camera = Camera.from_angles(1.5, 1.5)
    half = copy.deepcopy(tiny_G).half()
    got = half(
        *half.sample_latents(1, torch.Generator().manual_seed(0)),
        camera=camera.to("cpu", torch.float16),
        render=RENDER,
    )
    want = tiny_G(*tiny_G.sample_latents(1, torch.Generator().manual_seed(0)), camera=camera, render=RENDER)
    assert torch.allclose(got.img.float(), want.img, atol=1e-2)


def test_pose_draws_with_an_explicit_camera_are_refused(tiny_G):
    draws = RenderDraws(yaw_draw=torch.zeros(1), pitch_draw=torch.zeros(1))
    with pytest.raises(
        ConfigError, match="an explicit camera is used as it is: inject pose draws only without"
    ):
        tiny_G(*tiny_G.sample_latents(1), camera=Camera.from_angles(1.5, 1.5), draws=draws, render=RENDER)


def test_seeds_are_whole_numbers_in_range():
    for seed in (-1, 1.5, 2**63, True):
        with pytest.raises(ConfigError, match="seeds must be whole numbers from 0 to"):
            generators_for_seeds([seed])
    assert generators_for_seeds([np.int64(2**63 - 1)])[0].initial_seed() == 2**63 - 1


@pytest.mark.parametrize(
    "call",
    [
        lambda G: G.update_truncation_mean(num_samples=1, seed=-1),
        lambda G: seed_latents(G, -1),
        lambda G: generator_consistency(G, count=1, img_size=8, seed=-1),
        lambda G: style_spread(G, samples=2, seed=-1),
        lambda G: swd(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16), seed=-1),
        lambda G: next(walk_styles_2d(Generator2D(cips2d_preset("cips-tiny")), [0, -1], steps_between=1)),
        lambda G: w_statistics(Generator2D(cips2d_preset("cips-tiny")), samples=2, seed=2**63),
        lambda G: InversionConfig(seed=-1),
        lambda G: Inversion2DConfig(seed=-1),
    ],
    ids=[
        "truncation-mean",
        "seed-latents",
        "consistency",
        "spread",
        "swd",
        "walk2d",
        "w-statistics",
        "inversion",
        "inversion2d",
    ],  # fmt: skip
)
def test_every_function_taking_a_seed_refuses_one_torch_would_wrap(tiny_G, call):
    # torch.Generator().manual_seed(-1) is seed 2^64 - 1: these took it, generators_for_seeds refused it
    with pytest.raises(ConfigError, match=r"must be a whole number from 0 to 2\^63 - 1, got"):
        call(tiny_G)


def test_rendering_helpers_name_a_zero_batch_and_a_depth_without_its_channel(tiny_G):
    with pytest.raises(ConfigError, match="batch_size must be a whole number of 1 or more, got 0"):
        next(sample_seeds(tiny_G, [0], render=RENDER, pose=PoseConfig(), batch_size=0))
    for wrong in (True, 2.0):
        with pytest.raises(ConfigError, match="batch_size must be a whole number"):
            next(sample_seeds(tiny_G, [0], render=RENDER, pose=PoseConfig(), batch_size=wrong))
    batches = list(sample_seeds(tiny_G, [0, 1, 2], render=RENDER, pose=PoseConfig(), batch_size=np.int64(2)))
    assert [b.seeds for b in batches] == [[0, 1], [2]]  # numpy's integers count, as for latents
    with pytest.raises(ConfigError, match=r"depth must be \[B, 1, H, W\] like GeneratorOutput.depth"):
        normals_from_depth(torch.ones(1, 4, 4))


def test_each_save_takes_its_own_kind_of_generator(tiny_G, tmp_path):
    G2 = Generator2D(cips2d_preset("cips-tiny"))
    with pytest.raises(ConfigError, match="save_generator writes CIPS-3D generators, got a Generator2D"):
        save_generator(G2, tmp_path / "a")  # was: a folder labelled 3-D that failed to load as "malformed"
    with pytest.raises(ConfigError, match="save_generator2d writes 2D CIPS generators, got a Generator3D"):
        save_generator2d(tiny_G, tmp_path / "b")
    with pytest.raises(ConfigError, match="Generator2D takes a Cips2DConfig"):
        Generator2D(tiny_G.config)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    again = Generator2D(cips2d_preset("cips-tiny"))  # no generator: seed 0 (not the global RNG)
    second = again.state_dict()
    assert all(torch.equal(tensor, second[name]) for name, tensor in G2.state_dict().items())


def test_a_model_saved_in_float64_loads_in_float64(tiny_G, tmp_path):
    save_generator(copy.deepcopy(tiny_G).double(), tmp_path / "m64")
    loaded = load_generator(tmp_path / "m64")
    assert loaded.dtype == torch.float64
    assert all(torch.equal(v, tiny_G.state_dict()[k].double()) for k, v in loaded.state_dict().items())


def _styles_and_camera(G: Generator3D):
    return G.mapping(*G.sample_latents(1, torch.Generator().manual_seed(0))), Camera.from_angles(1.5, 1.5)


def test_a_float64_model_refuses_bf16_precision_and_a_float64_mean_keeps_the_styles_dtype(tiny_G):
    G64 = copy.deepcopy(tiny_G).double()
    styles = G64.mapping(*G64.sample_latents(1))
    camera = Camera.from_angles(1.5, 1.5).to("cpu", torch.float64)
    with pytest.raises(
        ConfigError, match="precision 'bf16' rounds a float32 model's INR; this model is float64"
    ):
        G64.synthesis(styles, camera, replace(RENDER, precision="bf16"))  # was a dtype RuntimeError
    styles32 = tiny_G.mapping(*tiny_G.sample_latents(1))
    mean64 = {k: v.double() for k, v in tiny_G.truncation_centre().items()}
    truncated = tiny_G.truncate(styles32, 0.5, mean64)
    assert all(v.dtype == torch.float32 for v in truncated.values())  # were float64, refused by synthesis
    expected = tiny_G.truncate(styles32, 0.5)
    assert all(torch.allclose(truncated[k], expected[k]) for k in expected)


def test_a_cips3d_state_dict_given_as_official_weights_says_what_it_is(tiny_G, tmp_path):
    torch.save(tiny_G.state_dict(), tmp_path / "ours.pth")
    from cips3d.errors import CheckpointError  # noqa: PLC0415

    with pytest.raises(
        CheckpointError, match=r"holds a cips3d state dict \(G.state_dict\(\)\), not official"
    ):
        load_generator(tmp_path / "ours.pth", preset="tiny")  # was "missing 172 keys ... 174 unexpected"


def test_integer_seed_tensors_make_the_same_generators_as_ints():
    from_tensor = generators_for_seeds(torch.arange(3))  # was refused: "got tensor(0)"
    from_ints = generators_for_seeds([0, 1, 2])
    assert [g.initial_seed() for g in from_tensor] == [g.initial_seed() for g in from_ints]
    with pytest.raises(ConfigError, match="device 'cuda:99' was asked for but PyTorch sees"):
        generators_for_seeds([1], device="cuda:99")  # was torch's paragraph about ATen_cuda


def test_styles_read_on_the_cpu_reach_a_model_elsewhere_where_the_caller_moves_them(tiny_G, tmp_path):
    """The device check refused a styles file for a GPU model (it was read on the CPU, then moved),
    and the interactive renderer's and the mesh's own moves. 'meta' stands in for a GPU here."""
    from cips3d.inference.geometry import as_scene_field  # noqa: PLC0415
    from cips3d.inference.interactive import InteractiveRenderer  # noqa: PLC0415
    from cips3d.inference.inversion import Inversion, load_inversion, save_inversion  # noqa: PLC0415

    styles = {k: v.detach() for k, v in tiny_G.mapping(*tiny_G.sample_latents(1)).items()}
    path = save_inversion(Inversion(styles, 1.5, 1.5, 12.0), tmp_path / "styles.safetensors")
    elsewhere = copy.deepcopy(tiny_G).to("meta")
    assert all(s.device.type == "meta" for s in load_inversion(path, elsewhere).styles.values())
    assert InteractiveRenderer(elsewhere, styles, RENDER).styles["inr_w4_0"].device.type == "meta"
    as_scene_field(elsewhere, styles, psi=0.5)
    with pytest.raises(ConfigError, match="is on cpu but the model is on meta"):
        elsewhere.synthesis(styles, Camera.from_angles(1.5, 1.5), RENDER)  # where nothing moves them
