"""`cips3d sample2d`: a trained 2D run's images on its grid, larger, and foveated; clear errors."""

from __future__ import annotations

import dataclasses
import io
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from cips3d.config_2d import cips2d_preset
from cips3d.inference.web_viewer import serve_in_thread
from cips3d.inference.web_viewer2d import make_server2d
from cips3d.io.checkpoint2d import load_generator2d, save_generator2d
from cips3d.io.images import read_png_record, to_uint8
from cips3d.io.video import read_video_frames
from cips3d.models.generator2d import Generator2D
from cips3d.training.snapshot import resolve_snapshot
from cips3d.training.trainer2d import Train2DConfig, Trainer2D
from tests.cli.helpers import run
from tests.inference.http_client import get


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, blob_folder):
    folder = tmp_path_factory.mktemp("run2d")
    config = Train2DConfig(generator="cips-tiny", batch_size=2, d_max_channels=32, snapshot_every=1)
    Trainer2D(config, folder, blob_folder, progress=False).run(max_steps=1)
    return folder


def test_the_training_grid_renders_what_g_ema_renders(capsys, tmp_path, run_dir):
    code, text, err = run(capsys, "sample2d", "--checkpoint", str(run_dir), "--seeds", "3,5", "--outdir",
                          str(tmp_path), "--quiet", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    G = load_generator2d(run_dir)
    with torch.no_grad():
        expected = to_uint8(G(G.sample_latents(1, torch.Generator().manual_seed(5))).clamp(-1, 1))[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "seed0005.png")), expected)
    assert (tmp_path / "grid.png").is_file() and "2 images of 32x32" in text
    record = read_png_record(tmp_path / "seed0005.png")  # how it was made, in the PNG
    assert (record["command"], record["seed"]) == ("cips3d sample2d", 5)
    assert record["checkpoint"] == str(resolve_snapshot(run_dir).resolve())  # the snapshot it rendered
    assert (record["size"], record["extent"], record["psi"], record["noise"]) == (32, 1.0, 1.0, False)
    assert "turns" not in record  # a flat model's frame goes round nothing


def test_a_panorama_records_how_many_turns_it_shows(capsys, tmp_path):
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=128)
    model = save_generator2d(Generator2D(config, torch.Generator().manual_seed(0)), tmp_path / "pano")
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(model), "--seeds", "1", "--turns", "1.5",
                       "--size", "8", "--outdir", str(tmp_path / "out"), "--quiet")  # fmt: skip
    assert code == 0, err
    assert read_png_record(tmp_path / "out" / "seed0001.png")["turns"] == 1.5


def test_larger_and_foveated_images(capsys, tmp_path, run_dir):
    common = ["--checkpoint", str(run_dir), "--seeds", "0", "--quiet", "--device", "cpu"]
    code, _, err = run(capsys, "sample2d", *common, "--size", "48", "--extent", "1.5", "--outdir",
                       str(tmp_path / "wide"))  # fmt: skip
    assert code == 0, err
    assert Image.open(tmp_path / "wide" / "seed0000.png").size == (48, 48)
    code, _, err = run(capsys, "sample2d", *common, "--foveated", "300", "--fixation", "0.2,-0.1", "--outdir",
                       str(tmp_path / "fov"))  # fmt: skip
    assert code == 0, err
    assert Image.open(tmp_path / "fov" / "seed0000.png").size == (32, 32)
    assert read_png_record(tmp_path / "fov" / "seed0000.png")["fixation"] == [0.2, -0.1]
    assert "note" not in err
    code, _, err = run(capsys, "sample2d", *common, "--foveated", "1024", "--outdir", str(tmp_path / "all"))
    assert code == 0 and "note: --foveated 1024 renders as many points as the image has pixels (32x32)" in err


