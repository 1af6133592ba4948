"""`cips3d info`: each kind of checkpoint is named, with what it holds."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile

import numpy as np
import torch
from PIL import Image

from cips3d.io.checkpoint import official_state_dict, save_generator
from cips3d.io.checkpoint2d import generator2d_from_official, save_generator2d
from cips3d.io.images import save_png
from cips3d.io.inspect_run import SNAPSHOT_FILES
from cips3d.training.snapshot import load_snapshot
from cips3d.training.trainer import Trainer, TrainOptions
from cips3d.training.trainer2d import Train2DConfig, Trainer2D
from tests.cli.helpers import run
from tests.conftest import fixture_path
from tests.convert.cips_official import official_d_state, official_state
from tests.training.conftest import micro_config


def info(capsys, *args: str) -> dict:
    code, text, err = run(capsys, "info", *args, "--json")
    assert code == 0, err
    return json.loads(text)


def test_official_files_are_named_with_what_they_fit(capsys, tmp_path, tiny_G):
    small = info(capsys, str(fixture_path("official", "small_G_state_dict.pt")))
    assert small["kind"] == "an official CIPS-3D generator state dict" and small["parameters"] == 80775
    assert "fits none of the presets" in small["config"]
    torch.save(official_state_dict(tiny_G), tmp_path / "tiny.pth")
    assert (
        info(capsys, str(tmp_path / "tiny.pth"))["config"] == "fits preset tiny (convert with --preset tiny)"
    )
    content = {"g_ema": official_state(), "d": official_d_state(), "args": argparse.Namespace(size=8)}
    torch.save(content, tmp_path / "cips.pt")
    cips = info(capsys, str(tmp_path / "cips.pt"))
    assert cips["kind"] == "an official 2D CIPS checkpoint" and cips["holds"] == "g_ema, d, args"
    assert cips["generator"].startswith("CIPSskip 8x8 px") and "official alignment" in cips["generator"]
    assert cips["discriminator"] == "reads 3 channels at 8 px, multiplier 2"


def test_our_folders_and_runs_are_named(capsys, tmp_path, tiny_G, blob_folder):
    save_generator(tiny_G, tmp_path / "three")
    three = info(capsys, str(tmp_path / "three"))
    parameters = sum(p.numel() for p in tiny_G.parameters())
    assert three == {"kind": "a CIPS-3D model folder", "generator": "preset tiny", "parameters": parameters,
                     "weights": "fit config.json"}  # fmt: skip
    save_generator2d(generator2d_from_official(official_state(residual=True)), tmp_path / "two")
    assert info(capsys, str(tmp_path / "two"))["generator"].startswith("CIPSres 8x8 px")
    config = Train2DConfig(generator="cips-tiny", batch_size=2, d_max_channels=32, snapshot_every=1)
    Trainer2D(config, tmp_path / "run2d", blob_folder, progress=False).run(max_steps=1)
    capsys.readouterr()  # the run's snapshot line
    run2d = info(capsys, str(tmp_path / "run2d"))
    assert run2d["kind"] == "a 2D CIPS training run (cips3d train2d)" and run2d["step"] == 1
    assert "preset cips-tiny" in run2d["generator"] and run2d["last scored step"] == 1
    assert isinstance(run2d["last SWD"], float) and "last FID" not in run2d
    # A run's snapshots folder is its run, and one file of a snapshot its snapshot
    assert info(capsys, str(tmp_path / "run2d" / "snapshots")) == run2d
    snapshot = next((tmp_path / "run2d" / "snapshots").iterdir())
    as_snapshot = run2d | {"kind": "a snapshot of a 2D CIPS training run (cips3d train2d)"}
    assert info(capsys, str(snapshot)) == as_snapshot
    weights = snapshot / "G_ema.safetensors"
    assert weights.is_file()  # the file is named with what it holds (a D file was said to be a run)
    assert info(capsys, str(weights)) == as_snapshot | {
        "file": f"G_ema.safetensors: {SNAPSHOT_FILES[weights.name]}"
    }
    assert info(capsys, str(snapshot / "D.safetensors"))["file"] == "D.safetensors: the discriminator"
    (tmp_path / "run2d" / "run.json").write_text("garbage")  # said, not a traceback or a refusal
    damaged = info(capsys, str(tmp_path / "run2d"))
    assert damaged["run record"] == "run.json cannot be read: restore it before a --resume, or give --data"


def test_weights_that_do_not_fit_their_config_are_said(capsys, tmp_path, tiny_G):
    save_generator(tiny_G, tmp_path / "three")
    config = json.loads((tmp_path / "three" / "config.json").read_text())
    config["generator"]["nerf"]["hidden_dim"] *= 2  # sample would refuse the folder; info said nothing
    (tmp_path / "three" / "config.json").write_text(json.dumps(config))
    weights = info(capsys, str(tmp_path / "three"))["weights"]
    assert weights.startswith("do not fit config.json: model.safetensors does not match the model: ")
    assert "wrongly shaped (" in weights and "(expected (128, 64))" in weights


def test_a_reader_that_stops_early_is_no_error(tmp_path, tiny_G):
    save_generator(tiny_G, tmp_path / "three")
    command = [sys.executable, "-m", "cips3d", "info", str(tmp_path / "three")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as shown:
        shown.stdout.close()  # `| head -0`: the pipe is closed before the first line
        err = shown.stderr.read().decode()
    assert shown.returncode == 0 and err == ""  # was: "cips3d info: error: Broken pipe."


def test_what_is_not_a_checkpoint_is_said(capsys, tmp_path):
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    code, text, _ = run(capsys, "info", str(tmp_path / "other.pt"))
    assert code == 0 and "a state dict of 1 tensor that cips3d does not recognise" in text
    assert text.splitlines()[-1].split() == ["parameters", "2"]
    code, _, err = run(capsys, "info", str(tmp_path / "missing"))
    assert code == 2 and "there is nothing at" in err
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    code, _, err = run(capsys, "info", str(tmp_path / "loop_a"))
    assert code == 2 and f"loop_a is a link to {tmp_path / 'loop_b'}, which does not exist (or loops)." in err
    code, _, err = run(capsys, "info", "/dev/null")  # was "no checkpoint file at /dev/null"
    assert code == 2 and "/dev/null is not a regular file (a device, a pipe?), so not a checkpoint." in err
    named = (("seed0000.png", "an image"), ("depth.npy", "a NumPy array"), ("m.ply", "a mesh"),
             ("seed0000.gif", "a GIF"))  # fmt: skip
    for name, what in named:  # named by what it is, not as a damaged model
        if name.endswith((".png", ".gif")):  # a readable image without a record
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(b"not read")
        code, _, err = run(capsys, "info", str(tmp_path / name))
        assert code == 2 and f"{name} is {what}" in err and "cips3d info describes models" in err


def test_damaged_images_videos_zips_and_weights_are_said_to_be_damaged(capsys, tmp_path):
    """A truncated PNG and an mp4 of garbage were 'without a cips3d record' (as if fine); zips of no
    images and a cut-off zip were 'not a readable PyTorch state dict'; an official file with an
    infinite weight was 'a PyTorch file cips3d does not recognise', exit 0."""
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "good.png")
    whole = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "clip.mp4").write_bytes(b"no video at all")
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as archive:
        archive.writestr("a.txt", "x")
    zipfile.ZipFile(tmp_path / "empty.zip", "w").close()
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as archive:
        archive.write(tmp_path / "good.png", "good.png")
    (tmp_path / "cut.zip").write_bytes((tmp_path / "images.zip").read_bytes()[:-30])
    torch.save({"siren.weight": torch.tensor([1.0, float("inf")])}, tmp_path / "inf.pth")
    said = {
        "cut.png": "cut.png is named as an image but cannot be read as one (image file is truncated",
        "clip.mp4": "clip.mp4 is named as a video but cannot be read as one (Invalid data found",
        "notes.zip": "notes.zip is a zip with no images in it (1 file: a.txt); cips3d info describes",
        "empty.zip": "empty.zip is an empty zip; cips3d info describes",
        "cut.zip": "cut.zip is a zip that cannot be read (File is not a zip file: damaged or cut short?)",
        "inf.pth": "inf.pth holds NaN or infinite weights (first: siren.weight)",
    }
    for name, words in said.items():
        code, _, err = run(capsys, "info", str(tmp_path / name))
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (name, err)


def test_a_3d_run_is_named_with_its_stage(capsys, tmp_path, blob_folder):
    trainer = Trainer(
        micro_config(), tmp_path / "run", blob_folder, TrainOptions(progress=False, max_steps=2)
    )
    trainer.run()
    capsys.readouterr()  # the run's own messages
    described = info(capsys, str(tmp_path / "run"))
    assert described["kind"] == "a CIPS-3D training run (cips3d train)" and described["step"] == 2
    assert described["stage"] == "r16" and described["steps into the stage"] == 2
    assert described["best snapshot"].startswith("step-") and described["best SWD"] > 0
    snapshot = load_snapshot(tmp_path / "run", training_state=False)
    assert described["parameters"] == sum(p.numel() for p in trainer.G_ema.parameters())
    assert described["D parameters"] == sum(p.numel() for p in trainer.D.parameters())
    assert described["training state"] == "readable"
    assert described["curriculum"] == "a config of its own"  # micro_config is no preset
    # The snapshots folder is the run to info; loading it said "not a cips3d checkpoint".
    assert info(capsys, str(tmp_path / "run" / "snapshots"))["step"] == 2
    code, _, err = run(capsys, "sample", "--checkpoint", str(tmp_path / "run" / "snapshots"), "--outdir",
                       str(tmp_path / "o"))  # fmt: skip
    assert code == 2 and f"holds the snapshots of the run {tmp_path / 'run'}; give the run" in err
    tuned = Trainer(
        micro_config(), tmp_path / "tuned", blob_folder, TrainOptions(progress=False, max_steps=1)
    )
    tuned.warm_start(tmp_path / "run")
    tuned.run()
    capsys.readouterr()
    started = (tmp_path / "run" / "snapshots" / "step-000000002").resolve()  # not the run, which goes on
    expected = f"a config of its own; fine-tuned from {started}"
    assert info(capsys, str(tmp_path / "tuned"))["curriculum"] == expected
    # A damaged optimizers' file shows here, not only when a resume reads it.
    optimizers = snapshot.path / "optimizers.pt"
    optimizers.write_bytes(optimizers.read_bytes()[:100])
    damaged = info(capsys, str(tmp_path / "run"))["training state"]
    assert damaged.startswith("cannot be read, so --resume cannot go on from it (") and damaged != "readable"
    (snapshot.path / "rng.pt").unlink()
    optimizers.write_bytes(b"")
    assert info(capsys, str(tmp_path / "run"))["training state"].startswith("cannot be read")


def test_the_lines_write_counts_with_thousands_separators(capsys, tmp_path, tiny_G):
    save_generator(tiny_G, tmp_path / "three")
    code, text, _ = run(capsys, "info", str(tmp_path / "three"))
    count = sum(p.numel() for p in tiny_G.parameters())
    assert code == 0 and f"parameters  {count:,}" in text and count >= 1000


def test_a_run_before_its_first_snapshot_is_named_as_a_run(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"data": "x", "config": {}}')
    code, _, err = run(capsys, "info", str(tmp_path / "run"))
    assert code == 2 and "holds no complete training snapshot" in err and "config.json" not in err


def test_image_folders_and_dataset_zips_are_described_not_refused(capsys, tmp_path, blob_folder):
    folder = info(capsys, str(blob_folder))  # was: "a folder without config.json, so not a checkpoint"
    first = sorted(p.name for p in blob_folder.iterdir())[0]
    assert folder["kind"] == "a folder of images" and folder["images"] == len(list(blob_folder.iterdir()))
    assert folder["first image"].startswith(f"{first}: ") and folder["first image"].endswith(" PNG")
    code, _, err = run(capsys, "dataset", str(blob_folder), str(tmp_path / "d.zip"), "--resolution", "8",
                       "--quiet")  # fmt: skip
    assert code == 0, err
    packed = info(capsys, str(tmp_path / "d.zip"))
    assert (
        packed["kind"] == "a dataset zip written by `cips3d dataset`" and packed["images"] == folder["images"]
    )
    assert packed["first image"] == "00000/img00000000.png: 8 x 8 RGB PNG"
    assert "--data of train" in packed["use"]
    # A folder whose images are behind a link is a folder of images, as datasets read it; one with
    # nothing is said to be so (both were "a folder without config.json, so not a cips3d checkpoint").
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "d").symlink_to(blob_folder, target_is_directory=True)
    assert info(capsys, str(tmp_path / "linked"))["images"] == folder["images"]
    (tmp_path / "empty" / "__MACOSX").mkdir(parents=True)
    (tmp_path / "empty" / "__MACOSX" / "a.png").write_bytes(b"")
    code, _, err = run(capsys, "info", str(tmp_path / "empty"))
    assert (
        code == 2 and "empty is a folder with no model (config.json), training run, images or videos" in err
    )


def test_a_folder_of_renders_is_said_to_hold_them(capsys, tmp_path, blob_folder):
    """`sample`'s folder was offered as training data: grids, depth and normals maps included."""
    out = tmp_path / "s"
    code, _, err = run(capsys, "sample", "--preset", "tiny", "--seeds", "0-1", "--size", "8", "--depth",
                       "--normals", "--outdir", str(out), "--quiet")  # fmt: skip
    assert code == 0, err
    described = info(capsys, str(out))
    assert described["images"] == 9  # three grids and each seed's image, depth and normals
    assert described["note"].startswith("7 of them look like what cips3d's renders write")
    assert described["written by"] == "cips3d sample (9 images)"  # as its PNGs record; single images
    assert "note" not in info(capsys, str(blob_folder))  # photos are just photos


