"""`cips3d dataset` end to end, and its answers to bad input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from cips3d.cli.main import main
from cips3d.data.images import CroppedImagesWarning, ImageDataset
from tests.cli.helpers import run
from tests.data.test_images import edge_marked, make_folder, truncated_png


def test_dataset_writes_a_zip_the_dataset_reads_back(tmp_path, capsys):
    source = make_folder(tmp_path / "photos", ["a.png", "b/c.jpg", "b/d.png"], size=(24, 18))
    dest = tmp_path / "train.zip"
    code, out, err = run(capsys, "dataset", str(source), str(dest), "--resolution", "16", "--quiet")
    assert code == 0 and err == ""
    assert out.strip() == f"wrote 3 images of 16x16 to {dest}"
    packed = ImageDataset(dest, xflip=True)
    assert packed.num_images == 3 and packed.resolution == 16 and packed[5].shape == (3, 16, 16)


def test_skipped_files_are_reported_in_one_line(tmp_path, capsys):
    source = make_folder(tmp_path / "photos", ["a.png", "b.png"])
    truncated_png(source / "c.png")
    (source / "d.jpg").write_text("not a JPEG")
    code, out, err = run(
        capsys, "dataset", str(source), str(tmp_path / "t.zip"), "--resolution", "8", "--quiet"
    )
    assert code == 0 and "wrote 2 images of 8x8" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cips3d: warning: skipped 2 of 4 images")
    assert "c.png" in lines[0]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no folder or zip archive at"),
        ("text", "neither a folder of images nor a zip archive"),
        ("empty", "no images"),
        ("not-zip", "must be a .zip file"),
        ("strict", "bad.png is not a readable image"),
    ],
)
def test_user_errors_end_in_one_sentence_and_exit_2(tmp_path, capsys, case, message):
    source, dest, extra = tmp_path / "photos", tmp_path / "out.zip", []
    if case == "text":
        source = tmp_path / "notes.txt"
        source.write_text("hello")
    elif case == "empty":
        source.mkdir()
    elif case == "not-zip":
        make_folder(source, ["a.png"])
        dest = tmp_path / "out.tar"
    elif case == "strict":
        make_folder(source, ["a.png"])
        truncated_png(source / "bad.png")
        extra = ["--strict"]
    code, _, err = run(capsys, "dataset", str(source), str(dest), "--resolution", "8", "--quiet", *extra)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cips3d dataset: error: ") and message in lines[0]
    assert "Traceback" not in err and not dest.exists()


def test_resolution_is_required_positive_and_renderable(tmp_path, capsys):
    for argv in (
        ["dataset", str(tmp_path), "o.zip"],
        ["dataset", str(tmp_path), "o.zip", "--resolution", "0"],
        ["dataset", str(tmp_path), "o.zip", "--resolution", "100000"],  # read as "unreadable images" before
        ["dataset", "synth", "o.zip", "--resolution", "4097"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and "--resolution" in capsys.readouterr().err


def test_panoramas_are_packed_whole_at_their_width(tmp_path, capsys):
    source = edge_marked(tmp_path)  # 64 x 16, red first columns, blue last
    args = ["dataset", str(source), str(tmp_path / "p.zip"), "--resolution", "8", "--width", "32", "--quiet"]
    code, out, err = run(capsys, *args, "--whole")
    assert code == 0, err
    assert "1 image of 32x8" in out
    packed = ImageDataset(tmp_path / "p.zip", resolution=8, width=32, whole=True)[0]
    assert packed[0, :, 0].min() > 200 and packed[2, :, -1].min() > 200  # both ends kept
    narrower = [*args[:2], str(tmp_path / "c.zip"), *args[3:6], "16", "--quiet"]
    code, out, err = run(capsys, *narrower)  # cropped to the aspect
    cropped = ImageDataset(tmp_path / "c.zip", resolution=8, width=16)[0]
    assert code == 0 and (cropped.int() - 128).abs().max() <= 1
    # Whole, an image of another shape would be squashed: refused as training and metrics refuse it.
    before = (tmp_path / "c.zip").read_bytes()
    code, _, err = run(capsys, *narrower, "--whole", "--force")
    assert code == 2 and "is 64x16, so resizing it whole to 16x8 would squash it" in err
    assert (tmp_path / "c.zip").read_bytes() == before  # the earlier zip is left as it was


def test_packing_reads_photos_upright_and_says_when_it_enlarges(tmp_path, capsys):
    source = tmp_path / "photos"
    source.mkdir()
    stored = np.zeros((6, 12, 3), np.uint8)
    stored[:, :6] = 255  # left half white as stored; upright (EXIF orientation 6) it is the top half
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(source / "phone.jpg", exif=exif.tobytes(), quality=95)
    dest = str(tmp_path / "d.zip")
    code, out, err = run(capsys, "dataset", str(source), dest, "--resolution", "8", "--quiet")
    assert code == 0 and "wrote 1 image of 8x8" in out
    enlarged = f"the smallest images of {source} are 6 px on their short side, so they are enlarged to 8 px"
    assert err == f"cips3d: warning: {enlarged}.\n"
    image = ImageDataset(tmp_path / "d.zip")[0].float()  # the centre 6x6 of the upright 6x12, enlarged
    assert image[:, :3].mean() > 230 and image[:, -3:].mean() < 25


def test_packing_to_a_wide_shape_says_what_the_crop_keeps_and_what_it_enlarges(tmp_path, capsys):
    """A square photo packed at 64x16 keeps a quarter of its picture, and a 20x200 one keeps 5 of its
    rows, enlarged 3x: packing said neither (training on the same folder said the first)."""
    (tmp_path / "square").mkdir()
    Image.new("RGB", (64, 64), (90, 120, 150)).save(tmp_path / "square" / "a.png")
    with pytest.warns(CroppedImagesWarning, match="centre-cropped to the 64x16 shape, some keeping only 25%"):
        code, out, _ = run(capsys, "dataset", str(tmp_path / "square"), str(tmp_path / "s.zip"),
                           "--resolution", "16", "--width", "64", "--quiet")  # fmt: skip
    assert code == 0 and "wrote 1 image of 64x16" in out
    (tmp_path / "tall").mkdir()
    Image.new("RGB", (20, 200), (90, 120, 150)).save(tmp_path / "tall" / "a.png")
    code, out, err = run(capsys, "dataset", str(tmp_path / "tall"), str(tmp_path / "t.zip"), "--resolution",
                         "16", "--width", "64", "--quiet")  # fmt: skip
    assert code == 0 and (f"the smallest images of {tmp_path / 'tall'} keep 5 rows in their crop to 64x16, "
                          "so they are enlarged to 16 rows.") in err  # fmt: skip


@pytest.mark.parametrize("kind", ["synth", "lfw", "panorama"])
def test_built_in_data_is_written_only_to_a_zip_path(tmp_path, capsys, kind):
    (tmp_path / "notes.txt").write_text("mine")
    quiet = [] if kind == "lfw" else ["--quiet"]
    code, _, err = run(capsys, "dataset", kind, str(tmp_path / "notes.txt"), *quiet)
    assert code == 2 and "the destination must be a .zip file" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("kind", ["synth", "panorama"])
def test_a_seed_outside_64_bits_is_one_sentence(tmp_path, capsys, kind):
    code, _, err = run(capsys, "dataset", kind, str(tmp_path / "d.zip"), "--seed", str(2**70), "--quiet")
    assert code == 2 and "--seed must be from 0 to 2^63 - 1" in err and not (tmp_path / "d.zip").exists()


def test_a_folder_named_like_a_built_in_dataset_is_named_in_a_note(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "synth", ["a.png"])
    code, out, err = run(capsys, "dataset", "synth", "s.zip", "--count", "4", "--resolution", "8", "--quiet")
    assert code == 0 and "wrote 4 images of 8x8" in out
    assert err == (
        "cips3d: note: this builds the built-in synth dataset; to pack the folder ./synth here, write "
        "`cips3d dataset ./synth DEST`.\n"
    )
    code, out, err = run(capsys, "dataset", "./synth", "p.zip", "--resolution", "8", "--quiet")
    assert code == 0 and "wrote 1 image of 8x8" in out and err == ""


@pytest.mark.parametrize("kind", ["pack", "synth", "lfw", "panorama"])
def test_an_existing_zip_is_replaced_only_with_force(tmp_path, capsys, kind):
    """Every dataset command replaced any DEST.zip, exit 0: the zip a run trains on (which could then
    never be resumed), or an archive that is no dataset at all."""
    dest = tmp_path / "notes.zip"
    dest.write_bytes(b"mine")
    source = [str(make_folder(tmp_path / "photos", ["a.png"]))] if kind == "pack" else [kind]
    sizes = ["--resolution", "8"] + ([] if kind in ("pack", "lfw") else ["--count", "2"])
    if kind == "panorama":
        sizes = ["--height", "8", "--width", "16", "--count", "2"]
    code, _, err = run(capsys, "dataset", *source, str(dest), *sizes)
    assert code == 2 and err.endswith(
        f"{dest} already exists; give --force to replace it, or another name.\n"
    )
    assert dest.read_bytes() == b"mine"
    cameras = tmp_path / "notes.cameras.json"  # a synth zip's cameras, stale beside other images
    cameras.write_text("{}")
    code, _, err = run(capsys, "dataset", *source, str(dest), *sizes, "--force")
    assert code == 0 and zipfile.is_zipfile(dest)
    if kind == "synth":
        assert cameras.read_text() != "{}"  # written anew
    else:
        assert not cameras.exists() and f"removed {cameras}, the cameras of the synth images" in err


def test_force_is_offered_only_where_it_helps(tmp_path, capsys):
    """DEST the source itself, or a folder named .zip: --force was offered, then refused for that."""
    photos = make_folder(tmp_path / "photos", ["a.png"])
    (tmp_path / "d.zip").mkdir()
    code, _, err = run(capsys, "dataset", "synth", str(tmp_path / "d.zip"), "--count", "2", "--quiet")
    assert code == 2 and "--force" not in err
    packed = tmp_path / "p.zip"
    assert run(capsys, "dataset", str(photos), str(packed), "--resolution", "8", "--quiet")[0] == 0
    code, _, err = run(capsys, "dataset", str(packed), str(packed), "--resolution", "8", "--quiet")
    assert code == 2 and "--force" not in err and "source" in err
    (tmp_path / "link.zip").symlink_to(tmp_path / "gone.zip")  # a dangling link was replaced, exit 0
    code, _, err = run(capsys, "dataset", str(photos), str(tmp_path / "link.zip"), "--resolution", "8")
    assert (
        code == 2 and "link.zip already exists; give --force" in err and (tmp_path / "link.zip").is_symlink()
    )