def test_a_window_renders_what_the_viewer_shows_there(capsys, tmp_path, run_dir):
    G = load_generator2d(run_dir)
    server = make_server2d(G, 24, port=0)
    stop = serve_in_thread(server)
    try:  # the 2D viewer's page shows this command for the window it shows
        url = f"http://127.0.0.1:{server.server_address[1]}/frame?seed=4&x=-0.5&y=0.25&zoom=3.5&psi=0.7"
        shown = np.asarray(Image.open(io.BytesIO(get(url + "&format=png")[2])))
    finally:
        stop()
    window = ["--seeds", "4", "--center=-0.5,0.25", "--zoom", "3.5", "--psi", "0.7", "--size", "24"]
    code, _, err = run(
        capsys, "sample2d", "--checkpoint", str(run_dir), *window, "--outdir", str(tmp_path), "--quiet"
    )
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "seed0004.png")), shown)
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(run_dir), "--seeds", "4", "--zoom", "3.5",
                       "--outdir", str(tmp_path / "centred"), "--quiet")  # fmt: skip
    with torch.no_grad():
        w = G.mapping(G.sample_latents(1, torch.Generator().manual_seed(4)))
        centred = to_uint8(G.synthesis(w, G.window_grid(32, 0.0, 0.0, 3.5)).clamp(-1, 1))[0]
    assert code == 0 and np.array_equal(
        np.asarray(Image.open(tmp_path / "centred" / "seed0004.png")), centred
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--zoom", "2", "--extent", "1.5"],
            "--center and --zoom frame a window as `cips3d view` does; "
            "--extent frames the whole image: give one or the other.",
        ),
        (["--center=0,0", "--foveated", "9", "--turns", "2"], "--turns and --foveated frame the whole image"),
        (["--zoom", "0"], "--zoom must be in [1/1024, 1024], got 0."),
        (["--center", "left"], "--center must be two numbers x,y, got 'left'."),
        (["--center=nan,0"], "--center must be finite and at most 1e+06 either way, got nan,0."),
    ],
    ids=["extent", "whole-frame", "zoom", "unreadable", "nan"],
)
def test_window_mistakes_are_one_sentence_before_the_model_loads(capsys, tmp_path, flags, message):
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(tmp_path / "none"), *flags, "--outdir",
                       str(tmp_path / "out"))  # fmt: skip
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_mistakes_are_one_sentence(capsys, tmp_path, run_dir):
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(tmp_path / "none"), "--outdir", str(tmp_path))
    assert code == 2 and "no 2D model, run or checkpoint" in err and err.count("\n") == 1
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(run_dir), "--foveated", "9", "--fixation",
                       "left", "--outdir", str(tmp_path))  # fmt: skip
    assert code == 2 and "--fixation must be two numbers" in err
    snapshot = next((run_dir / "snapshots").iterdir())
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(snapshot / "G_ema.safetensors"), "--outdir",
                       str(tmp_path))  # fmt: skip
    advice = f"is one file of the training snapshot {snapshot}; give that folder or the run {run_dir}.\n"
    assert code == 2 and err.endswith(advice), err
    for seeds, message in (("abc", "cannot read seeds"), ("5-2", "runs backwards")):
        code, _, err = run(capsys, "sample2d", "--checkpoint", str(run_dir), "--seeds", seeds, "--outdir",
                           str(tmp_path))  # fmt: skip
        assert code == 2 and message in err and err.count("\n") == 1


