"""`cips3d video` end to end on the tiny preset, and its answers to bad input."""

from __future__ import annotations

import av
import numpy as np
import pytest

from cips3d.cli import speed as cli_speed
from cips3d.cli import video as video_cli
from cips3d.config import RenderConfig
from cips3d.inference.trajectories import make_trajectory, still, yaw
from cips3d.inference.video import LatentWalk, seed_styles, video_frames
from cips3d.io.video import read_video_frames, read_video_record
from tests.cli.helpers import run

# GIF keeps a frame exactly when it has at most 256 colours: 16 x 16 pixels at most per frame here.
FAST = ["--preset", "tiny", "--device", "cpu", "--quiet", "--num-steps", "4"]


@pytest.fixture
def use_tiny_G(monkeypatch, tiny_G):
    """Skip rebuilding the tiny model (and its truncation mean) in every run: `--preset tiny
    --init-seed 0` builds these very weights (the first test checks it end to end)."""
    monkeypatch.setattr(cli_speed, "build_generator", lambda args, device: tiny_G)


def test_one_mp4_per_seed_with_the_frames_and_size_asked_for(tmp_path, capsys, tiny_G):
    out = tmp_path / "out"
    args = ["video", *FAST, "--seeds", "0,2", "--size", "16", "--frames", "3", "--outdir", str(out)]
    code, stdout, _ = run(capsys, *args, "--panels", "image,aux,depth", "--text", "--fps", "12")
    assert code == 0 and "2 videos of 48x16" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["seed0000.mp4", "seed0002.mp4"]
    decoded = read_video_frames(out / "seed0002.mp4")
    assert len(decoded) == 3 and decoded[0].shape == (16, 48, 3)
    with av.open(str(out / "seed0002.mp4")) as container:
        assert container.streams.video[0].average_rate == 12
    record = read_video_record(out / "seed0002.mp4")  # how the video was made, in its comment
    assert (record["command"], record["seed"], record["trajectory"], record["frames"]) == (
        "cips3d video",
        2,
        "orbit",
        3,
    )
    assert record["panels"] == ["image", "aux", "depth"] and record["render"]["img_size"] == 16
    assert record["video_frames"] == 3 and "fov" not in record["render"]  # the trajectory's fov renders
    # lossy H.264, but close to the same frames rendered in memory by the same model
    render = RenderConfig(img_size=16, num_steps=4, deterministic=True)
    styles = seed_styles(tiny_G, 2)[0]
    expected = list(
        video_frames(
            tiny_G,
            styles,
            make_trajectory("orbit", num_frames=3),
            render,
            text=True,
            panels=("image", "aux", "depth"),
        )
    )
    assert np.abs(decoded[1].astype(int) - expected[1]).mean() < 12


def test_a_gif_holds_exactly_the_frames_rendered_in_memory(tmp_path, capsys, tiny_G, use_tiny_G, monkeypatch):
    monkeypatch.setattr(video_cli, "mp4_available", lambda: False)  # PyAV without libx264
    args = ["video", *FAST, "--seeds", "4", "--size", "8", "--trajectory", "yaw", "--frames", "4"]
    code, _, err = run(capsys, *args, "--panels", "image,depth", "--psi", "0.6", "--outdir", str(tmp_path))
    assert code == 0 and "writing GIF instead" in err
    decoded = read_video_frames(tmp_path / "seed0004.gif")
    render = RenderConfig(img_size=8, num_steps=4, deterministic=True)
    styles = seed_styles(tiny_G, 4, psi=0.6)[0]
    expected = list(video_frames(tiny_G, styles, yaw(num_frames=4), render, panels=("image", "depth")))
    assert len(decoded) == 4 and all(np.array_equal(a, b) for a, b in zip(decoded, expected, strict=True))


def test_stochastic_videos_repeat_from_the_seed(tmp_path, capsys, tiny_G, use_tiny_G):
    args = [
        "video",
        *FAST,
        "--seeds",
        "1",
        "--size",
        "16",
        "--frames",
        "2",
        "--format",
        "gif",
        "--stochastic",
    ]
    assert run(capsys, *args, "--outdir", str(tmp_path / "a"))[0] == 0
    assert run(capsys, *args, "--outdir", str(tmp_path / "b"))[0] == 0
    a, b = (read_video_frames(tmp_path / folder / "seed0001.gif") for folder in ("a", "b"))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # the records name their folders
    render = RenderConfig(img_size=16, num_steps=4, deterministic=True)
    calm = next(
        video_frames(tiny_G, seed_styles(tiny_G, 1)[0], make_trajectory("orbit", num_frames=2), render)
    )
    assert not np.array_equal(read_video_frames(tmp_path / "a" / "seed0001.gif")[0], calm)


