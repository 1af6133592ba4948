"""`cips3d sample` end to end on small models, and its answers to bad input."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d.cli.speed import chunk_rows
from cips3d.io.checkpoint import official_state_dict, save_generator
from cips3d.io.images import read_png_record
from tests.cli.helpers import run
from tests.conftest import fixture_path


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def test_sample_writes_one_png_per_seed_and_a_grid(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run(
        capsys,
        "sample",
        "--preset",
        "tiny",
        "--seeds",
        "0-2,9",
        "--size",
        "12",
        "--batch-size",
        "3",
        "--aux",
        "--depth",
        "--outdir",
        str(out),
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 0 and str(out) in stdout
    for seed in (0, 1, 2, 9):
        for suffix in ("", "_aux", "_depth"):
            assert Image.open(out / f"seed{seed:04d}{suffix}.png").size == (12, 12)
        depth = np.load(out / f"seed{seed:04d}_depth.npy")
        half_step = 0.24 / 11 / 2  # jitter moves samples by up to half a spacing
        assert depth.shape == (12, 12) and 0.88 - half_step <= depth.min() and depth.max() <= 1.12 + half_step
    assert Image.open(out / "grid.png").size == (2 * 14 + 2, 2 * 14 + 2)  # 2x2 tiles of 12 + padding
    assert (out / "grid_aux.png").exists() and (out / "grid_depth.png").exists()


def test_a_seed_renders_the_same_at_any_batch_size(tmp_path, capsys):
    common = ["sample", "--preset", "tiny", "--size", "10", "--device", "cpu", "--quiet", "--no-grid"]
    run(capsys, *common, "--seeds", "3", "--outdir", str(tmp_path / "a"))
    run(capsys, *common, "--seeds", "1-4", "--batch-size", "4", "--outdir", str(tmp_path / "b"))
    assert (
        np.abs(pixels(tmp_path / "a" / "seed0003.png") - pixels(tmp_path / "b" / "seed0003.png")).max() <= 1
    )
    assert not (tmp_path / "a" / "grid.png").exists()


def test_deterministic_sampling_repeats_exactly(tmp_path, capsys):
    common = ["sample", "--preset", "tiny", "--size", "10", "--seeds", "5", "--deterministic", "--quiet"]
    run(capsys, *common, "--outdir", str(tmp_path / "a"))
    run(capsys, *common, "--outdir", str(tmp_path / "b"), "--yaw", "1.5707963")
    assert np.array_equal(pixels(tmp_path / "a" / "seed0005.png"), pixels(tmp_path / "b" / "seed0005.png"))


def test_sample_from_an_official_pth_and_from_our_checkpoint(tmp_path, capsys, small_G):
    official = ["--checkpoint", str(fixture_path("official", "small_G_state_dict.pt"))]
    official += ["--official-config", str(fixture_path("official", "small_config.json"))]
    common = ["sample", "--seeds", "1", "--size", "16", "--deterministic", "--quiet"]
    assert run(capsys, *common, *official, "--outdir", str(tmp_path / "a"))[0] == 0
    save_generator(small_G, tmp_path / "ck")
    assert run(capsys, *common, "--checkpoint", str(tmp_path / "ck"), "--outdir", str(tmp_path / "b"))[0] == 0
    record = read_png_record(tmp_path / "a" / "seed0001.png")  # what was loaded, as absolute paths
    assert record["checkpoint"] == str(fixture_path("official", "small_G_state_dict.pt").resolve())
    assert record["official_config"] == str(fixture_path("official", "small_config.json").resolve())
    assert np.array_equal(pixels(tmp_path / "a" / "seed0001.png"), pixels(tmp_path / "b" / "seed0001.png"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "/nonexistent/G.pth", "--preset", "ffhq"], "no checkpoint file"),
        (["--preset", "tiny", "--size", "0"], "image size"),
        (["--preset", "tiny", "--size", "100000"], "image size"),
        (["--preset", "tiny", "--seeds", "7-3"], "backwards"),
        (["--preset", "tiny", "--device", "cuda:7"], "device"),
        ([], "--checkpoint"),
    ],
    ids=["missing", "size0", "size-huge", "seeds", "device", "no-model"],
)
def test_user_errors_end_in_one_sentence_and_exit_2(tmp_path, capsys, args, message):
    code, _, err = run(capsys, "sample", *args, "--outdir", str(tmp_path), "--quiet")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_corrupt_and_mismatched_checkpoints_exit_2(tmp_path, capsys, tiny_G):
    bad = tmp_path / "G.pth"
    bad.write_bytes(b"\x00" * 100)
    code, _, err = run(capsys, "sample", "--checkpoint", str(bad), "--preset", "ffhq", "--quiet")
    assert code == 2 and "not a readable PyTorch state dict" in err
    save_generator(tiny_G, tmp_path / "tiny")

    torch.save(official_state_dict(tiny_G), tmp_path / "tiny.pth")
    code, _, err = run(
        capsys, "sample", "--checkpoint", str(tmp_path / "tiny.pth"), "--preset", "ffhq", "--quiet"
    )
    assert code == 2 and "wrongly shaped" in err and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'tiny.pth'}: the official" in err
    assert err.strip().endswith("; it fits the preset tiny.")


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cips3d",
            "sample",
            "--checkpoint",
            str(tmp_path / "none.pth"),
            "--preset",
            "ffhq",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"cips3d sample: error: no checkpoint file at {tmp_path / 'none.pth'}."


def test_chunk_rows_takes_auto_or_a_positive_count(tmp_path, capsys):
    common = ["sample", "--preset", "tiny", "--size", "10", "--seeds", "5", "--device", "cpu", "--quiet"]
    code, _, _ = run(capsys, *common, "--chunk-rows", "auto", "--outdir", str(tmp_path / "a"))
    assert code == 0
    code, _, _ = run(capsys, *common, "--chunk-rows", "7", "--outdir", str(tmp_path / "b"))
    assert code == 0
    assert np.array_equal(pixels(tmp_path / "a" / "seed0005.png"), pixels(tmp_path / "b" / "seed0005.png"))
    assert chunk_rows("auto") == "auto" and chunk_rows("7") == 7
    for bad in ("lots", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            chunk_rows(bad)


def test_tf32_options_are_accepted_and_change_nothing_on_a_cpu(tmp_path, capsys):
    common = ["sample", "--preset", "tiny", "--size", "10", "--seeds", "5", "--device", "cpu", "--quiet"]
    code, _, err = run(capsys, *common, "--outdir", str(tmp_path / "a"))
    assert code == 0 and "tf32" not in err
    options = ["--precision", "tf32", "--field-precision", "tf32"]
    code, _, err = run(capsys, *common, *options, "--outdir", str(tmp_path / "b"))
    assert code == 0 and "tf32 needs a CUDA GPU" in err
    assert np.array_equal(pixels(tmp_path / "a" / "seed0005.png"), pixels(tmp_path / "b" / "seed0005.png"))


def test_the_grid_is_bounded_and_names_what_it_leaves_out(tmp_path, capsys, monkeypatch):
    from cips3d.io import images  # noqa: PLC0415 (its limit is patched)

    assert images.grid_tiles(5, 64) == 5 and images.grid_tiles(100_000, 64) == images.GRID_MAX_TILES
    assert images.grid_tiles(100, 4096) == 4 and images.grid_tiles(3, 10_000) == 1
    assert images.grid_tiles(100, 64, 4096) == 4  # panoramas: the longer side counts
    monkeypatch.setattr(images, "GRID_MAX_TILES", 2)
    out = tmp_path / "out"
    argv = ["sample", "--preset", "tiny", "--seeds", "0-2", "--size", "12", "--device", "cpu", "--quiet"]
    code, stdout, _ = run(capsys, *argv, "--aux", "--outdir", str(out))
    assert code == 0 and "grid.png shows the first 2 images" in stdout
    assert all((out / f"seed{s:04d}.png").exists() for s in range(3))
    assert Image.open(out / "grid.png").size == Image.open(out / "grid_aux.png").size == (2 * 14 + 2, 14 + 2)
    first = pixels(out / "grid.png")[2:14, 2:14]
    assert (first == pixels(out / "seed0000.png")).all()
    code, stdout, _ = run(capsys, *argv, "--no-grid", "--outdir", str(tmp_path / "bare"))
    assert code == 0 and not (tmp_path / "bare" / "grid.png").exists() and "grid.png" not in stdout


def test_num_steps_below_three_is_refused_by_its_flag(capsys):
    with pytest.raises(SystemExit) as stopped:
        run(capsys, "sample", "--preset", "tiny", "--num-steps", "2", "--quiet")
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "--num-steps: '2' must be at least 3" in err and "num_steps" not in err


def test_every_png_records_how_it_was_made_enough_to_make_it_again(tmp_path, capsys):
    """The record in each PNG's text chunk (`read_png_record`): model, seed, truncation, pose, the whole
    render config with its precision; rendering what it says gives the same pixels."""
    common = ["sample", "--preset", "tiny", "--device", "cpu", "--quiet"]
    first = tmp_path / "first"
    options = ["--seeds", "3,5", "--size", "10", "--psi", "0.7", "--yaw", "1.5", "--aux", "--normals"]
    run(capsys, *common, *options, "--appearance-seeds", "9", "--outdir", str(first))
    record = read_png_record(first / "seed0005.png")
    assert record["command"] == "cips3d sample" and record["preset"] == "tiny" and record["init_seed"] == 0
    assert (record["seed"], record["appearance_seed"], record["mix_layers"]) == (5, 9, "all")
    assert record["psi"] == 0.7 and record["pose"] == {"yaw": 1.5, "pitch": pytest.approx(1.5708, abs=1e-4)}
    assert record["render"]["img_size"] == 10 and record["render"]["precision"] == "float32"
    assert record["output"] == "image" and record["device"] == "cpu"
    assert read_png_record(first / "seed0005_aux.png")["output"] == "aux image"
    assert read_png_record(first / "seed0003_normals.png")["output"] == "normals"
    grid = read_png_record(first / "grid.png")
    assert (grid["seeds"], grid["appearance_seeds"], grid["mix_layers"]) == ([3, 5], [9, 9], "all")
    assert record["batch_size"] == 4 and "batch_seeds" not in record  # float32: batch-size invariant
    bf16 = tmp_path / "bf16"  # in bf16 a few pixels depend on the batch: its seeds are recorded
    run(capsys, *common, "--seeds", "0-2", "--size", "8", "--batch-size", "2", "--precision", "bf16",
        "--outdir", str(bf16))  # fmt: skip
    assert [read_png_record(bf16 / f"seed000{s}.png")["batch_seeds"] for s in (0, 2)] == [[0, 1], [2]]
    drawn = tmp_path / "drawn"  # --random-pose records the angles it drew, to reuse the camera
    run(capsys, *common, "--seeds", "4", "--size", "10", "--random-pose", "--outdir", str(drawn))
    camera = read_png_record(drawn / "seed0004.png")["camera"]
    assert set(camera) == {"yaw", "pitch"} and camera != {
        "yaw": 1.5707963267948966,
        "pitch": 1.5707963267948966,
    }

    again = tmp_path / "again"
    render, pose = record["render"], record["pose"]
    remade = ["--seeds", record["seed"], "--appearance-seeds", record["appearance_seed"], "--size",
              render["img_size"], "--psi", record["psi"], "--yaw", pose["yaw"], "--pitch", pose["pitch"],
              "--num-steps", render["num_steps"], "--outdir", again]  # fmt: skip
    run(capsys, *common, *map(str, remade))
    assert np.array_equal(pixels(again / "seed0005.png"), pixels(first / "seed0005.png"))
    remade_record = read_png_record(again / "seed0005.png")
    assert remade_record.pop("command_line").startswith(
        "cips3d sample --preset tiny --device cpu --quiet --seeds 5"
    )
    assert remade_record == {k: v for k, v in record.items() if k != "command_line"}
    assert record["command_line"].startswith("cips3d sample --preset tiny --device cpu --quiet --seeds 3,5")