def test_a_rendered_png_is_described_by_its_record(capsys, tmp_path):
    """`cips3d info seed0003.png`: how the image was made, from the record in it; a PNG without one is
    still refused as an image."""
    out = tmp_path / "s"
    args = ["sample", "--preset", "tiny", "--seeds", "3", "--size", "8", "--psi", "0.6", "--pitch", "1.4"]
    assert run(capsys, *args, "--outdir", str(out), "--quiet")[0] == 0
    described = info(capsys, str(out / "seed0003.png"))
    assert described["kind"] == "an image written by cips3d sample" and described["image size"] == "8 x 8"
    assert (described["output"], described["seed"], described["psi"], described["preset"]) == (
        "image",
        3,
        0.6,
        "tiny",
    )
    assert described["pose"] == {"pitch": 1.4, "yaw": 1.5707963267948966}  # --json keeps the record's JSON
    assert described["render"]["precision"] == "float32" and described["render"]["img_size"] == 8
    text = run(capsys, "info", str(out / "seed0003.png"))[1]
    assert "pitch 1.4, yaw 1.5708\n" in text and "precision float32" in text  # written out
    save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "plain.png")
    code, _, err = run(capsys, "info", str(tmp_path / "plain.png"))
    assert code == 2 and "plain.png is an image" in err
    args = ["video", "--preset", "tiny", "--seeds", "4", "--size", "9", "--frames", "2", "--format", "gif"]
    assert run(capsys, *args, "--trajectory", "yaw", "--outdir", str(out), "--quiet")[0] == 0
    folder = info(capsys, str(out))  # its PNGs; a folder of videos alone:
    video = info(capsys, str(out / "seed0004.gif"))  # a video's record is in its comment
    (tmp_path / "videos").mkdir()
    (out / "seed0004.gif").rename(tmp_path / "videos" / "seed0004.gif")
    videos = info(capsys, str(tmp_path / "videos"))
    assert (videos["kind"], videos["videos"], videos["written by"]) == (
        "a folder of videos",
        1,
        "cips3d video (1 video)",
    )
    assert folder["written by"] == "cips3d sample (2 images)"  # seed0003.png and grid.png
    assert video["kind"] == "a video written by cips3d video" and video["seed"] == 4
    assert (video["trajectory"], video["frames"], video["panels"]) == ("yaw", 2, ["image"])
    assert (video["frame size"], video["length"]) == ("9 x 9", "2 frames")  # from the file's header


