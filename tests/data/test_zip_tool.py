"""folder_to_zip: the StyleGAN2-ADA layout, LANCZOS pixels, skipped files, atomic and reproducible writes."""

from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d.data.images import ImageDataset, SkippedImagesWarning
from cips3d.data.zip_tool import archive_name, folder_to_zip
from cips3d.errors import UserError
from cips3d.io.files import LeftoverFilesWarning
from tests.data.test_images import make_folder, recorded_warnings, truncated_png, zip_folder


def test_the_zip_has_the_stylegan2_ada_layout(tmp_path):
    source = make_folder(tmp_path / "src", ["b.png", "a/x.jpg", "a/y.png"], size=(20, 14))
    stats = folder_to_zip(source, tmp_path / "out.zip", 8, progress=False)
    assert (stats.num_written, stats.num_skipped, stats.skipped, stats.resolution) == (3, 0, (), 8)
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        names = archive.namelist()
        assert names == [
            "00000/img00000000.png",
            "00000/img00000001.png",
            "00000/img00000002.png",
            "dataset.json",
        ]
        assert json.loads(archive.read("dataset.json")) == {"labels": None}
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        for name in names[:3]:
            image = Image.open(io.BytesIO(archive.read(name)))
            assert image.format == "PNG" and image.mode == "RGB" and image.size == (8, 8)


def test_folders_hold_1000_images_each():
    assert archive_name(0) == "00000/img00000000.png"
    assert archive_name(999) == "00000/img00000999.png"
    assert archive_name(1000) == "00001/img00001000.png"
    assert archive_name(123456) == "00123/img00123456.png"


def test_the_zip_holds_the_pixels_the_dataset_would_load(tmp_path):
    source = make_folder(tmp_path / "src", ["a/1.png", "2.png", "3.png"], size=(30, 24))
    folder_to_zip(source, tmp_path / "out.zip", 10, progress=False)
    packed, loaded = ImageDataset(tmp_path / "out.zip"), ImageDataset(source, resolution=10)
    assert packed.num_images == 3 and packed.resolution == 10
    for i in range(3):  # PNG is lossless, and both crop + LANCZOS the same way, in the same order
        assert torch.equal(packed[i], loaded[i])
    crop = Image.open(source / "2.png").crop((3, 0, 27, 24)).resize((10, 10), Image.Resampling.LANCZOS)
    assert loaded.names == ("2.png", "3.png", "a/1.png")  # sorted paths give the archive's order
    assert torch.equal(packed[0], torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1))


def test_a_zip_can_be_repacked_at_another_resolution(tmp_path):
    source = make_folder(tmp_path / "src", ["1.png", "2.png"], size=(16, 16))
    folder_to_zip(zip_folder(source, tmp_path / "src.zip"), tmp_path / "small.zip", 4, progress=False)
    assert ImageDataset(tmp_path / "small.zip").resolution == 4


def test_unreadable_files_are_skipped_and_counted_once(tmp_path):
    source = make_folder(tmp_path / "src", ["a.png", "c.png"])
    truncated_png(source / "b.png")
    (source / "d.jpg").write_text("not a JPEG")
    stats, caught = recorded_warnings(lambda: folder_to_zip(source, tmp_path / "out.zip", 6, progress=False))
    assert (
        stats.num_written == 2
        and stats.num_skipped == 2
        and stats.skipped[0].endswith("b.png: image file is truncated")
        and stats.skipped[1].endswith("d.jpg: not a known image format")
    )  # the reason said without --strict too
    assert len(caught) == 1 and str(caught[0].message).startswith("skipped 2 of 4 images")
    assert ImageDataset(tmp_path / "out.zip").num_images == 2


def test_strict_fails_naming_the_file_and_leaves_the_old_zip_alone(tmp_path):
    source = make_folder(tmp_path / "src", ["a.png", "c.png"])
    dest = tmp_path / "out" / "data.zip"
    folder_to_zip(source, dest, 6, progress=False)
    before = dest.read_bytes()
    truncated_png(source / "b.png")
    with pytest.raises(UserError, match=r"b\.png is not a readable image"):
        folder_to_zip(source, dest, 4, strict=True, progress=False)
    assert dest.read_bytes() == before
    assert [p.name for p in dest.parent.iterdir()] == ["data.zip"]  # no temporary file left behind


def test_a_source_with_no_readable_image_writes_nothing(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.png").write_text("not a PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImagesWarning)
        with pytest.raises(UserError, match="none of the 1 images"):
            folder_to_zip(tmp_path / "src", tmp_path / "out.zip", 4, progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_the_same_images_give_the_same_bytes_with_any_number_of_workers(tmp_path):
    source = make_folder(tmp_path / "src", [f"{i}.png" for i in range(9)], size=(20, 20))
    folder_to_zip(source, tmp_path / "one.zip", 12, progress=False, workers=1)
    folder_to_zip(source, tmp_path / "three.zip", 12, progress=False, workers=3)
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "three.zip").read_bytes()


def test_bad_destinations_are_user_errors(tmp_path):
    source = make_folder(tmp_path / "src", ["a.png"])
    with pytest.raises(UserError, match=r"must be a \.zip"):
        folder_to_zip(source, tmp_path / "out.tar", 4, progress=False)
    (tmp_path / "dir.zip").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        folder_to_zip(source, tmp_path / "dir.zip", 4, progress=False)
    archive = zip_folder(source, tmp_path / "src.zip")
    with pytest.raises(UserError, match="is the source itself"):
        folder_to_zip(archive, archive, 4, progress=False)
    before = archive.read_bytes()
    with pytest.raises(UserError, match="is the source itself"):  # spelt through a folder not made yet
        folder_to_zip(archive, tmp_path / "new" / ".." / "src.zip", 4, progress=False)
    assert archive.read_bytes() == before and not (tmp_path / "new").exists()
    with pytest.raises(UserError, match="at least 1 pixel"):
        folder_to_zip(source, tmp_path / "out.zip", 0, progress=False)


def test_a_killed_writes_temporary_file_is_named_and_left_alone(tmp_path):
    """A dataset write killed mid-way (kill -9, the OOM killer) leaves its temporary file; the next write
    to that zip says so, and leaves it (another process may be writing it)."""
    source = make_folder(tmp_path / "src", ["a.png"], size=(8, 8))
    leftover = tmp_path / ".out.zip.k3j9x.tmp"
    leftover.write_bytes(b"\0" * 2**20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder_to_zip(source, tmp_path / "out.zip", 8, progress=False)
    messages = [str(w.message) for w in caught if w.category is LeftoverFilesWarning]
    assert len(messages) == 1 and "1 temporary file(s) of an interrupted write of out.zip" in messages[0]
    assert "(1 MiB, e.g. .out.zip.k3j9x.tmp)" in messages[0] and leftover.exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder_to_zip(source, tmp_path / "other.zip", 8, progress=False)
    assert not [
        w for w in caught if w.category is LeftoverFilesWarning
    ]  # another zip's leftovers are not its
