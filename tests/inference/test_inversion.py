"""GAN inversion: the projector's schedules, the multi-scale loss, recovering styles and a camera the
model can render, the model left untouched, the styles file, and `cips3d invert`."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d import Generator3D, generator_preset
from cips3d.config import RenderConfig
from cips3d.errors import CheckpointError, ConfigError
from cips3d.inference.inversion import (
    InversionConfig,
    descend,
    image_to_target,
    invert,
    learning_rate_scale,
    load_inversion,
    noise_scale,
    pyramid_loss,
    save_inversion,
    search_camera,
    search_grid,
    target_scale_known,
)
from cips3d.io.images import read_png_record
from cips3d.io.video import read_video_record
from cips3d.rendering.cameras import Camera
from tests.cli.helpers import run

HALF_PI = math.pi / 2
RENDER = RenderConfig(img_size=12, deterministic=True)


def test_the_schedules_are_the_projectors():
    assert learning_rate_scale(0.0) == 0 and learning_rate_scale(0.05) == 1 and learning_rate_scale(0.5) == 1
    assert learning_rate_scale(0.75) == 1 and learning_rate_scale(1.0) == 0
    ramp = [learning_rate_scale(t) for t in np.linspace(0.75, 1.0, 11)]
    assert all(a > b for a, b in zip(ramp, ramp[1:], strict=False))  # cosine ramp-down
    assert noise_scale(0.0) == 1 and noise_scale(0.375) == 0.25 and noise_scale(0.75) == 0 == noise_scale(1.0)


def test_the_pyramid_loss_averages_three_scales():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert pyramid_loss(image, image) == 0
    assert torch.isclose(
        pyramid_loss(image + 0.5, image), torch.tensor(0.25)
    )  # a shift is the same at every scale
    checker = (torch.arange(8)[None] + torch.arange(8)[:, None]) % 2 * 2.0 - 1.0
    flat = torch.zeros(1, 3, 8, 8)
    # A 1-px checkerboard averages out at 1/2 and 1/4 scale: only the full scale sees it.
    assert torch.isclose(pyramid_loss(checker.expand(1, 3, 8, 8), flat), torch.tensor(1 / 3))


def test_inversion_recovers_the_styles_of_a_render_and_leaves_the_model_untouched(tiny_G):
    styles = tiny_G.mapping(*tiny_G.sample_latents(1, torch.Generator().manual_seed(7)))
    with torch.no_grad():
        target = tiny_G.synthesis(styles, Camera.from_angles(HALF_PI, HALF_PI), RENDER).img
    weights = {k: v.clone() for k, v in tiny_G.state_dict().items()}
    flags = [p.requires_grad for p in tiny_G.parameters()]
    result = invert(tiny_G, target, InversionConfig(steps=40, size=12, fit_camera=False))
    assert len(result.losses) == 40 and result.losses[-1] < 0.6 * result.losses[0]
    assert result.yaw == pytest.approx(HALF_PI, abs=1e-6) == result.pitch  # a fixed camera stays put
    assert result.image.shape == (1, 3, 12, 12)
    assert all(torch.equal(v, weights[k]) for k, v in tiny_G.state_dict().items())
    assert [p.requires_grad for p in tiny_G.parameters()] == flags
    shared = {id(w) for w in result.styles.values()}
    assert len(shared) == 2  # one vector for the NeRF, one for the INR (W, not W+)


def test_inversion_is_deterministic_noise_included(tiny_G):
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    runs = [invert(tiny_G, target, InversionConfig(steps=4, size=8)) for _ in range(2)]
    assert runs[0].losses == runs[1].losses and runs[0].yaw == runs[1].yaw
    other_seed = invert(tiny_G, target, InversionConfig(steps=4, size=8, seed=1))
    assert other_seed.losses[1:] != runs[0].losses[1:]


def test_inversion_finds_the_camera_of_a_render(tiny_G):
    with torch.no_grad():
        target = tiny_G.synthesis(
            tiny_G.truncation_centre(), Camera.from_angles(HALF_PI + 0.1, HALF_PI - 0.05), RENDER
        ).img
    result = invert(tiny_G, target, InversionConfig(steps=40, size=12, lr=1e-4, camera_lr=0.02))
    assert abs(result.yaw - (HALF_PI + 0.1)) < 0.015 and abs(result.pitch - (HALF_PI - 0.05)) < 0.01
    assert result.losses[-1] < 0.05 * result.losses[0]


def test_a_camera_far_from_the_start_is_found_by_the_search_first(tiny_G):
    truth = (HALF_PI + 0.45, HALF_PI - 0.1)
    with torch.no_grad():
        target = tiny_G.synthesis(tiny_G.truncation_centre(), Camera.from_angles(*truth), RENDER).img
    config = InversionConfig(steps=40, size=12, lr=1e-4, camera_lr=0.02)
    grid = search_grid(config)
    assert len(grid) == 1 + 7 * 4 and grid[0] == (HALF_PI, HALF_PI)  # the start competes too
    yaw, pitch = search_camera(tiny_G, target, tiny_G.truncation_centre(), RENDER, config)
    assert yaw == pytest.approx(HALF_PI + 0.4, abs=1e-6) and pitch == pytest.approx(
        HALF_PI - 0.31 / 3, abs=1e-6
    )
    result = invert(tiny_G, target, config)
    assert abs(result.yaw - truth[0]) < 0.01 and abs(result.pitch - truth[1]) < 0.01


def test_per_layer_inversion_gives_every_layer_its_own_style(tiny_G):
    target = torch.zeros(1, 3, 8, 8)
    result = invert(tiny_G, target, InversionConfig(steps=2, size=8, per_layer=True))
    assert len({id(w) for w in result.styles.values()}) == len(result.styles) > 2


def test_a_perceptual_weight_adds_the_inception_distance_to_the_loss(tiny_G):
    from cips3d.metrics.perceptual import load_perceptual  # noqa: PLC0415

    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with pytest.raises(ConfigError, match="needs the perceptual distance"):
        invert(tiny_G, target, InversionConfig(steps=1, size=8, perceptual=0.5))
    distance = load_perceptual()
    pixels = invert(tiny_G, target, InversionConfig(steps=3, size=8, camera_search=0, noise=0.0))
    both = invert(
        tiny_G,
        target,
        InversionConfig(steps=3, size=8, camera_search=0, noise=0.0, perceptual=0.5),
        perceptual=distance,
    )
    with torch.no_grad():  # the first step's loss is that of the starting render, the same in both runs
        start = tiny_G.synthesis(
            tiny_G.truncation_centre(),
            Camera.from_angles(HALF_PI, HALF_PI),
            RenderConfig(img_size=8, deterministic=True),
        ).img
        expected = pyramid_loss(start, target) + 0.5 * distance(start, target).mean()
    assert both.losses[0] == pytest.approx(float(expected), rel=1e-5) and both.losses[0] > pixels.losses[0]


def test_bad_settings_are_config_errors(tiny_G):
    with pytest.raises(ConfigError, match=r"steps \(--steps\) must be a whole number of 1 or more, got 0"):
        InversionConfig(steps=0)
    with pytest.raises(ConfigError, match="^perceptual \\(--perceptual\\) must be >= 0.$"):
        InversionConfig(perceptual=-1.0)
    with pytest.raises(ConfigError, match="^lr \\(--lr\\) must be positive.$"):
        InversionConfig(lr=float("nan"))
    for name in ("lr", "noise", "perceptual"):  # inf passed, then the fit blamed "the styles of nerf_w0"
        with pytest.raises(ConfigError, match=f"^{name} \\(--{name}\\) must be finite.$"):
            InversionConfig(**{name: float("inf")})
    with pytest.raises(
        ConfigError, match="camera_search \\(--camera-search\\) must be a whole number of 0 or more"
    ):
        InversionConfig(camera_search=-1)
    with pytest.raises(ConfigError, match="image size"):
        InversionConfig(size=1)
    with pytest.raises(ConfigError, match="pitch must run from 0 .* to pi"):  # was clamped to the pole
        InversionConfig(pitch=4.0)
    with pytest.raises(ConfigError, match=r"\[1, 3, 8, 8\]"):
        invert(tiny_G, torch.zeros(1, 3, 9, 9), InversionConfig(steps=1, size=8))


def test_the_styles_file_round_trips_and_is_checked_against_the_model(tiny_G, tmp_path):
    target = torch.zeros(1, 3, 8, 8)
    result = invert(tiny_G, target, InversionConfig(steps=1, size=8, per_layer=True))
    path = save_inversion(result, tmp_path / "s.safetensors", extra={"image": "x.png"})
    back = load_inversion(path, tiny_G)
    assert (back.yaw, back.pitch, back.fov) == (result.yaw, result.pitch, result.fov)
    assert all(torch.equal(back.styles[k], v) for k, v in result.styles.items())
    ffhq_sized = Generator3D(generator_preset("tiny"))
    ffhq_sized.nerf_style_names = [*ffhq_sized.nerf_style_names, "nerf_extra"]
    with pytest.raises(CheckpointError, match="do not fit this model"):
        load_inversion(path, ffhq_sized)
    name = next(iter(result.styles))
    result.styles[name] = result.styles[name][:, :-1]  # as fitted with a narrower model
    narrow = save_inversion(result, tmp_path / "narrow.safetensors")
    with pytest.raises(
        CheckpointError, match=f"the styles of {name} are .* a model of another architecture\\)\\.$"
    ):
        load_inversion(narrow, tiny_G)
    with pytest.raises(CheckpointError, match="no styles file at"):
        load_inversion(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_inversion(tmp_path / "junk.safetensors")


def test_cips3d_invert_writes_the_fit_and_a_video(capsys, tmp_path):
    photo = np.full((20, 30, 3), 130, np.uint8)  # all bright: its [-1, 1] values lie in [0, 1]
    photo[5:15, 10:20] = (200, 220, 180)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, stdout, err = run(
            capsys, "invert", "--preset", "tiny", "--image", str(tmp_path / "photo.png"), "--size", "8",
            "--steps", "3", "--video", "--frames", "3", "--device", "cpu", "--quiet", "--outdir", str(out),
        )  # fmt: skip
    assert code == 0, err
    assert not [w for w in seen if "[0, 1] scale" in str(w.message)]  # the command mapped its pixels
    assert "loss" in stdout and "yaw" in stdout
    assert np.asarray(Image.open(out / "reconstruction.png")).shape == (
        8,
        4 * 8,
        3,
    )  # target, image, aux, depth
    assert np.asarray(Image.open(out / "target.png")).shape == (8, 8, 3)
    assert len(json.loads((out / "losses.json").read_text())["losses"]) == 3
    assert list(out.glob("orbit.*"))
    fitted = load_inversion(out / "styles.safetensors")
    assert math.isfinite(fitted.yaw) and math.isfinite(fitted.pitch)
    record = read_png_record(out / "reconstruction.png")  # how the fit was made, in its PNG and video
    assert (record["command"], record["image"], record["steps"]) == (
        "cips3d invert",
        str((tmp_path / "photo.png").resolve()),
        3,
    )
    assert record["camera"] == {"yaw": fitted.yaw, "pitch": fitted.pitch, "fov": fitted.fov}
    assert record["final_loss"] == json.loads((out / "losses.json").read_text())["losses"][-1]
    assert (record["fit"]["steps"], record["fit"]["perceptual"], record["fit"]["seed"]) == (3, 0.1, 0)
    assert read_video_record(next(out.glob("orbit.*")))["output"].startswith("an orbit of the fit")
    code, text, _ = run(capsys, "info", str(out), "--json")  # the folder: an invert output, as recorded
    assert code == 0 and json.loads(text)["kind"].startswith("styles fitted by `cips3d invert`")
    # At an odd size the orbit is a GIF (yuv420p MP4 needs even sides), and it says so.
    code, _, err = run(
        capsys, "invert", "--preset", "tiny", "--image", str(tmp_path / "photo.png"), "--size", "7",
        "--steps", "1", "--video", "--frames", "2", "--fps", "10", "--quiet",
        "--outdir", str(tmp_path / "odd"),
    )  # fmt: skip
    assert code == 0 and (tmp_path / "odd" / "orbit.gif").is_file()
    assert Image.open(tmp_path / "odd" / "orbit.gif").info["duration"] == 100  # ms a frame at --fps 10
    assert "cips3d invert: note: GIF instead of MP4 where" in err


@pytest.mark.parametrize(
    "name, content, words",
    [("missing.png", None, "no image at"), ("broken.png", b"not an image", "cannot read the image")],
)
def test_cips3d_invert_refuses_a_bad_image_in_one_sentence(capsys, tmp_path, name, content, words):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    code, _, err = run(
        capsys, "invert", "--preset", "tiny", "--image", str(tmp_path / name), "--outdir", str(tmp_path / "o")
    )
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_inversion_runs_inside_no_grad(tiny_G):
    target = torch.zeros(1, 3, 8, 8)
    with torch.no_grad():  # a caller's inference block does not stop the optimisation
        result = invert(tiny_G, target, InversionConfig(steps=2, size=8, camera_search=0))
    assert len(result.losses) == 2 and result.styles["nerf_w0"].grad_fn is None


def test_cips3d_invert_fits_every_image_of_a_folder_and_skips_broken_ones(capsys, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, colour in (("a.png", (200, 40, 40)), ("b.jpg", (40, 200, 40))):
        Image.fromarray(np.full((12, 12, 3), colour, np.uint8)).save(photos / name)
    (photos / "c.png").write_bytes(b"broken")
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "fits"
    code, stdout, err = run(
        capsys, "invert", "--preset", "tiny", "--image", str(photos), "--size", "8", "--steps", "2",
        "--perceptual", "0", "--device", "cpu", "--quiet", "--outdir", str(out),
    )  # fmt: skip
    assert code == 0 and "2 photo(s) fitted, 1 skipped" in stdout
    assert err.count("skipped") == 1 and "c.png" in err
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    assert load_inversion(out / "a" / "styles.safetensors").fov > 0
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "invert", "--preset", "tiny", "--image", str(tmp_path / "empty"))
    assert code == 2 and "holds no images" in err
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(photos / "a.jpg")  # a second photo named a
    code, _, err = run(capsys, "invert", "--preset", "tiny", "--image", str(photos), "--outdir", str(out))
    assert code == 2 and "a.jpg and a.png would both write to the folder a/" in err


def test_a_target_on_another_scale_is_refused(tiny_G):
    photo = torch.linspace(0, 255, 3 * 16 * 16).reshape(1, 3, 16, 16)  # 8-bit values, not mapped to [-1, 1]
    with pytest.raises(ConfigError, match="must be on the \\[-1, 1\\] scale .* run from 0.* to 25.*as 8-bit"):
        invert(tiny_G, photo, InversionConfig(size=16, steps=1))
    with pytest.raises(ConfigError, match="NaN or infinite"):
        invert(tiny_G, torch.full((1, 3, 16, 16), float("nan")), InversionConfig(size=16, steps=1))
    scaled = (torch.rand(1, 3, 16, 16) * 2 - 1) * 255  # a render scaled to 8-bit, negatives and all
    with pytest.raises(ConfigError, match="must be on the \\[-1, 1\\] scale; its values run from -2"):
        invert(tiny_G, scaled, InversionConfig(size=16, steps=1))  # was fitted as saturated noise
    with pytest.warns(
        UserWarning, match=r"run from 0.1 to 0.9: if it is on the \[0, 1\] scale, give x \* 2 - 1"
    ):
        unit = torch.linspace(0.1, 0.9, 3 * 16 * 16).reshape(1, 3, 16, 16)  # torchvision's scale
        invert(tiny_G, unit, InversionConfig(size=16, steps=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the [-1, 1] scale passes without a word
        invert(tiny_G, torch.rand(1, 3, 16, 16) * 2 - 1, InversionConfig(size=16, steps=1))
        with target_scale_known():  # and so does an all-bright photo that image_to_target mapped
            invert(
                tiny_G,
                image_to_target(np.full((16, 16, 3), 200, np.uint8)),
                InversionConfig(size=16, steps=1),
            )


def test_a_diverging_fit_stops_before_anything_is_saved():
    w = torch.zeros(3, requires_grad=True)
    losses: list[float] = []
    with pytest.raises(ConfigError, match="the fit diverged: its values overflowed at step 0; lower the"):
        descend(torch.optim.SGD([w], lr=1e38), 10 * (w - 1).pow(2).sum(), losses, None)  # past float32
    v = torch.zeros(3, requires_grad=True)
    with pytest.raises(ConfigError, match="the fit diverged: its loss was nan at step 0"):
        descend(torch.optim.SGD([v], lr=0.1), (v * float("nan")).sum(), losses, None)
    assert losses == [] and torch.equal(v, torch.zeros(3))  # the bad step was not taken


@pytest.mark.parametrize(
    "pixels, words",
    [
        (np.full((8, 8, 3), 0.8, np.float32), r"got float32 \[8, 8, 3\]"),  # was: an almost black target
        (np.zeros((8, 8), np.uint8), r"got uint8 \[8, 8\]"),
    ],
    ids=["float-scale", "grey"],
)
def test_image_to_target_takes_8_bit_rgb_only(pixels, words):
    with pytest.raises(
        ConfigError, match=rf"image_to_target takes uint8 \[H, W, 3\] pixels \(0 to 255\), {words}"
    ):
        image_to_target(pixels)


def test_cips3d_invert_starts_at_a_given_yaw_or_pitch_instead_of_searching():
    from cips3d.cli.invert import _config  # noqa: PLC0415
    from cips3d.cli.main import build_parser  # noqa: PLC0415

    def config(*flags: str) -> InversionConfig:
        return _config(build_parser().parse_args(["invert", "--preset", "tiny", "--image", "x.png", *flags]))

    searched = config()
    assert searched.camera_search == InversionConfig.camera_search and searched.yaw == math.pi / 2
    given = config("--yaw", "1.0")  # was: a search candidate the search overruled (the fit ended at 1.971)
    assert (given.camera_search, given.yaw, given.pitch) == (0, 1.0, math.pi / 2)
    assert config("--pitch", "1.3").camera_search == 0
    both = config("--yaw", "1.0", "--camera-search", "3")  # both: --yaw is one of the cameras tried
    assert (both.camera_search, both.yaw) == (3, 1.0)


def test_cips3d_invert_fits_and_renders_with_the_speed_options(capsys, tmp_path, monkeypatch):
    """invert had no --precision or --fast: a fit's renders, forward and backward, are the INR's bulk
    (bf16 fitted 2.3x faster on a CPU with AMX)."""
    from cips3d.cli import invert as invert_cli  # noqa: PLC0415

    seen = []

    def recording(G, target, config, *, render, **kwargs):
        seen.append(render.precision)
        return invert(G, target, config, render=render, **kwargs)

    monkeypatch.setattr(invert_cli, "invert", recording)
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(tmp_path / "photo.png")
    photo = str(tmp_path / "photo.png")
    argv = ["invert", "--preset", "tiny", "--image", photo, "--size", "8", "--steps", "2"]
    code, _, err = run(capsys, *argv, "--precision", "bf16", "--quiet", "--outdir", str(tmp_path / "o"))
    assert code == 0, err
    assert seen == ["bf16"] and (tmp_path / "o" / "styles.safetensors").is_file()


@pytest.mark.parametrize(
    "meta, words",
    [
        ('{"pitch": 1.5, "fov": 12}', r"its camera \(yaw, pitch, fov\) is missing or not numbers"),
        (
            '{"yaw": "abc", "pitch": 1.5, "fov": 12}',
            r"its camera \(yaw, pitch, fov\) is missing or not numbers",
        ),
        ('{"yaw": NaN, "pitch": 1.5, "fov": 12}', r"an impossible fitted camera \(yaw nan"),
        ('{"yaw": 1.5, "pitch": 5.0, "fov": 12}', r"an impossible fitted camera \(yaw 1.5, pitch 5.0"),
        ('{"yaw": 1e6, "pitch": 1.5, "fov": 12}', "an impossible fitted camera"),
        ("[1, 2]", r"its camera \(yaw, pitch, fov\) is missing or not numbers"),
    ],
    ids=["no-yaw", "text-yaw", "nan-yaw", "pitch-5", "huge-yaw", "not-an-object"],
)
def test_a_styles_file_with_a_broken_camera_is_one_checkpoint_error(tmp_path, tiny_G, meta, words):
    """A missing or non-numeric yaw ended `cips3d view --styles` and `video --styles` in a traceback;
    NaN or out-of-range angles started a viewer whose every frame was refused."""
    from safetensors.torch import save_file  # noqa: PLC0415

    from cips3d.inference.inversion import FORMAT  # noqa: PLC0415
    from cips3d.inference.video import seed_styles  # noqa: PLC0415

    styles = {name: w.detach().clone() for name, w in seed_styles(tiny_G, 1)[0].items()}
    save_file(styles, str(tmp_path / "s.safetensors"), metadata={"format": FORMAT, "meta": meta})
    with pytest.raises(CheckpointError, match=words):
        load_inversion(tmp_path / "s.safetensors", tiny_G)


def test_a_fit_started_at_a_pole_saves_a_camera_it_can_load_again(tiny_G, tmp_path):
    """At pitch pi the renderer's clamp passes no gradient, so the angle stayed float32(pi), 9e-8 past
    the pole: saved, then refused by load_inversion. The fit keeps its pitch where the renderer does."""
    target = torch.zeros(1, 3, 8, 8)
    result = invert(tiny_G, target, InversionConfig(steps=2, size=8, pitch=math.pi, camera_search=0))
    assert result.pitch <= math.pi - 1e-5 + 1e-7
    assert load_inversion(save_inversion(result, tmp_path / "styles.safetensors")).pitch == result.pitch


def test_a_half_precision_model_is_inverted_in_its_own_dtype(tiny_G):
    import copy  # noqa: PLC0415

    G16 = copy.deepcopy(tiny_G).half()
    result = invert(G16, torch.zeros(1, 3, 8, 8), InversionConfig(steps=2, size=8, camera_search=0))
    assert all(w.dtype == torch.float16 for w in result.styles.values())  # was "styles must be float16"