def test_metrics_score_a_2d_run_and_3d_commands_send_it_to_sample2d(capsys, tmp_path, run_dir, blob_folder):
    scored = ["metrics", "--checkpoint", str(run_dir), "--data", str(blob_folder)]
    code, text, err = run(
        capsys, *scored, "--metrics", "swd", "--num", "8", "--out", str(tmp_path / "s.json")
    )
    assert code == 0, err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert (
        text.startswith("swd") and scores["metrics"]["swd"] > 0 and scores["protocol"]["model"] == "2D CIPS"
    )
    code, _, err = run(
        capsys, "metrics", "--checkpoint", str(run_dir), "--data", str(blob_folder), "--size", "64"
    )
    assert code == 2 and "training size (32 px)" in err
    code, text, err = run(capsys, *scored, "--num", "4", "--psi", "0.5")  # the 2D default: SWD alone
    assert code == 0 and text.startswith("swd") and "consistency" not in text and "note" not in text, err
    assert "generating" in err and "4/4" in err  # the progress bar, on stderr
    code, text, err = run(capsys, *scored, "--num", "4", "--quiet")
    assert code == 0 and text.startswith("swd") and err == ""
    count = sum(1 for _ in blob_folder.iterdir())
    code, text, err = run(capsys, *scored, "--num", "1000")
    assert code == 0 and f"note: the data has {count} images" in text, err
    code, _, err = run(capsys, *scored, "--metrics", ",")
    assert code == 2 and "--metrics ',' has an empty item" in err
    code, _, err = run(capsys, *scored, "--out", str(tmp_path))
    assert code == 2 and "is a folder; give the path of the JSON file" in err
    code, _, err = run(capsys, "sample", "--checkpoint", str(run_dir), "--outdir", str(tmp_path / "x"))
    assert code == 2 and "2D CIPS run" in err and "sample2d" in err


def test_invert2d_fits_a_photo_and_renders_it_larger(capsys, tmp_path, run_dir, blob_folder):
    photo = sorted(blob_folder.iterdir())[0]
    common = ["invert2d", "--checkpoint", str(run_dir), "--steps", "5", "--quiet", "--device", "cpu"]
    code, text, err = run(
        capsys, *common, "--image", str(photo), "--outdir", str(tmp_path / "a"), "--per-layer"
    )
    assert code == 0 and "warning" not in err, err
    out = tmp_path / "a"
    assert Image.open(out / "reconstruction.png").size == (64, 32)  # target | fit
    assert Image.open(out / "larger.png").size == (64, 64) and "larger.png is 64x64" in text
    assert "enlarged" not in err  # the blobs are at the training size
    Image.new("RGB", (4, 4), (200, 220, 240)).save(tmp_path / "tiny.png")  # all bright: [0, 1] on [-1, 1]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, _, err = run(capsys, *common[:3], "--steps", "1", "--image", str(tmp_path / "tiny.png"),
                           "--outdir", str(tmp_path / "t"), "--quiet")  # fmt: skip
    assert code == 0 and f"cips3d invert2d: note: {tmp_path / 'tiny.png'} is 4x4 px, so it is enlarged" in err
    assert not [w for w in seen if "[0, 1] scale" in str(w.message)]  # the command mapped its pixels
    code, _, err = run(capsys, *common[:3], "--image", str(blob_folder), "--outdir", str(tmp_path / "f"))
    assert code == 2 and "is a folder; invert2d fits one photo at a time" in err
    G = load_generator2d(run_dir)
    with safe_open(str(out / "w.safetensors"), "pt") as f:
        w = f.get_tensor("w")
        assert w.shape == (1, G.num_styles, G.config.style_dim) and f.metadata()["per_layer"] == "True"
    with torch.no_grad():  # the reconstruction's right half is G's render of the saved w
        fit = to_uint8(G.synthesis(w).clamp(-1, 1))[0]
    assert np.abs(np.asarray(Image.open(out / "reconstruction.png"))[:, 32:].astype(int) - fit).max() <= 1
    assert len(json.loads((out / "losses.json").read_text())["losses"]) == 5
    code, _, err = run(
        capsys, *common, "--image", str(tmp_path / "none.png"), "--outdir", str(tmp_path / "b")
    )
    assert code == 2 and "no image file" in err
    code, _, err = run(
        capsys, *common, "--image", str(photo), "--turns", "2", "--outdir", str(tmp_path / "c")
    )
    assert code == 2 and "turns are for panorama models" in err
    code, _, err = run(
        capsys, *common, "--image", str(photo), "--scale", "1000", "--outdir", str(tmp_path / "e")
    )
    assert code == 2 and "--scale 1000 makes larger.png 32,000 px a side (the model's 32 times 1000)" in err
    # A learning rate far too high: the fit ends above its start (it was said as a success).
    code, _, err = run(capsys, *common, "--image", str(photo), "--lr", "10", "--outdir", str(tmp_path / "d"))
    assert code == 0 and "cips3d invert2d: warning: the fit ended worse than it began (loss " in err
    assert "its learning rate (--lr) is likely too high." in err


