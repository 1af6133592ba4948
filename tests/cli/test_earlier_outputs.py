"""Writing into an --outdir that holds an earlier run's files: refused before anything renders, unless
--force (each command wrote over the earlier files and left those it did not write, so a folder mixed
two runs: an image of one model beside the aux image of another)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cips3d.cli.common import refuse_earlier_outputs
from cips3d.errors import UserError
from tests.cli.helpers import run

TINY = ["--preset", "tiny", "--device", "cpu", "--quiet"]
RENDERS = {
    "sample": (["sample", *TINY, "--seeds", "3", "--size", "8", "--num-steps", "4", "--aux"], "seed0003.png"),
    "multiview": (["multiview", *TINY, "--seeds", "3", "--size", "8", "--yaws", "2", "--pitches", "1"],
                  "seed0003.png"),
    "video": (["video", *TINY, "--seeds", "3", "--size", "8", "--num-steps", "4", "--frames", "2",
               "--format", "gif"], "seed0003.gif"),
    "mesh": (["mesh", *TINY, "--seeds", "3", "--resolution", "8", "--level", "50%", "--format", "ply"],
             "seed0003.ply"),
}  # fmt: skip


@pytest.mark.parametrize("command", list(RENDERS))
def test_an_earlier_run_is_refused_then_replaced_with_force(tmp_path, capsys, command):
    argv, written = RENDERS[command]
    out = tmp_path / "out"
    assert run(capsys, *argv, "--outdir", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert written in before
    (out / written).write_bytes(b"the earlier run's file")
    code, _, err = run(capsys, *argv, "--outdir", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{out} already holds files of an earlier run under the names this would write (" in err
    assert written in err
    assert err.strip().endswith("give --force to write over them, or another --outdir.")
    assert (out / written).read_bytes() == b"the earlier run's file"  # nothing written
    assert run(capsys, *argv, "--outdir", str(out), "--force")[0] == 0
    replaced = (out / written).read_bytes()  # the render again (its record names --force: not equal)
    assert replaced[:8] == before[written][:8] and len(replaced) > 100


def test_the_names_of_a_seed_cover_its_every_file_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("seed00030.png", "seed0004.png", ".seed0003.png.a1b2.tmp", "notes.txt", "grids.png"):
        (out / name).write_bytes(b"x")
    refuse_earlier_outputs(out, ["seed0003", "grid"], force=False)  # none of these is seed 3's or the grid
    for name in ("seed0003_depth.npy", "grid_aux.png"):  # another run's aux, depth: would mix with the new
        (out / name).write_bytes(b"x")
        with pytest.raises(UserError, match=name):
            refuse_earlier_outputs(out, ["seed0003", "grid"], force=False)
        (out / name).unlink()
    refuse_earlier_outputs(tmp_path / "not-yet", ["seed0003"], force=False)  # no folder: nothing to refuse


def test_a_folder_in_the_way_of_an_output_is_said_before_anything_renders(tmp_path, capsys):
    """grid.png as a folder: sample wrote every seed's image, then failed at the grid."""
    out = tmp_path / "out"
    (out / "grid.png").mkdir(parents=True)
    code, _, err = run(capsys, *RENDERS["sample"][0], "--outdir", str(out))
    assert code == 2 and "(grid.png); give --force" in err
    assert sorted(p.name for p in out.iterdir()) == ["grid.png"]


def test_blend_rows_and_its_videos_of_a_seed_share_a_folder(tmp_path, capsys):
    source = ["--source", "s", "--target", "t"]
    out = tmp_path / "out"
    out.mkdir()
    for name in ("seed0001_yaw.gif", "seed0001.png"):  # a yaw video and the rows of seed 1
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / name)
    code, _, err = run(capsys, "blend", *source, "--seeds", "1", "--sweep-frames", "3", "--outdir", str(out))
    assert code == 2 and "no checkpoint" in err  # past the refusal: the models s and t do not exist
    code, _, err = run(capsys, "blend", *source, "--seeds", "1", "--outdir", str(out))
    assert code == 2 and "(seed0001.png); give --force" in err


def test_invert_refuses_an_earlier_fit_in_its_folder(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(photo)
    out = tmp_path / "fit"
    argv = ["invert", *TINY, "--image", str(photo), "--size", "8", "--steps", "1", "--perceptual", "0"]
    assert run(capsys, *argv, "--outdir", str(out))[0] == 0
    fitted = (out / "styles.safetensors").read_bytes()
    code, _, err = run(capsys, *argv, "--outdir", str(out))
    assert code == 2 and "already holds files of an earlier run" in err and "losses.json" in err
    assert (out / "styles.safetensors").read_bytes() == fitted
    assert run(capsys, *argv, "--outdir", str(out), "--force")[0] == 0
