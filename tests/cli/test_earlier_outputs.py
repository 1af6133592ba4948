"""Writing into an --outdir that holds an earlier run's files: refused before anything renders, unless
--overwrite (each command wrote over the earlier files and left those it did not write, so a folder
mixed two runs: an image of one model beside the aux image of another)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cips3d.cli.common import refuse_earlier_outputs
from cips3d.errors import UserError
from cips3d.inference.inversion import Inversion, save_inversion
from cips3d.inference.video import seed_styles
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
def test_an_earlier_run_is_refused_then_replaced_with_overwrite(tmp_path, capsys, command):
    argv, written = RENDERS[command]
    out = tmp_path / "out"
    assert run(capsys, *argv, "--outdir", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert written in before
    (out / written).write_bytes(b"the earlier run's file")
    code, _, err = run(capsys, *argv, "--outdir", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{out} already holds files under the names of this command's outputs (" in err and written in err
    assert err.strip().endswith("give --overwrite to write over them, or another --outdir.")
    assert (out / written).read_bytes() == b"the earlier run's file"  # nothing written
    assert run(capsys, *argv, "--outdir", str(out), "--overwrite")[0] == 0
    replaced = (out / written).read_bytes()  # the render again (its record names --overwrite: not equal)
    assert replaced[:8] == before[written][:8] and len(replaced) > 100


def test_an_optional_output_of_the_same_seed_is_refused_then_kept_and_named_with_overwrite(tmp_path, capsys):
    """An --aux image left from a run of another model would sit beside the new image as its own. With
    --overwrite it is kept (a run that fails halfway must not cost the earlier one) and named."""
    argv = ["sample", *TINY, "--seeds", "3", "--size", "8", "--num-steps", "4", "--no-grid"]
    out = tmp_path / "out"
    out.mkdir()
    for name in ("seed0003_aux.png", "seed0003_depth.npy", "grid_aux.png", "seed0004_aux.png"):
        (out / name).write_bytes(b"another model's")
    code, _, err = run(capsys, *argv, "--outdir", str(out))  # this run writes no aux image and no grid
    assert code == 2 and "(seed0003_aux.png, seed0003_depth.npy)" in err  # grids and seed 4: no clash
    code, _, err = run(capsys, *argv, "--outdir", str(out), "--overwrite")
    assert code == 0 and "keeps seed0003_aux.png, seed0003_depth.npy, which this run does not write" in err
    names = ["grid_aux.png", "seed0003.png", "seed0003_aux.png", "seed0003_depth.npy", "seed0004_aux.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert (out / "seed0003_aux.png").read_bytes() == b"another model's"


def test_a_video_in_the_other_format_is_an_earlier_output_too(tmp_path, capsys):
    argv = RENDERS["video"][0]  # --format gif
    out = tmp_path / "out"
    out.mkdir()
    (out / "seed0003.mp4").write_bytes(b"an earlier run's mp4")
    code, _, err = run(capsys, *argv, "--outdir", str(out))
    assert code == 2 and "(seed0003.mp4)" in err
    assert run(capsys, *argv, "--outdir", str(out), "--overwrite")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed0003.gif", "seed0003.mp4"]  # named, kept


def test_another_runs_grid_does_not_stop_a_run_that_writes_none(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, *RENDERS["sample"][0], "--outdir", str(out))[0] == 0  # seed 3, its grid
    argv = ["sample", *TINY, "--seeds", "7", "--size", "8", "--num-steps", "4", "--no-grid"]
    assert run(capsys, *argv, "--outdir", str(out))[0] == 0
    assert (out / "grid.png").is_file() and (out / "grid_aux.png").is_file()


def test_other_commands_files_and_other_names_share_a_folder(tmp_path, capsys):
    """Matching by stem refused mesh's seed0003.ply beside sample's seed0003.png, and a fit named me
    beside me_2's renders: neither writes over the other."""
    out = tmp_path / "out"
    assert run(capsys, *RENDERS["sample"][0], "--outdir", str(out))[0] == 0
    for command in ("video", "mesh"):
        code, _, err = run(capsys, *RENDERS[command][0], "--outdir", str(out))
        assert code == 0, err
    for name in ("seed00030.png", "seed0004.png", ".seed0003.png.a1b2.tmp", "me_2.png", "notes.txt"):
        (out / name).write_bytes(b"x")
    refuse_earlier_outputs(out, ["seed0004.ply", "me.png", "me_aux.png", "seed0003.mp4"], overwrite=False)
    with pytest.raises(UserError, match=r"\(seed0004\.png\)"):
        refuse_earlier_outputs(out, ["seed0004.png"], overwrite=False)
    refuse_earlier_outputs(tmp_path / "not-yet", ["seed0003.png"], overwrite=False)  # no folder: nothing