def test_invert_and_invert2d_never_write_over_the_photo(capsys, tmp_path, run_dir, blob_folder):
    photo = tmp_path / "target.png"  # the name of the resized copy both commands write
    photo.write_bytes(sorted(blob_folder.iterdir())[0].read_bytes())
    before = photo.read_bytes()
    for argv in (["invert2d", "--checkpoint", str(run_dir)], ["invert", "--preset", "tiny", "--size", "16"]):
        code, _, err = run(capsys, *argv, "--image", str(photo), "--outdir", str(tmp_path), "--steps", "1")
        assert code == 2 and err.endswith(
            f"error: {photo} is an input of this command, which would write over it; choose another "
            "--outdir.\n"
        ), err
        assert photo.read_bytes() == before and sorted(tmp_path.iterdir()) == [photo]


def test_invert2d_refuses_to_squash_a_photo_into_a_panorama(capsys, tmp_path):
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=128)
    model = save_generator2d(Generator2D(config, torch.Generator().manual_seed(0)), tmp_path / "pano")
    Image.new("RGB", (60, 40), (90, 120, 200)).save(tmp_path / "wide.png")
    argv = ["invert2d", "--checkpoint", str(model), "--image", str(tmp_path / "wide.png"), "--steps", "1"]
    code, _, err = run(capsys, *argv, "--outdir", str(tmp_path / "out"))
    assert code == 2 and err.endswith(
        f"{tmp_path / 'wide.png'} is 60x40 px, so resizing it whole to the model's 128x32 would squash it; "
        "crop it to that shape (4:1) first.\n"
    ), err
    Image.new("RGB", (240, 62), (90, 120, 200)).save(tmp_path / "pano.png")  # 3% off 4:1: resized whole
    code, _, err = run(capsys, *argv[:4], str(tmp_path / "pano.png"), "--steps", "1", "--outdir",
                       str(tmp_path / "out"), "--quiet")  # fmt: skip
    assert code == 0 and Image.open(tmp_path / "out" / "target.png").size == (128, 32), err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample2d", "--extent", "1e300"], "--extent must be positive and at most 1e+06, got 1e+300."),
        (["invert2d", "--image", "x.png", "--turns", "1e300"],
         "--extent and --turns must be positive and at most 1e+06, got 1.25, 1e+300."),
    ],
    ids=["sample2d", "invert2d"],
)  # fmt: skip
def test_a_reach_past_float32_is_one_sentence(capsys, tmp_path, run_dir, argv, message):
    code, _, err = run(capsys, *argv, "--checkpoint", str(run_dir), "--outdir", str(tmp_path / "o"))
    assert code == 2 and err.endswith(f"{message}\n"), err  # was: an overflow deep inside the grid


def test_psi_zero_renders_the_mean_style_for_every_seed(capsys, tmp_path, run_dir):
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(run_dir), "--seeds", "1,2", "--psi", "0",
                       "--outdir", str(tmp_path), "--quiet", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    first, second = (np.asarray(Image.open(tmp_path / f"seed000{s}.png")) for s in (1, 2))
    G = load_generator2d(run_dir)
    with torch.no_grad():
        mean_image = to_uint8(G.synthesis(G.mean_style()).clamp(-1, 1))[0]
    assert np.array_equal(first, second) and np.array_equal(first, mean_image)
    bad = ["sample2d", "--checkpoint", str(run_dir), "--psi", "2", "--outdir", str(tmp_path)]
    with pytest.raises(SystemExit) as stopped:  # refused by the parser, as every command's --psi is
        run(capsys, *bad)
    assert stopped.value.code == 2 and "argument --psi: '2' is not between 0 and 1" in capsys.readouterr().err