def test_a_zip_member_that_cannot_be_read_is_no_traceback(capsys, tmp_path):
    """A render-named member whose bytes fail their checksum: info describes the zip (it read its
    record and failed with zipfile's traceback)."""
    tile = np.zeros((8, 8, 3), np.uint8)
    for seed in (0, 1):
        save_png(tile, tmp_path / f"seed{seed:04d}.png", {"command": "cips3d sample", "seed": seed})
    with zipfile.ZipFile(tmp_path / "renders.zip", "w") as archive:  # stored: the bytes are as written
        for seed in (0, 1):
            archive.write(tmp_path / f"seed{seed:04d}.png", f"seed{seed:04d}.png")
    data = bytearray((tmp_path / "renders.zip").read_bytes())
    at = data.index(b"IDAT")  # the first member's pixels
    data[at + 8] ^= 0xFF
    (tmp_path / "renders.zip").write_bytes(bytes(data))
    described = info(capsys, str(tmp_path / "renders.zip"))
    assert described["kind"] == "a zip of images" and described["images"] == 2


def test_render_folders_say_which_command_wrote_them(capsys, tmp_path, blob_folder):
    """multiview's grids and blend's rows are seedNNNN.png like sample's images, and were not flagged:
    the record in each PNG names its command, and a seedNNNN_flip.png (written by multiview alone) says
    so for PNGs without one."""
    tile = np.zeros((8, 8, 3), np.uint8)
    for seed in (0, 1):
        save_png(tile, tmp_path / "blend" / f"seed{seed:04d}.png", {"command": "cips3d blend", "seed": seed})
        save_png(tile, tmp_path / "old" / f"seed{seed:04d}.png")  # from before the records
        save_png(tile, tmp_path / "old" / f"seed{seed:04d}_flip.png")
    blend = info(capsys, str(tmp_path / "blend"))
    assert blend["note"].startswith("2 of them look like what cips3d's renders write")
    assert (
        blend["written by"]
        == "cips3d blend (2 images; its 2 seedNNNN.png are rows of source | target | blends, not single "
        "images)"
    )
    with zipfile.ZipFile(tmp_path / "blend.zip", "w") as archive:
        for png in (tmp_path / "blend").iterdir():
            archive.write(png, png.name)
    assert info(capsys, str(tmp_path / "blend.zip"))["written by"] == blend["written by"]
    old = info(capsys, str(tmp_path / "old"))
    assert old["note"].startswith("4 of them") and old["written by"].startswith(
        "cips3d multiview (2 images; its 2 "
    )
    assert "note" not in info(capsys, str(blob_folder)) and "written by" not in info(capsys, str(blob_folder))
    args = ["multiview", "--preset", "tiny", "--seeds", "0-1", "--yaws", "2", "--pitches", "1", "--size", "8"]
    code, _, err = run(capsys, *args, "--flip-pair", "--outdir", str(tmp_path / "multiview"), "--quiet")
    assert code == 0, err
    described = info(capsys, str(tmp_path / "multiview"))
    assert described["images"] == 4 and described["note"].startswith("4 of them look like what cips3d's")
    assert (
        described["written by"]
        == "cips3d multiview (4 images; its 2 seedNNNN.png are grids of views, not single images)"
    )


