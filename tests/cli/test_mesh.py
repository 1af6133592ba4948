"""`cips3d mesh` end to end on the tiny preset, and its answers to bad input."""

from __future__ import annotations

import numpy as np
import pytest

from cips3d.cli import mesh as mesh_cli
from cips3d.errors import UserError
from cips3d.inference.geometry import extract_mesh
from cips3d.inference.multiview import styles_for_seeds
from tests.cli.helpers import run
from tests.inference.test_geometry import edge_counts, read_ply


def test_mesh_writes_ply_and_obj_matching_the_library(tmp_path, capsys, tiny_G):
    out = tmp_path / "m"
    args = ["mesh", "--preset", "tiny", "--seeds", "0,2", "--resolution", "12", "--level", "50%"]
    code, stdout, _ = run(capsys, *args, "--format", "ply,obj", "--outdir", str(out), "--quiet")
    assert code == 0 and str(out) in stdout
    for seed in (0, 2):
        ply = read_ply(out / f"seed{seed:04d}.ply")
        ref = extract_mesh(
            tiny_G, styles_for_seeds(tiny_G, [seed]), resolution=12, level=0.5, relative_level=True
        )
        xyz = np.stack([ply["x"], ply["y"], ply["z"]], axis=1)
        assert np.allclose(xyz, ref.vertices, atol=1e-6) and np.array_equal(ply["faces"], ref.faces)
        rgb = np.stack([ply["red"], ply["green"], ply["blue"]], axis=1)
        assert np.abs(rgb.astype(int) - ref.colors.astype(int)).max() <= 1
        assert (edge_counts(ply["faces"]) == 2).all()
        obj = (out / f"seed{seed:04d}.obj").read_text().splitlines()
        assert sum(line.startswith("v ") for line in obj) == len(ref.vertices)
        assert sum(line.startswith("f ") for line in obj) == len(ref.faces)
    assert not (out / "seed0001.ply").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resolution", "4"], "--resolution"),
        (["--level", "abc"], "--level"),
        (["--level", "150%"], "--level"),
        (["--level", "-3"], "--level"),
        (["--format", "stl"], "--format"),
        (["--level", "inf"], "--level must be a positive finite density, got 'inf'."),  # was: after the grid
        (["--bound", "1e300"], "--bound must be positive and at most 1e+06, got 1e+300."),  # was: a traceback
        (["--chunk", "100000000"], "--chunk must be at most 4,194,304 points"),  # was: 8 GB at 256^3
    ],
    ids=[
        "resolution",
        "level-text",
        "level-percent",
        "level-negative",
        "format",
        "level-inf",
        "bound",
        "chunk",
    ],
)
def test_bad_options_are_refused_before_the_model_is_loaded(tmp_path, capsys, args, message):
    # The checkpoint does not exist: the option must be refused before anything is loaded.
    code, _, err = run(capsys, "mesh", "--checkpoint", str(tmp_path / "none.pth"), *args, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_a_level_the_density_never_reaches_is_one_sentence(tmp_path, capsys):
    args = ["mesh", "--preset", "tiny", "--seeds", "1", "--resolution", "8", "--level", "1e6"]
    code, _, err = run(capsys, *args, "--outdir", str(tmp_path), "--quiet")
    assert code == 2 and "never reaches" in err and "seed 1" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.ply"))


def test_a_seed_that_makes_no_surface_is_skipped_and_the_others_are_written(tmp_path, capsys, monkeypatch):
    resolve = mesh_cli.resolve_level
    calls = []

    def second_fails(grid, level, relative=False):
        calls.append(level)
        if len(calls) == 2:
            raise UserError("the density never reaches the level 0.69 (its maximum is 0.6667)")
        return resolve(grid, level, relative)

    monkeypatch.setattr(mesh_cli, "resolve_level", second_fails)
    args = ["mesh", "--preset", "tiny", "--seeds", "0-2", "--resolution", "8", "--level", "50%"]
    code, out, err = run(capsys, *args, "--outdir", str(tmp_path), "--quiet")
    assert code == 2  # was: stopped at seed 1, seed 2 never tried and seed 0's file not mentioned
    assert sorted(p.name for p in tmp_path.glob("*.ply")) == ["seed0000.ply", "seed0002.ply"]
    assert "wrote 2 ply meshes" in out
    assert err.splitlines() == [
        "cips3d mesh: seed 1 skipped: the density never reaches the level 0.69 (its maximum is 0.6667)",
        "cips3d mesh: error: 1 seed made no surface at this level (1); see the lines above.",
    ]