def test_interpolate_writes_a_walk_from_seed_to_seed(capsys, tmp_path, run_dir):
    where = ["sample2d", "--checkpoint", str(run_dir), "--outdir", str(tmp_path), "--quiet"]
    code, text, err = run(capsys, *where, "--seeds", "1,2,3", "--interpolate", "3")
    assert code == 0, err
    video = next(tmp_path.glob("interpolation.*"))
    frames = read_video_frames(video)
    assert len(frames) == 7 and frames[0].shape == (32, 32, 3) and "7 frames from seed to seed" in text
    code, _, err = run(capsys, *where, "--seeds", "1", "--interpolate", "3")
    assert code == 2 and "two seeds or more" in err
    # A walk may come back to where it started (the images are still one per seed).
    loop = tmp_path / "loop"
    code, text, err = run(
        capsys, *where[:-3], "--outdir", str(loop), "--quiet", "--seeds", "1,2,1", "--interpolate", "2"
    )
    frames = read_video_frames(next(loop.glob("interpolation.*")))
    assert code == 0 and len(frames) == 5 and np.array_equal(frames[0], frames[-1]), err
    assert "wrote 2 images" in text and sorted(p.name for p in loop.glob("seed*.png")) == [
        "seed0001.png",
        "seed0002.png",
    ]


def test_convert_exports_a_runs_g_ema_as_a_2d_model_folder(capsys, tmp_path, run_dir):
    code, text, err = run(capsys, "convert", str(run_dir), str(tmp_path / "model"))
    assert code == 0 and "a 2D CIPS generator" in text, err
    exported, trained = load_generator2d(tmp_path / "model"), load_generator2d(run_dir)
    assert exported.config == trained.config
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in exported.state_dict().items())


def test_sizes_and_foveated_counts_are_bounded_by_their_flags(capsys, tmp_path, run_dir):
    common = ["sample2d", "--checkpoint", str(run_dir), "--outdir", str(tmp_path), "--quiet"]
    for flag, value, message in (
        ("--size", "8192", "is more than 4096 pixels"),
        ("--foveated", "2", "must be at least 3"),
        ("--pan", "1", "must be at least 2"),  # a turn in 1 frame: a still video
        ("--foveated", "1000000", "is more than 100,000, the most a foveated image interpolates between"),
    ):  # fmt: skip  (a million ignored Ctrl-C)
        with pytest.raises(SystemExit) as stopped:
            run(capsys, *common, flag, value)
        assert stopped.value.code == 2 and f"{flag}: '{value}' {message}" in capsys.readouterr().err


def test_the_progress_bar_counts_pixels(capsys, tmp_path, run_dir):
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(run_dir), "--seeds", "0,1", "--size", "40",
                       "--outdir", str(tmp_path), "--device", "cpu")  # fmt: skip
    assert code == 0 and "| 3.20k/3.20k [" in err  # two 40x40 images


def test_synthesis_reports_each_chunk_of_pixels(run_dir):
    G = load_generator2d(run_dir)
    w = G.mapping(G.sample_latents(2, torch.Generator().manual_seed(0)))
    told = []
    grid = G.frame_grid(40).expand(2, -1, -1, -1)
    with torch.no_grad():
        chunked = G.synthesis(w, grid, chunk_pixels=256, on_pixels=told.append)
        assert told == [256] * 6 + [64]
        assert torch.equal(chunked, G.synthesis(w, grid))  # whatever the chunks


def test_invert_sends_a_2d_model_to_invert2d_before_reading_the_photo(capsys, tmp_path, run_dir):
    Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / "small.png")  # would be 'enlarged' (a note)
    code, _, err = run(capsys, "invert", "--checkpoint", str(run_dir), "--image", str(tmp_path / "small.png"),
                       "--outdir", str(tmp_path / "o"))  # fmt: skip
    assert (
        code == 2
        and err
        == f"cips3d invert: error: {run_dir} is a 2D CIPS model: cips3d invert2d fits photos with it.\n"
    )