def damage(path) -> None:
    """Cut a file short, as a disk that filled up or a copy that stopped would."""
    path.write_bytes(path.read_bytes()[:100])


def test_a_run_whose_newest_snapshot_is_damaged_is_still_described(capsys, tmp_path, blob_folder):
    """`info RUN` failed with the newest snapshot's error; the run is described from the snapshot to go on
    from, as load_snapshot's error advises, or else from its run.json. A damaged snapshot named is refused."""
    config = Train2DConfig(generator="cips-tiny", batch_size=2, d_max_channels=32, snapshot_every=1)
    Trainer2D(config, tmp_path / "run", blob_folder, progress=False).run(max_steps=2)
    capsys.readouterr()  # the run's snapshot lines
    snapshots = tmp_path / "run" / "snapshots"
    damage(snapshots / "step-000000002" / "G_ema.safetensors")
    described = info(capsys, str(tmp_path / "run"))
    assert described["kind"] == "a 2D CIPS training run (cips3d train2d)" and described["snapshots"] == 2
    newest = described["newest snapshot"]
    assert newest.startswith("step-000000002 cannot be read (SafetensorError: ")
    assert newest.endswith(
        f"; step-000000001, described here, is the one to go on from: move step-000000002 out of {snapshots} "
        "and the run uses it"
    )
    assert described["snapshot"] == str(snapshots / "step-000000001") and described["step"] == 1
    assert described["training state"] == "readable" and "preset cips-tiny" in described["generator"]
    assert info(capsys, str(snapshots)) == described
    code, _, err = run(capsys, "info", str(snapshots / "step-000000002"))  # named: its error, as before
    assert code == 2 and "the snapshot" in err and "cannot be read (SafetensorError" in err
    (snapshots / "step-000000001" / "state.json").write_text("{not json")
    record = info(capsys, str(tmp_path / "run"))  # no snapshot reads: what run.json records
    assert record["newest snapshot"].endswith(
        "; none of the earlier ones reads either, so there is none to go on from"
    )
    assert "preset cips-tiny" in record["generator"] and record["snapshots"] == 2
    assert record["data"] == f"{blob_folder.resolve()} ({len(list(blob_folder.iterdir()))} images)"
    (tmp_path / "run" / "run.json").write_text("garbage")  # the newest's state.json still says the config
    unrecorded = info(capsys, str(tmp_path / "run"))
    assert unrecorded["generator"] == record["generator"] and "data" not in unrecorded
    assert unrecorded["run record"].startswith("run.json cannot be read")
    (snapshots / "step-000000002" / "state.json").write_text("{not json")  # nothing says what it is
    code, _, err = run(capsys, "info", str(tmp_path / "run"))
    assert code == 2 and "the snapshot" in err and "step-000000002 cannot be read (JSONDecodeError" in err


