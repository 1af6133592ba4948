"""`cips3d train2d`: a short run, its exact continuation, and one-sentence errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cips3d.cli.main import main
from cips3d.io.checkpoint2d import load_generator2d
from cips3d.io.images import read_png_record
from cips3d.io.video import read_video_frames
from cips3d.metrics.inception import default_weights_path
from cips3d.training.snapshot import load_snapshot
from tests.cli.helpers import run
from tests.conftest import write_blobs

OPTIONS = ["--preset", "cips-tiny", "--batch-size", "2", "--snapshot-every", "2", "--quiet", "--device",
           "cpu"]  # fmt: skip


def train2d(capsys, data, outdir, steps: int, *extra: str):
    where = ["--data", str(data), "--outdir", str(outdir), "--max-steps", str(steps)]
    return run(capsys, "train2d", *where, *extra, *OPTIONS)


def test_a_run_and_its_resume_write_snapshots_with_previews(capsys, tmp_path, blob_folder):
    out = tmp_path / "run"
    code, text, err = train2d(capsys, blob_folder, out, 2, "--patch", "16")
    assert code == 0, err
    assert "step 2" in text and (out / "snapshots" / "step-000000002" / "preview.png").is_file()
    assert read_png_record(out / "snapshots" / "step-000000002" / "preview.png")["step"] == 2
    assert list((out / "logs").glob("events.out.tfevents.*"))  # --quiet hides the bar, not the logs
    code, text, err = train2d(capsys, blob_folder, out, 3, "--patch", "16", "--resume")
    assert code == 0, err
    assert load_snapshot(out).state.global_step == 3 and "step 3" in text
    before = sorted(p.name for p in (out / "snapshots").iterdir())
    code, _, err = train2d(capsys, blob_folder, out, 2, "--patch", "16", "--seed", "7")
    assert code == 2 and "already holds a run" in err and err.count("\n") == 1
    code, _, err = train2d(capsys, blob_folder, out, 4, "--resume", "--patch", "8", "--seed", "3")
    assert code == 2 and err.count("\n") == 1
    assert "--patch 8 (the run's: 16); --seed 3 (the run's: 0)" in err
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == before  # nothing written over


def test_a_torchrun_restart_continues_the_run(capsys, tmp_path, blob_folder, monkeypatch):
    """torchrun --max-restarts starts the same command again: it goes on from the newest snapshot."""
    out = tmp_path / "run"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")  # as torchrun sets it, in every start of the job
    assert train2d(capsys, blob_folder, out, 1, "--patch", "16")[0] == 0
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    code, _, err = train2d(capsys, blob_folder, out, 2, "--patch", "16")
    assert code == 0 and "torchrun restart 2: continuing the run" in err, err
    assert load_snapshot(out).state.global_step == 2


def test_a_resume_takes_the_runs_settings_and_data_and_may_change_snapshots(capsys, tmp_path, blob_folder):
    out = tmp_path / "run"
    code, _, err = train2d(capsys, blob_folder, out, 2, "--patch", "16", "--seed", "5", "--xflip")
    assert code == 0, err
    # Nothing but the run and the new limit: the patch, seed, flip and data are read back from the run.
    code, text, err = run(capsys, "train2d", "--resume", str(out), "--max-steps", "3", "--snapshot-every",
                          "3", "--keep", "1", "--quiet", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    snapshot = load_snapshot(out)
    assert snapshot.state.global_step == 3 and "step 3" in text
    assert snapshot.config["patch"] == 16 and snapshot.config["seed"] == 5 and snapshot.config["xflip"]
    assert snapshot.config["snapshot_every"] == 3 and snapshot.config["keep_snapshots"] == 1
    kept = {p.name for p in (out / "snapshots").iterdir()}
    assert kept == {"step-000000003", snapshot.state.best_snapshot}  # --keep 1: the newest and the best
    code, _, err = run(capsys, "train2d", "--resume", str(out), "--outdir", str(tmp_path / "other"),
                       "--max-steps", "4")  # fmt: skip
    assert code == 2 and "leave out --outdir" in err and err.count("\n") == 1


def test_mistakes_are_one_sentence(capsys, tmp_path, blob_folder):
    code, _, err = train2d(capsys, tmp_path / "nowhere", tmp_path / "r", 1)
    assert code == 2 and err.count("\n") == 1 and "nowhere" in err
    code, _, err = train2d(capsys, blob_folder, tmp_path / "fresh", 1, "--resume")
    assert code == 2 and "nothing to resume" in err
    code, _, err = train2d(capsys, blob_folder, tmp_path / "r2", 1, "--patch", "12")
    assert code == 2 and "over a power of two" in err
    code, _, err = train2d(capsys, blob_folder, tmp_path / "r2", 1, "--patch", "1")  # 32 / 1: a power of two
    assert code == 2 and err.endswith("the patch side (--patch) must be at least 8 px, the discriminator's "
                                      "smallest input, not 1.\n")  # fmt: skip
    with pytest.raises(SystemExit):  # was: a step of 100,000 columns that ran for hours
        main(["train2d", "--data", str(blob_folder), "--outdir", str(tmp_path / "r4"), "--width", "100000"])
    assert "argument --width: '100000' is more than 4096 pixels" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r4").exists()
    (tmp_path / "afile").write_text("")
    code, _, err = train2d(capsys, blob_folder, tmp_path / "afile", 1)
    assert code == 2 and "afile is a file, so the folder" in err  # it was "Not a directory (afile/logs)"
    write_blobs(tmp_path / "one", count=1)
    code, _, err = train2d(capsys, tmp_path / "one", tmp_path / "r3", 2, "--fid", "4")
    assert code == 2 and "FID and KID compare feature statistics and need 2 images" in err
    assert not (tmp_path / "r3" / "snapshots").exists()


def test_torchrun_trains_on_two_processes_and_only_rank_zero_reports(tmp_path, blob_folder):
    from tests.training import ddp_workers  # noqa: PLC0415

    done = ddp_workers.torchrun_cips3d(
        "train2d", "--data", str(blob_folder), "--outdir", str(tmp_path / "run"), "--max-steps", "2", *OPTIONS
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sum("step 2, preview" in line for line in done.stdout.splitlines()) == 1, done.stdout
    snapshot = load_snapshot(tmp_path / "run")
    assert snapshot.state.images_seen == 2 * 2 * 2 and len(snapshot.rng["other_ranks"]) == 1


def test_a_panorama_run_trains_on_whole_turns_and_samples_past_its_seam(capsys, tmp_path, panorama_zip):
    out = tmp_path / "pano"
    code, text, err = train2d(capsys, panorama_zip, out, 2, "--panorama", "--width", "128", "--patch", "16")
    assert code == 0, err
    G = load_generator2d(out)
    assert (G.config.coordinates, G.config.size, G.config.grid_width) == ("cylinder", 32, 128)
    preview = Image.open(out / "snapshots" / "step-000000002" / "preview.png")
    assert preview.size[0] > 3 * preview.size[1]  # a 4 x 4 grid of 32 x 128 panoramas (and padding)
    sampled = ["sample2d", "--checkpoint", str(out), "--seeds", "0", "--quiet", "--device", "cpu"]
    code, text, err = run(capsys, *sampled, "--turns", "1.5", "--outdir", str(tmp_path / "s"))
    assert code == 0, err
    image = np.asarray(Image.open(tmp_path / "s" / "seed0000.png"))
    assert image.shape == (32, 192, 3) and "192x32" in text
    assert np.abs(image[:, 128:].astype(int) - image[:, :64]).max() <= 1  # the second turn repeats the first
    code, _, err = run(capsys, *sampled, "--foveated", "100", "--outdir", str(tmp_path / "f"))
    assert code == 2 and "not square" in err
    code, text, err = run(capsys, *sampled, "--pan", "4", "--view", "90", "--outdir", str(tmp_path / "p"))
    assert code == 0, err
    video = next((tmp_path / "p").glob("seed0000_pan.*"))
    frames = read_video_frames(video)
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3) and "turning once around" in text
    code, text, err = run(capsys, *sampled, "--pan", "2", "--view", "60", "--size", "16", "--outdir",
                          str(tmp_path / "odd"))  # fmt: skip
    assert code == 0 and (tmp_path / "odd" / "seed0000_pan.gif").is_file(), err  # 11 x 16 frames
    assert "note: GIF instead of MP4 where" in err


def test_turns_are_for_panorama_runs(capsys, tmp_path, blob_folder):
    out = tmp_path / "flat"
    assert train2d(capsys, blob_folder, out, 1)[0] == 0
    code, _, err = run(
        capsys, "sample2d", "--checkpoint", str(out), "--turns", "2", "--outdir", str(tmp_path)
    )
    assert code == 2 and "turns are for panorama models" in err
    code, _, err = run(capsys, "sample2d", "--checkpoint", str(out), "--pan", "8", "--outdir", str(tmp_path))
    assert code == 2 and "--pan is for panorama runs" in err


def test_a_time_limit_alone_is_enough_and_some_limit_is_needed(capsys, tmp_path, blob_folder):
    where = ["train2d", "--data", str(blob_folder), "--outdir", str(tmp_path / "run"), *OPTIONS]
    code, _, err = run(capsys, *where)
    assert code == 2 and "give --max-steps, --minutes or both" in err
    code, text, err = run(capsys, *where, "--minutes", "0.001")  # stops after its first iteration
    assert code == 0, err
    assert load_snapshot(tmp_path / "run").state.global_step >= 1 and "preview" in text
    run_dir = tmp_path / "run"
    assert (f"cips3d train2d: stopped: reached 0.001 minutes; `cips3d train2d --resume {run_dir} --minutes "
            "0.001` (or --max-steps N) continues.") in text  # fmt: skip
    code, _, err = run(capsys, "train2d", "--resume", str(run_dir), *OPTIONS)  # the limit is not carried over
    assert code == 2 and "(a resume keeps the run's --max-steps, not its --minutes)." in err


def test_a_resume_keeps_scoring_by_fid(capsys, tmp_path, blob_folder):
    out = tmp_path / "run"
    assert (
        train2d(capsys, blob_folder, out, 2, "--fid", "4", "--inception", str(default_weights_path()))[0] == 0
    )
    code, text, err = run(capsys, "train2d", "--resume", str(out), "--max-steps", "4", *OPTIONS)
    assert code == 0, err
    assert (
        f"note: going on with the run's --fid 4, --inception {default_weights_path().resolve()} (give" in text
    )
    assert [r["step"] for r in load_snapshot(out).state.history if "fid" in r] == [2, 4]
    code, text, err = run(capsys, "train2d", "--resume", str(out), "--max-steps", "6", "--fid", "0", *OPTIONS)
    assert code == 0 and "--fid" not in text, err
    assert [r["step"] for r in load_snapshot(out).state.history if "fid" in r] == [2, 4]  # none at 6


def test_a_resume_keeps_the_runs_step_limit_as_train_does(capsys, tmp_path, blob_folder):
    out = tmp_path / "run"
    assert train2d(capsys, blob_folder, out, 1)[0] == 0
    code, text, err = run(capsys, "train2d", "--resume", str(out), "--quiet", "--device", "cpu")
    assert code == 0, err  # was: "give --max-steps, --minutes or both" though run.json records 1
    assert "already at step 1 (--max-steps 1); nothing to do." in text
    assert "going on with the run's --max-steps 1" in text