def test_a_folder_in_the_way_of_an_output_is_refused_even_with_overwrite(tmp_path, capsys):
    """grid.png as a folder: sample wrote every seed's image, then failed at the grid (with --overwrite
    too, after the refusal had told the user to give it)."""
    out = tmp_path / "out"
    (out / "grid.png").mkdir(parents=True)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(capsys, *RENDERS["sample"][0], "--outdir", str(out), *extra)
        assert code == 2 and f"{out / 'grid.png'} is a folder where this writes a file" in err
        assert sorted(p.name for p in out.iterdir()) == ["grid.png"]


def test_blend_rows_and_its_videos_of_a_seed_share_a_folder(tmp_path, capsys):
    source = ["--source", "s", "--target", "t"]
    out = tmp_path / "out"
    out.mkdir()
    for name in ("seed0001_circle_near_far.gif", "seed0001.png"):  # a video of another kind, the rows
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / name)
    for kind in (["--sweep-frames", "3"], ["--video", "circle", "--frames", "2"]):
        code, _, err = run(capsys, "blend", *source, "--seeds", "1", *kind, "--outdir", str(out))
        assert code == 2 and "no checkpoint" in err  # past the refusal: the models s and t do not exist
    code, _, err = run(capsys, "blend", *source, "--seeds", "1", "--outdir", str(out))
    assert code == 2 and "(seed0001.png); give --overwrite" in err
    (out / "seed0001_circle.gif").mkdir()  # a folder under a name this run does not write: not in the way
    video = ["--video", "circle_near_far", "--frames", "2", "--format", "gif"]
    code, _, err = run(capsys, "blend", *source, "--seeds", "1", *video, "--outdir", str(out), "--overwrite")
    assert code == 2 and "no checkpoint" in err


def test_fitted_styles_render_beside_those_of_another_fit(tmp_path, capsys, tiny_G):
    for name in ("me", "me_2"):
        save_inversion(
            Inversion(seed_styles(tiny_G, 1)[0], 1.6, 1.5, 12.0), tmp_path / name / "styles.safetensors"
        )
    out = tmp_path / "views"
    argv = ["multiview", *TINY, "--size", "8", "--yaws", "1", "--pitches", "1", "--outdir", str(out)]
    assert run(capsys, *argv, "--styles", str(tmp_path / "me_2" / "styles.safetensors"))[0] == 0
    code, _, err = run(capsys, *argv, "--styles", str(tmp_path / "me" / "styles.safetensors"))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["me.png", "me_2.png"]


def test_invert_refuses_an_earlier_fit_in_its_folder(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(photo)
    out = tmp_path / "fit"
    argv = ["invert", *TINY, "--image", str(photo), "--size", "8", "--steps", "1", "--perceptual", "0"]
    assert run(capsys, *argv, "--outdir", str(out))[0] == 0
    fitted = (out / "styles.safetensors").read_bytes()
    code, _, err = run(capsys, *argv, "--outdir", str(out))
    assert code == 2 and "already holds files under the names of this command's outputs" in err
    assert "losses.json" in err and (out / "styles.safetensors").read_bytes() == fitted
    (out / "orbit.gif").write_bytes(b"an earlier fit's video")  # this fit makes none
    (out / "losses.json").write_text("an earlier fit's losses")
    code, _, err = run(capsys, *argv, "--outdir", str(out), "--overwrite")
    assert code == 0 and "keeps orbit.gif, which this run does not write" in err
    assert (out / "losses.json").read_text() != "an earlier fit's losses"  # written over


def test_invert_of_a_folder_says_a_file_in_the_way_before_fitting(tmp_path, capsys):
    """A file named like a photo's output folder failed only after the photos before it were fitted."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(photos / name)
    out = tmp_path / "fits"
    out.mkdir()
    (out / "b").write_text("a file")
    argv = ["invert", *TINY, "--image", str(photos), "--size", "8", "--steps", "1", "--perceptual", "0"]
    code, _, err = run(capsys, *argv, "--outdir", str(out))
    assert code == 2 and f"{out / 'b'} is a file, so the folder of b.png's fit cannot be made there." in err
    assert sorted(p.name for p in out.iterdir()) == ["b"]


def test_an_outdir_inside_a_runs_snapshots_is_refused(tmp_path, capsys):
    """Images written into a snapshot folder were deleted with it when training pruned old snapshots."""
    snapshot = tmp_path / "run" / "snapshots" / "step-000000008"
    snapshot.mkdir(parents=True)
    for outdir in (snapshot, snapshot / "mine"):
        code, _, err = run(capsys, *RENDERS["sample"][0], "--outdir", str(outdir))
        assert (
            code == 2
            and f"lies inside a snapshot of the run {tmp_path / 'run'}, which training prunes" in err
        )
        assert not (snapshot / "seed0003.png").exists()
    beside = tmp_path / "run" / "snapshots" / "samples"  # pruning deletes step-* folders only
    assert run(capsys, *RENDERS["sample"][0], "--outdir", str(beside))[0] == 0