def test_a_damaged_run_is_sent_to_a_snapshot_a_resume_can_read(capsys, tmp_path, blob_folder):
    """The snapshot info names to go on from must have a readable training state too: one whose
    optimizers are cut short renders, but a resume cannot go on from it."""
    config = Train2DConfig(generator="cips-tiny", batch_size=2, d_max_channels=32, snapshot_every=1)
    Trainer2D(config, tmp_path / "run", blob_folder, progress=False).run(max_steps=3)
    capsys.readouterr()  # the run's snapshot lines
    snapshots = tmp_path / "run" / "snapshots"
    damage(snapshots / "step-000000003" / "G_ema.safetensors")
    damage(snapshots / "step-000000002" / "optimizers.pt")
    described = info(capsys, str(tmp_path / "run"))
    assert described["newest snapshot"].endswith(
        f"; step-000000001, described here, is the one to go on from: move step-000000003, step-000000002 "
        f"out of {snapshots} and the run uses it"
    )
    assert described["step"] == 1 and described["training state"] == "readable"
    damage(snapshots / "step-000000001" / "optimizers.pt")  # none a resume can read: the newest that renders
    described = info(capsys, str(tmp_path / "run"))
    assert described["newest snapshot"].endswith(
        "; step-000000002, described here, is the newest whose weights read"
    )
    assert described["training state"].startswith("cannot be read, so --resume cannot go on from it")


