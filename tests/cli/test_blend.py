"""`cips3d blend` end to end: side-by-side rows whose columns are the right models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d.cli.main import main
from cips3d.io.checkpoint import load_generator, official_state_dict, save_generator
from cips3d.io.images import read_png_record
from cips3d.io.video import read_video_frames, read_video_record
from tests.cli.helpers import run

SIZE, PAD = 8, 2


def tiles(path, count: int) -> list[np.ndarray]:
    grid = np.asarray(Image.open(path))
    assert grid.shape == (SIZE + 2 * PAD, count * (SIZE + PAD) + PAD, 3)
    return [
        grid[PAD : PAD + SIZE, PAD + i * (SIZE + PAD) : PAD + i * (SIZE + PAD) + SIZE] for i in range(count)
    ]


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_G):
    """A source and a 'fine-tuned' target that differs only on the INR side (decoder + INR mapping)."""
    root = tmp_path_factory.mktemp("blend")
    target = copy.deepcopy(tiny_G)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in [*target.decoder.parameters(), *target.inr_mapping.parameters()]:
            p.add_(0.3 * torch.randn(p.shape, generator=generator) * p.std().clamp_min(0.05))
    # The stale truncation mean is never used: these renders run at psi 1.
    return save_generator(tiny_G, root / "source"), save_generator(target, root / "target")


def test_gamma_0_and_1_columns_are_the_source_and_the_target(tmp_path, capsys, models):
    source, target = models
    all_layers = "4,8,16,32,64,128,256,512,1024"
    code, stdout, _ = run(
        capsys,
        *["blend", "--source", str(source), "--target", str(target), "--gammas", "0,1"],
        *["--layers", all_layers, "--blend-inr-mapping", "--seeds", "2,3", "--size", str(SIZE)],
        *["--outdir", str(tmp_path), "--quiet", "--device", "cpu"],
    )
    assert code == 0 and "gamma 0, 1" in stdout
    for seed in (2, 3):
        src, tgt, zero, one = tiles(tmp_path / f"seed{seed:04d}.png", 4)
        assert np.abs(src.astype(int) - tgt.astype(int)).max() > 2  # the models do differ
        assert np.array_equal(zero, src) and np.array_equal(one, tgt)
        record = read_png_record(tmp_path / f"seed{seed:04d}.png")  # how the row was made, in its PNG
        assert record["command"] == "cips3d blend" and record["seed"] == seed and record["gammas"] == [0, 1]
        assert (record["source"], record["target"]) == (str(source), str(target))


def test_default_gamma_blends_half_way_with_the_official_layers(tmp_path, capsys, models):
    source, target = models
    args = ["blend", "--source", str(source), "--target", str(target), "--seeds", "1", "--size", str(SIZE)]
    assert run(capsys, *args, "--outdir", str(tmp_path), "--quiet")[0] == 0
    src, tgt, mid = (t.astype(int) for t in tiles(tmp_path / "seed0001.png", 3))
    assert np.abs(mid - src).max() > 0 and np.abs(mid - tgt).max() > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gamma", "1.5"], "gamma"),
        (["--gammas", "0,-0.5"], "gamma"),
        (["--gammas", "0,x"], "--gammas"),
        (["--layers", "1024,2048"], "2048"),
        (["--size", "0"], "image size"),
        (["--frames", "10"], "--frames would change nothing without --video"),
        (["--fps", "10", "--format", "gif"], "--fps and --format would change nothing without a video"),
        (["--sweep-frames", "4", "--gamma", "0.3"], "--gamma would change nothing with --sweep-frames"),
        (["--video", "yaw", "--pitch", "1"], "--pitch would change nothing with --video yaw"),
        (["--video", "yaw", "--deterministic"], "--deterministic would change nothing in a video"),
    ],
    ids=[
        "gamma",
        "gammas-negative",
        "gammas-text",
        "layer",
        "size",
        "frames",
        "fps",
        "sweep-gamma",
        "video-pitch",
        "video-deterministic",
    ],  # fmt: skip
)
def test_bad_options_are_refused_before_any_model_is_loaded(tmp_path, capsys, args, message):
    missing = ["--source", str(tmp_path / "a.pth"), "--target", str(tmp_path / "b.pth")]
    code, _, err = run(capsys, "blend", *missing, *args, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_a_models_own_config_refuses_its_side_preset_by_name(tmp_path, capsys, models):
    code, _, err = run(capsys, "blend", "--source", str(models[0]), "--source-preset", "tiny", "--target",
                       str(models[1]), "--quiet", "--outdir", str(tmp_path))  # fmt: skip
    assert code == 2 and "carries its own config; --source-preset is for an official .pth source" in err


def test_models_of_different_shapes_are_refused(tmp_path, capsys, models, small_G):
    save_generator(small_G, tmp_path / "small")
    code, _, err = run(
        capsys, "blend", "--source", str(models[0]), "--target", str(tmp_path / "small"), "--quiet"
    )
    assert code == 2 and "different architectures" in err and len(err.strip().splitlines()) == 1
    # which ones, and how: the first settings that differ, source vs target
    assert "(source: the tiny generator, target: a custom generator; nerf.hidden_dim 64 vs" in err
    assert not list(tmp_path.glob("seed*.png"))


def test_blend_videos_side_by_side_and_gamma_sweep(tmp_path, capsys, models):
    source, target = models
    common = ["blend", "--source", str(source), "--target", str(target), "--seeds", "1", "--size", "8",
              "--format", "gif", "--quiet"]  # fmt: skip
    code = main(
        [*common, "--video", "yaw", "--frames", "3", "--gammas", "0,1", "--outdir", str(tmp_path / "v")]
    )
    assert code == 0
    frames = read_video_frames(tmp_path / "v" / "seed0001_yaw.gif")
    assert len(frames) == 3 and frames[0].shape == (8, 4 * 8, 3)  # source | target | gamma 0 | gamma 1
    assert np.array_equal(frames[1][:, :8], frames[1][:, 16:24])  # gamma 0 is the source, pixel for pixel
    assert main([*common, "--sweep-frames", "4", "--outdir", str(tmp_path / "v")]) == 0
    assert "wrote 1 video to" in capsys.readouterr().out
    assert len(read_video_frames(tmp_path / "v" / "seed0001_sweep.gif")) == 4
    swept, side = (read_video_record(tmp_path / "v" / f"seed0001_{k}.gif") for k in ("sweep", "yaw"))
    assert (swept["command"], swept["seed"], swept["sweep_frames"]) == ("cips3d blend", 1, 4)
    assert (side["trajectory"], side["gammas"], side["frames"]) == ("yaw", [0, 1], 3)
    assert len(read_video_frames(tmp_path / "v" / "seed0001_yaw.gif")) == 3  # one kind leaves the other
    with pytest.raises(SystemExit):
        main([*common, "--sweep-frames", "1", "--outdir", str(tmp_path / "v")])
    assert "--sweep-frames: '1' must be at least 2" in capsys.readouterr().err
    assert main([*common, "--video", "nowhere", "--outdir", str(tmp_path / "x")]) == 2
    assert "unknown trajectory" in capsys.readouterr().err.lower()


def test_an_official_file_without_its_preset_names_the_sides_flag(tmp_path, capsys, models):
    source, _ = models
    torch.save(official_state_dict(load_generator(source)), tmp_path / "official.pth")
    code, _, err = run(capsys, "blend", "--source", str(source), "--target", str(tmp_path / "official.pth"),
                       "--outdir", str(tmp_path / "o"), "--quiet")  # fmt: skip
    assert code == 2 and "official.pth is an official .pth target: give --target-preset tiny." in err
    torch.save(official_state_dict(load_generator(source)) | {"extra": torch.zeros(1)}, tmp_path / "odd.pth")
    code, _, err = run(capsys, "blend", "--source", str(source), "--target", str(tmp_path / "odd.pth"),
                       "--outdir", str(tmp_path / "o"), "--quiet")  # fmt: skip
    assert code == 2 and "odd.pth is an official .pth target that fits no preset: convert it with" in err
    assert "--official-config CONFIG.json` and give that folder as --target." in err


def test_save_model_writes_the_blended_generator_that_sample_renders_as_its_column(tmp_path, capsys, models):
    source, target = models
    common = ["blend", "--source", str(source), "--target", str(target), "--seeds", "1", "--size", str(SIZE),
              "--quiet", "--outdir", str(tmp_path / "rows")]  # fmt: skip
    code, out, _ = run(capsys, *common, "--gamma", "0.5", "--save-model", str(tmp_path / "blend"))
    assert code == 0 and f"wrote {tmp_path / 'blend'}/ (gamma 0.5 of INR blocks" in out
    assert run(capsys, "sample", "--checkpoint", str(tmp_path / "blend"), "--seeds", "1", "--size", str(SIZE),
               "--outdir", str(tmp_path / "s"), "--quiet")[0] == 0  # fmt: skip
    blended = tiles(tmp_path / "rows" / "seed0001.png", 3)[2]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s" / "seed0001.png")), blended)
    code, _, err = run(capsys, *common, "--save-model", str(tmp_path / "blend"))  # a model is there now
    assert code == 2 and "blend is already a model folder; give another folder." in err
    code, _, err = run(capsys, *common, "--gammas", "0,1", "--save-model", str(tmp_path / "b2"))
    assert code == 2 and "--save-model writes one blended model: give one --gamma" in err
    code, _, err = run(capsys, *common, "--save-model", str(source))  # never over an input
    assert code == 2 and "already a model folder" in err and not (tmp_path / "b2").exists()
