"""Flags that would change nothing in the combination given are refused by name (silently ignored, a
user would think they took effect); each is said before any model is loaded or anything written."""

from __future__ import annotations

import pytest
import torch

from cips3d.config_2d import cips2d_preset
from cips3d.io.checkpoint2d import save_generator2d
from cips3d.models.generator2d import Generator2D
from tests.cli.helpers import run

MODEL_3D = ["--preset", "tiny", "--device", "cpu"]
INVERT = ["invert", *MODEL_3D, "--image", "x.png"]
SAMPLE2D = ["sample2d", "--checkpoint", "m"]
NOTHING = "would change nothing"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", *MODEL_3D, "--random-pose", "--yaw", "1.5707963267948966"], f"--yaw {NOTHING}"),
        (["multiview", *MODEL_3D, "--styles", "s.safetensors", "--seeds", "0-3"], f"--seeds {NOTHING}"),
        (["video", *MODEL_3D, "--styles", "s.safetensors", "--seeds", "0"], f"--seeds {NOTHING}"),
        ([*INVERT, "--frames", "48", "--fps", "30"], f"--frames and --fps {NOTHING} without --video"),
        ([*SAMPLE2D, "--view", "90"], f"--view {NOTHING} without --pan"),
        ([*SAMPLE2D, "--fps", "30"], f"--fps {NOTHING} without a video"),
        (["blend", "--source", "a", "--target", "b", "--frames", "30"], f"--frames {NOTHING} without"),
        (["sample", "--checkpoint", "m", "--init-seed", "0"], f"--init-seed {NOTHING} with --checkpoint"),
        (["sample", *MODEL_3D, "--random-pose", "--pi", "1.5707963267948966"], f"--pitch {NOTHING}"),
    ],
    ids=["yaw", "multiview-seeds", "video-seeds", "invert-video", "view", "fps", "blend-frames", "init-seed",
         "abbreviated"],
)  # fmt: skip
def test_a_flag_given_at_its_default_value_is_refused_too(capsys, tmp_path, argv, message):
    """Each was let through as unchanged: the check compared the value with the default, not whether the
    flag was given (argparse's abbreviations are flags given too)."""
    code, _, err = run(capsys, *argv, "--outdir", str(tmp_path / "out"))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", *MODEL_3D, "--random-pose", "--yaw", "1.2"], f"--yaw {NOTHING} with --random-pose"),
        (["video", *MODEL_3D, "--space", "w"], "--space would change nothing without --interpolate"),
        (["video", *MODEL_3D, "--method", "lerp", "--steps-between", "5"],
         "--method and --steps-between would change nothing without --interpolate"),
        ([*INVERT, "--frames", "9", "--fps", "12"],
         "--frames and --fps would change nothing without --video"),
        ([*INVERT, "--fixed-camera", "--camera-lr", "0.1"],
         "--camera-lr would change nothing with --fixed-camera"),
        ([*INVERT, "--camera-lr", "1e30"], "camera_lr (--camera-lr) is a step in radians"),
        ([*INVERT, "--lr", "1e38"], "lr (--lr) is at most 10 (Adam moves each style about that much"),
        ([*SAMPLE2D, "--fixation", "0.5,0"], f"--fixation {NOTHING} without --foveated"),
        ([*SAMPLE2D, "--view", "60"], "--view would change nothing without --pan"),
        ([*SAMPLE2D, "--foveated", "50", "--extent", "1.5"], f"--extent {NOTHING} with --foveated"),
        ([*SAMPLE2D, "--fps", "12"], "--fps would change nothing without a video"),
        (["sample", "--checkpoint", "m", "--init-seed", "3"], f"--init-seed {NOTHING} with --checkpoint"),
        (["sample", *MODEL_3D, "--official-config", "x.json"], f"--official-config {NOTHING} without"),
        (["mesh", *MODEL_3D, "--format", "obj", "--ascii"], f"--ascii {NOTHING} without PLY output"),
        (["blend", "--source", "a", "--target", "b", "--video", "yaw", "--batch-size", "2"],
         f"--batch-size {NOTHING} in a video"),
        (["video", *MODEL_3D, "--styles", "s.safetensors", "--seeds", "3"], f"--seeds {NOTHING} with"),
        (["multiview", *MODEL_3D, "--styles", "s.safetensors", "--seeds", "3"], f"--seeds {NOTHING} with"),
        (["video", *MODEL_3D, "--seeds", "1,5", "--interpolate", "--trajectory", "still", "--frames", "7"],
         f"--frames {NOTHING} in a walk with --trajectory still"),
    ],
    ids=["random-pose-yaw", "space", "walk-options", "invert-frames", "fixed-camera", "camera-lr", "huge-lr",
         "fixation", "pan-view", "foveated-extent", "fps", "init-seed", "official-config", "ascii",
         "blend-batch", "video-styles-seeds", "multiview-styles-seeds", "still-walk-frames"],
)  # fmt: skip
def test_a_flag_that_would_change_nothing_is_refused(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, *argv, "--outdir", str(tmp_path / "out"))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_the_3d_speed_options_are_refused_for_a_2d_model(capsys, tmp_path):
    save_generator2d(
        Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)), tmp_path / "m"
    )
    view = ["view", "--checkpoint", str(tmp_path / "m")]
    code, _, err = run(capsys, *view, "--precision", "float32", "--fast")
    assert code == 2 and "--fast and --precision would change nothing for a 2D CIPS model" in err
    code, _, err = run(capsys, *view, "--preset", "tiny")
    assert code == 2 and "--preset would change nothing for a 2D CIPS model" in err


def test_view_refuses_a_seed_beside_fitted_styles(capsys, tmp_path):
    code, _, err = run(
        capsys, "view", "--preset", "tiny", "--styles", str(tmp_path / "s.safetensors"), "--seed", "5"
    )
    assert code == 2 and "--seed would change nothing with --styles" in err


def test_metrics_refuses_a_count_the_consistency_score_does_not_take(capsys, tmp_path):
    argv = ["metrics", *MODEL_3D, "--data", str(tmp_path), "--metrics", "consistency", "--num", "4"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and f"--num {NOTHING} for consistency alone (it scores 16 latents of its own)" in err
    # A 2D model has no consistency score: said as such, not as a --num it would not take.
    save_generator2d(
        Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)), tmp_path / "m"
    )
    argv = [
        "metrics",
        "--checkpoint",
        str(tmp_path / "m"),
        "--data",
        str(tmp_path),
        "--metrics",
        "consistency",
    ]
    code, _, err = run(capsys, *argv, "--num", "4")
    assert (
        code == 2 and "unknown metrics ['consistency']; a 2D model is scored by" in err and "--num" not in err
    )