def test_a_3d_run_with_no_readable_snapshot_says_its_curriculum_and_init(capsys, tmp_path, blob_folder):
    options = TrainOptions(progress=False, max_steps=1)
    Trainer(micro_config(), tmp_path / "run", blob_folder, options).run()
    tuned = Trainer(micro_config(), tmp_path / "tuned", blob_folder, options)
    tuned.warm_start(tmp_path / "run")
    tuned.run()
    capsys.readouterr()
    (only,) = (tmp_path / "tuned" / "snapshots").iterdir()
    damage(only / "G.safetensors")
    described = info(capsys, str(tmp_path / "tuned"))
    assert described["kind"] == "a CIPS-3D training run (cips3d train)" and described["snapshots"] == 1
    assert described["newest snapshot"].startswith(f"{only.name} cannot be read (SafetensorError: ")
    assert described["newest snapshot"].endswith("; there is no earlier one, so there is none to go on from")
    started = (tmp_path / "run" / "snapshots" / "step-000000001").resolve()
    assert described["curriculum"] == f"a config of its own; fine-tuned from {started}"


def test_fitted_styles_and_their_folders_are_described(capsys, tmp_path, tiny_G):
    """An invert folder was described as a dataset (it holds its target and reconstruction) and its
    styles file was refused as a model without config.json."""
    from safetensors.torch import save_file  # noqa: PLC0415

    from cips3d.inference.inversion import Inversion, save_inversion  # noqa: PLC0415
    from cips3d.inference.multiview import styles_for_seeds  # noqa: PLC0415

    fit = tmp_path / "inv"
    fit.mkdir()
    (fit / "target.png").write_bytes(b"")  # the images beside it do not make it a dataset
    styles = styles_for_seeds(tiny_G, [0])
    save_inversion(Inversion(styles, 1.6, 1.5, 12.0), fit / "styles.safetensors", {"model": "preset tiny"})
    for path in (fit, fit / "styles.safetensors"):
        described = info(capsys, str(path))
        assert described["kind"] == "styles fitted by `cips3d invert` (a 3D model)"
        assert described["styles"] == len(styles) and described["camera"] == "yaw 1.6, pitch 1.5, fov 12"
        assert described["fitted with"] == "preset tiny" and "--styles of multiview" in described["use"]
    save_file(
        {"w": torch.zeros(1, 8)}, str(tmp_path / "w.safetensors"), metadata={"model": "preset cips-tiny"}
    )
    renamed = fit / "styles.safetensors"
    renamed.rename(tmp_path / "me.safetensors")  # named by content: multiview names outputs after it
    assert info(capsys, str(tmp_path / "me.safetensors"))["camera"] == "yaw 1.6, pitch 1.5, fov 12"
    metadata = {"format": "cips3d.inverted-styles", "meta": "{not json"}
    save_file({"a": torch.zeros(2)}, str(tmp_path / "bad.safetensors"), metadata=metadata)
    code, _, err = run(capsys, "info", str(tmp_path / "bad.safetensors"))
    assert code == 2 and "cannot be read as fitted styles" in err and "Traceback" not in err
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "me.safetensors").read_bytes()[:200])
    code, _, err = run(capsys, "info", str(tmp_path / "cut.safetensors"))
    assert code == 2 and "is not a readable safetensors file, damaged or cut short" in err  # not "styles"
    two = info(capsys, str(tmp_path / "w.safetensors"))
    assert two["kind"] == "a style fitted by `cips3d invert2d` (a 2D CIPS model)"
    assert two["fitted with"] == "preset cips-tiny" and two["style"] == "one vector of 8"
    save_file({"w": torch.zeros(1, 5, 8)}, str(tmp_path / "layers.safetensors"))
    assert info(capsys, str(tmp_path / "layers.safetensors"))["style"] == "one per layer, 5 x 8"


def test_json_output_stays_json_with_non_finite_numbers(capsys, tmp_path):
    """A diverged fit's loss (NaN) or an infinite value reaches --json as a string, not Python's NaN
    token that strict JSON parsers refuse."""
    record = {
        "command": "cips3d invert",
        "output": "image",
        "final loss": float("nan"),
        "scale": [1.0, float("inf")],
    }
    save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "fit.png", record=record)
    code, text, err = run(capsys, "info", str(tmp_path / "fit.png"), "--json")
    assert code == 0, err

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    described = json.loads(text, parse_constant=refuse)
    assert described["final loss"] == "nan" and described["scale"] == [1.0, "inf"]