def test_interpolation_walks_from_seed_to_seed(tmp_path, capsys, tiny_G, use_tiny_G):
    args = ["video", *FAST, "--seeds", "3,8", "--size", "16", "--trajectory", "still", "--format", "gif"]
    code, stdout, _ = run(
        capsys,
        *args,
        "--interpolate",
        "--space",
        "w",
        "--method",
        "lerp",
        "--steps-between",
        "3",
        "--outdir",
        str(tmp_path),
    )
    assert code == 0 and "interpolation_w_lerp.gif" in stdout
    decoded = read_video_frames(tmp_path / "interpolation_w_lerp.gif")
    render = RenderConfig(img_size=16, num_steps=4, deterministic=True)
    walk = LatentWalk(tiny_G, [3, 8], steps_between=3, space="w", method="lerp")
    expected = list(video_frames(tiny_G, walk, still(num_frames=len(walk)), render))
    assert len(decoded) == 4 and all(np.array_equal(a, b) for a, b in zip(decoded, expected, strict=True))
    for index, seed in ((0, 3), (3, 8)):  # the ends are the seeds' own renders
        own = next(video_frames(tiny_G, seed_styles(tiny_G, seed)[0], still(num_frames=1), render))
        assert np.array_equal(decoded[index], own)
    # A walk may come back to its first seed.
    back = [a if a != "3,8" else "3,8,3" for a in args]
    back += ["--interpolate", "--steps-between", "2", "--outdir", str(tmp_path / "b")]
    assert run(capsys, *back)[0] == 0
    looped = read_video_frames(next((tmp_path / "b").glob("interpolation*.gif")))
    assert (
        len(looped) == 5 and np.array_equal(looped[0], looped[-1]) and np.array_equal(looped[0], decoded[0])
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trajectory", "spiral"], "unknown trajectory 'spiral'"),
        (["--size", "15", "--format", "mp4"], "even width and height, got 15x15; choose an even size or GIF"),
        (["--fps", "0"], "--fps"),
        (["--fps", "-5"], "--fps"),
        (["--fps", "0.001"], "--fps must be from 0.1 to 240.0 frames per second"),
        (["--panels", "image,mask"], "--panels 'image,mask': panels must be a non-empty list of"),
        (["--format", "avi"], "--format"),
        (["--size", "0"], "image size"),
        (["--seeds", "7-3"], "backwards"),
        (["--interpolate", "--seeds", "4"], "at least two"),
        (["--interpolate", "--seeds", "1,2", "--space", "x"], "--space"),
        (["--interpolate", "--seeds", "1,2", "--method", "cubic"], "--method"),
        (["--trajectory", "circle_near_far", "--fov", "20"], "zooms out from --fov to 20 degrees"),
        (["--trajectory", "translate_circle_near_far", "--fov", "30"], "give a --fov under 20 (got 30)"),
    ],
    ids=[
        "trajectory",
        "odd",
        "fps0",
        "fps-neg",
        "fps-gif-overflow",
        "panel",
        "format",
        "size0",
        "seeds",
        "one-seed",
        "space",
        "method",
        "zoom-nothing",
        "zoom-backwards",
    ],
)
def test_bad_input_is_one_sentence_and_exit_2_before_anything_renders(
    tmp_path, capsys, monkeypatch, args, message
):
    def no_model(*_):
        raise AssertionError("the model was built before the input was checked")

    monkeypatch.setattr(cli_speed, "build_generator", no_model)
    monkeypatch.setattr(video_cli, "mp4_available", lambda: True)  # the mp4 checks, with or without PyAV
    out = tmp_path / "out"
    code, _, err = run(capsys, "video", "--preset", "tiny", "--quiet", *args, "--outdir", str(out))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not out.exists()


def test_a_video_of_fitted_styles_renders_exactly_those_styles(
    tmp_path, capsys, tiny_G, use_tiny_G, monkeypatch
):
    from cips3d.inference.inversion import Inversion, save_inversion  # noqa: PLC0415

    styles = seed_styles(tiny_G, 9)[0]
    save_inversion(Inversion(styles, 1.6, 1.5, 12.0), tmp_path / "photo.safetensors")
    monkeypatch.setattr(video_cli, "mp4_available", lambda: False)  # GIF: frames compare exactly
    args = ["video", *FAST, "--styles", str(tmp_path / "photo.safetensors"), "--size", "8"]
    code, stdout, _ = run(
        capsys, *args, "--trajectory", "yaw", "--frames", "3", "--outdir", str(tmp_path / "o")
    )
    assert code == 0 and "photo.gif" in stdout
    decoded = read_video_frames(tmp_path / "o" / "photo.gif")
    render = RenderConfig(img_size=8, num_steps=4, deterministic=True)
    expected = list(video_frames(tiny_G, styles, yaw(num_frames=3), render))
    assert len(decoded) == 3 and all(np.array_equal(a, b) for a, b in zip(decoded, expected, strict=True))
    (tmp_path / "bad.safetensors").write_bytes(b"x")
    code, _, err = run(capsys, *args[:-3], str(tmp_path / "bad.safetensors"), "--outdir", str(tmp_path / "p"))
    assert code == 2 and "cannot be read as inverted styles (SafetensorError: " in err
    code, _, err = run(capsys, *args, "--interpolate", "--seeds", "1,2", "--outdir", str(tmp_path / "q"))
    assert code == 2 and "cannot be combined with --styles" in err
    # Styles fitted with another model of the same shape render, with a note saying so.
    for model, noted in (("preset tiny, random init seed 0", False), ("/elsewhere/faces", True)):
        save_inversion(Inversion(styles, 1.6, 1.5, 12.0), tmp_path / "photo.safetensors", {"model": model})
        code, _, err = run(capsys, *args, "--frames", "1", "--outdir", str(tmp_path / "r"), "--overwrite")
        note = "were fitted with /elsewhere/faces; rendering them with preset tiny"
        assert code == 0 and (note in err) == noted


def test_an_odd_size_writes_a_gif_with_a_note_unless_mp4_is_asked_for(
    tmp_path, capsys, use_tiny_G, monkeypatch
):
    monkeypatch.setattr(video_cli, "mp4_available", lambda: True)  # the choice, with or without PyAV's x264
    args = ["video", *FAST, "--seeds", "1", "--size", "9", "--frames", "2", "--outdir", str(tmp_path)]
    code, _, err = run(capsys, *args)
    assert code == 0, err  # was: an error while invert --video and sample2d --pan wrote GIF
    assert [p.name for p in tmp_path.iterdir()] == ["seed0001.gif"]
    assert "note: GIF instead of MP4, which (yuv420p) needs an even width and height, not 9x9." in err
