"""ImageDataset: folders and zips, resizing, xflip, corrupt files, and its answers to bad paths."""

from __future__ import annotations

import gc
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cips3d.data import images as images_module
from cips3d.data.images import (
    CroppedImagesWarning,
    ImageDataset,
    SkippedImagesWarning,
    UndecodableImageWarning,
    UpscaledImagesWarning,
    to_float,
)
from cips3d.data.zip_tool import folder_to_zip
from cips3d.errors import ConfigError, UserError


def random_pixels(seed: int, height: int, width: int, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_folder(root, names, size=(12, 12)):
    """One random PNG per relative name (random pixels, so no image is its own mirror)."""
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(random_pixels(i, size[1], size[0])).save(path, format="PNG")
    return root


def zip_folder(root, dest):
    with zipfile.ZipFile(dest, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return dest


def truncated_png(path):
    Image.fromarray(random_pixels(99, 16, 16)).save(path, format="PNG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def recorded_warnings(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build()
    return result, [w for w in caught if issubclass(w.category, SkippedImagesWarning)]


def test_folder_and_zip_give_identical_tensors(tmp_path):
    names = ["b.png", "a/c.png", "a/b/d.png", "00000/img00000000.png"]
    folder = make_folder(tmp_path / "images", names)
    archive = zip_folder(folder, tmp_path / "images.zip")
    for resolution in (None, 8):
        from_folder, from_zip = ImageDataset(folder, resolution), ImageDataset(archive, resolution)
        assert from_folder.names == from_zip.names == tuple(sorted(names))
        assert len(from_folder) == len(from_zip) == 4
        for i in range(4):
            assert from_folder[i].dtype == torch.uint8
            assert torch.equal(from_folder[i], from_zip[i])


def test_items_are_the_stored_pixels_in_chw_order(tmp_path):
    folder = make_folder(tmp_path, ["x.png"], size=(10, 10))
    item = ImageDataset(folder)[0]
    assert item.shape == (3, 10, 10)
    assert torch.equal(item, torch.from_numpy(random_pixels(0, 10, 10)).permute(2, 0, 1))


def test_images_are_found_at_any_depth_with_any_case_extension(tmp_path):
    names = ["top.png", "a/b/c/deep.JPG", "a/mid.jpeg", "x/y.Bmp", "x/z.webp", "t.TIFF", "u.tif"]
    make_folder(tmp_path, names)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "labels.json").write_text("{}")
    make_folder(tmp_path, [".hidden/h.png", "a/._fork.png"])  # hidden copies are never images
    dataset = ImageDataset(tmp_path)
    assert dataset.names == tuple(sorted(names))
    assert dataset.num_images == 7 and dataset.num_skipped == 0


def test_linked_folders_are_searched_once_each(tmp_path):
    make_folder(tmp_path / "elsewhere", ["a.png", "deeper/b.png"])
    root = make_folder(tmp_path / "data", ["own.png", "real/c.png"])
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "again").symlink_to(root / "real", target_is_directory=True)  # a second way to real/
    (root / "real" / "up").symlink_to(root, target_is_directory=True)  # a loop back to the top
    dataset = ImageDataset(root)
    assert dataset.names == ("linked/a.png", "linked/deeper/b.png", "own.png", "real/c.png")


def test_a_link_to_a_folder_holding_the_data_is_refused(tmp_path):
    """A link to `..` read every image around the data folder as data (346 of the parent's tree)."""
    make_folder(tmp_path, ["beside.png"])
    root = make_folder(tmp_path / "data", ["own.png"])
    (root / "up").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UserError, match=r"data/up links to .*, a folder holding the data folder itself"):
        ImageDataset(root)


def test_a_folder_that_cannot_be_listed_is_named_not_dropped(tmp_path, monkeypatch):
    """os.walk skips a folder it may not list (no permission) without a word, --strict or not."""
    root = make_folder(tmp_path / "data", ["a.png", "locked/b.png"])
    walk = os.walk

    def refusing(top, onerror=None, **kwargs):  # what os.walk does for a folder without read permission
        for folder, subfolders, files in walk(top, onerror=onerror, **kwargs):
            if folder.endswith("locked"):
                onerror(PermissionError(13, "Permission denied", folder))
                continue
            yield folder, subfolders, files

    monkeypatch.setattr(images_module.os, "walk", refusing)
    dataset, caught = recorded_warnings(lambda: ImageDataset(root))
    assert dataset.names == ("a.png",)
    assert "locked/ (a folder that cannot be listed): Permission denied" in str(caught[0].message)
    with pytest.raises(UserError, match=r"the folder .*locked cannot be listed \(Permission denied\)"):
        ImageDataset(root, strict=True)


def test_resizing_is_pils_lanczos(tmp_path):
    folder = make_folder(tmp_path, ["square.png"], size=(40, 40))
    expected = Image.open(folder / "square.png").convert("RGB").resize((16, 16), Image.Resampling.LANCZOS)
    item = ImageDataset(folder, resolution=16)[0]
    assert torch.equal(item, torch.from_numpy(np.asarray(expected).copy()).permute(2, 0, 1))


def test_non_square_images_are_centre_cropped_then_resized(tmp_path):
    folder = make_folder(tmp_path, ["wide.png"], size=(40, 30))
    crop = Image.open(folder / "wide.png").crop((5, 0, 35, 30))
    expected = np.asarray(crop.resize((12, 12), Image.Resampling.LANCZOS)).copy()
    dataset = ImageDataset(folder, resolution=12)
    assert dataset.resolution == 12
    assert torch.equal(dataset[0], torch.from_numpy(expected).permute(2, 0, 1))


def test_grey_and_transparent_images_become_rgb_on_white(tmp_path):
    grey = random_pixels(1, 8, 8, channels=1)
    rgba = random_pixels(2, 8, 8, channels=4)
    Image.fromarray(grey).save(tmp_path / "a_grey.png")
    Image.fromarray(rgba).save(tmp_path / "b_rgba.png")
    dataset = ImageDataset(tmp_path)
    assert torch.equal(dataset[0], torch.from_numpy(grey).expand(3, 8, 8))
    alpha = rgba[..., 3:].astype(np.float64) / 255  # over white, not the colour stored under alpha 0
    on_white = torch.from_numpy(rgba[..., :3] * alpha + 255 * (1 - alpha)).permute(2, 0, 1)
    assert (dataset[1].double() - on_white).abs().max() <= 1  # PIL composites in 8-bit steps
    hidden = np.zeros((8, 8, 4), np.uint8)
    hidden[..., 0] = hidden[..., 2] = 255  # magenta, wholly transparent: was read as magenta
    for mode, name in (("RGBA", "c_hidden.png"), ("LA", "d_grey_alpha.png")):
        Image.fromarray(hidden).convert(mode).save(tmp_path / name)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 0, 255])
    palette.save(tmp_path / "e_palette.png", transparency=0)  # its one colour, magenta, transparent
    dataset = ImageDataset(tmp_path)
    for i in (2, 3, 4):
        assert (dataset[i] == 255).all(), dataset.names[i]


def test_sixteen_bit_and_float_images_are_scaled_to_eight_bits(tmp_path):
    ramp = np.linspace(0, 65535, 12 * 12).reshape(12, 12).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "a16.png")  # PIL's own conversion would clip it to white
    unit = np.linspace(0, 1, 12 * 12, dtype=np.float32).reshape(12, 12)
    Image.fromarray(unit).save(tmp_path / "b_float.tif")  # ... and this to black
    dataset = ImageDataset(tmp_path)
    sixteen, floats = dataset[0], dataset[1]
    assert (sixteen == torch.from_numpy(np.rint(ramp / 257).astype(np.uint8))).all()  # in every channel
    assert (floats == torch.from_numpy(np.rint(unit * 255).astype(np.uint8))).all()
    Image.fromarray(unit * 7).save(tmp_path / "c_bright.tif")  # floats outside 0..1: no way to read them
    dataset = ImageDataset(tmp_path)
    with pytest.warns(UndecodableImageWarning, match="c_bright.tif: a floating-point image with values"):
        assert torch.equal(dataset[2], dataset[0])  # the next image (round to the first) takes its place


def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255  # left half white, as the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view": the left column becomes the top row
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    with pytest.raises(UserError, match="is 20x40, not square"):  # the size checks see it upright too
        ImageDataset(tmp_path)
    upright = ImageDataset(tmp_path, resolution=40, width=20, whole=True)[0].float()
    assert upright.shape == (3, 40, 20)
    assert upright[:, :18].mean() > 240 and upright[:, 22:].mean() < 15


def test_xflip_appends_the_mirror_of_each_image(tmp_path):
    folder = make_folder(tmp_path, ["a.png", "b.png", "c.png"], size=(9, 9))
    plain, flipped = ImageDataset(folder), ImageDataset(folder, xflip=True)
    assert len(plain) == 3 and len(flipped) == 6 and flipped.num_images == 3
    for i in range(3):
        assert torch.equal(flipped[i], plain[i])
        assert torch.equal(flipped[i + 3], plain[i].flip(-1))
        assert torch.equal(flipped[i + 3][:, :, 0], plain[i][:, :, -1])  # left column <- right column
        assert not torch.equal(flipped[i + 3], plain[i])
    assert torch.equal(flipped[-1], flipped[5])
    with pytest.raises(IndexError):
        flipped[6]


def test_to_float_maps_0_and_255_exactly_to_minus_1_and_1():
    images = torch.tensor([[[[0, 255, 51, 204]]]], dtype=torch.uint8).expand(2, 3, 1, 4)
    out = to_float(images)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 1, 4)
    assert out[0, 0, 0, 0].item() == -1.0 and out[0, 0, 0, 1].item() == 1.0
    assert torch.allclose(out, images.float() / 127.5 - 1)
    with pytest.raises(TypeError, match="uint8"):
        to_float(out)


def test_unreadable_files_are_skipped_with_one_warning(tmp_path):
    make_folder(tmp_path, ["a.png", "b.png", "sub/c.png"])
    truncated_png(tmp_path / "sub" / "cut.png")
    (tmp_path / "text.jpg").write_text("this is not a JPEG")
    dataset, caught = recorded_warnings(lambda: ImageDataset(tmp_path))
    assert dataset.num_images == 3 and dataset.num_skipped == 2
    assert dataset.names == ("a.png", "b.png", "sub/c.png")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("skipped 2 of 5 images that could not be read (")
    assert "cut.png: " in message and "text.jpg: not a known image format" in message and "\n" not in message
    assert [s.rsplit("/", 1)[-1] for s in dataset.skipped] == [
        "cut.png: image file is truncated",
        "text.jpg: not a known image format",
    ]


def test_the_skipped_warning_names_three_files_and_counts_the_rest(tmp_path):
    make_folder(tmp_path, ["a.png"])
    for i in range(5):
        (tmp_path / f"x{i}.jpg").write_text("not a JPEG")
    dataset, caught = recorded_warnings(lambda: ImageDataset(tmp_path))
    message = str(caught[0].message)
    assert message.startswith("skipped 5 of 6 images that could not be read (") and message.endswith(
        "; and 2 more)"
    )
    assert all(f"x{i}.jpg" in message for i in range(3)) and "x3.jpg" not in message  # was: the first only
    assert len(dataset.skipped) == 5


def test_a_readable_dataset_warns_nothing(tmp_path):
    make_folder(tmp_path, ["a.png"])
    _, caught = recorded_warnings(lambda: ImageDataset(tmp_path))
    assert caught == []


def test_strict_fails_naming_the_first_unreadable_file(tmp_path):
    make_folder(tmp_path, ["a.png", "c.png"])
    truncated_png(tmp_path / "b_cut.png")
    with pytest.raises(UserError, match=r"b_cut\.png is not a readable image"):
        ImageDataset(tmp_path, strict=True)
    archive = zip_folder(tmp_path, tmp_path.parent / "data.zip")
    with pytest.raises(UserError, match=r"data\.zip:b_cut\.png"):
        ImageDataset(archive, strict=True)


def test_a_png_missing_only_its_closing_chunk_is_kept_by_the_scan_as_by_the_packer(tmp_path):
    make_folder(tmp_path / "src", ["a.png"], size=(16, 16))
    pixels = random_pixels(7, 16, 16)
    Image.fromarray(pixels).save(tmp_path / "src" / "b.png")
    data = (tmp_path / "src" / "b.png").read_bytes()
    assert data.endswith(b"IEND\xaeB`\x82")
    (tmp_path / "src" / "b.png").write_bytes(data[:-12])  # its pixels are whole; PIL's verify() fails it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was: "skipped 1 of 2 images" here, while the packer kept it
        dataset = ImageDataset(tmp_path / "src", strict=True)
    assert dataset.names == ("a.png", "b.png") and np.array_equal(dataset[1].permute(1, 2, 0).numpy(), pixels)
    assert folder_to_zip(tmp_path / "src", tmp_path / "b.zip", 16, progress=False).num_written == 2


def test_a_jpeg_cut_mid_data_is_replaced_by_the_next_image_when_loaded_and_named_once(tmp_path):
    Image.fromarray(random_pixels(5, 32, 32)).save(tmp_path / "a_cut.jpg", quality=90)
    data = (tmp_path / "a_cut.jpg").read_bytes()
    (tmp_path / "a_cut.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(random_pixels(6, 32, 32)).save(tmp_path / "b.png")
    dataset = ImageDataset(tmp_path)  # the cheap scan reads only the JPEG header: both pass it
    assert dataset.num_images == 2
    with pytest.warns(UndecodableImageWarning, match=r"a_cut\.jpg: .*; the next image takes its place"):
        first = dataset[0]  # was: a UserError that stopped training hours into a run
    assert torch.equal(first, dataset[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(dataset[0], first)  # the same replacement, said once
    (tmp_path / "b.png").unlink()
    with pytest.raises(UserError, match="none of the images in .* could be decoded"):
        with pytest.warns(UndecodableImageWarning):
            ImageDataset(tmp_path)[0]


def test_a_cut_jpeg_is_named_once_across_data_loader_workers(tmp_path, monkeypatch):
    """With `--workers 2` the warning came three times: once per worker process and once in the main one."""
    Image.fromarray(random_pixels(5, 32, 32)).save(tmp_path / "a_cut.jpg", quality=90)
    data = (tmp_path / "a_cut.jpg").read_bytes()
    (tmp_path / "a_cut.jpg").write_bytes(data[: len(data) // 2])
    for i in range(3):
        Image.fromarray(random_pixels(6 + i, 32, 32)).save(tmp_path / f"b{i}.png")
    said = tmp_path / "said.txt"

    class Recorded:  # each process's warnings, appended to one file (a forked worker's stderr is lost)
        def __getattr__(self, name):
            return getattr(warnings, name)

        def warn(self, message, *args, **kwargs):
            with open(said, "a") as f:
                f.write(f"{message}\n")

    monkeypatch.setattr(images_module, "warnings", Recorded())
    dataset = ImageDataset(tmp_path)
    marks = dataset._warned_marks
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, sampler=[0, 0, 0, 0], num_workers=2)
    assert len(list(loader)) == 4
    dataset[0]  # the main process too
    assert said.read_text().count("a_cut.jpg") == 1 and os.path.isdir(marks)
    del dataset, loader
    gc.collect()
    assert not os.path.exists(marks)  # removed with the dataset


def test_odd_files_in_a_folder_neither_hang_nor_crash_the_scan(tmp_path, monkeypatch):
    make_folder(tmp_path, ["a.png"])
    os.mkfifo(tmp_path / "pipe.png")  # was read forever: a named pipe waits for a writer
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    odd = os.fsdecode(b"b\xff\xfe.png")  # a name that is not UTF-8 (the fingerprint raised on it)
    make_folder(tmp_path, [odd])
    dataset, caught = recorded_warnings(lambda: ImageDataset(tmp_path))
    assert dataset.names == ("a.png", odd) and len(dataset.fingerprint) == 16
    message = str(caught[0].message)  # the broken link is counted, its reason said once, without its path
    assert message.endswith("(" + str(tmp_path / "gone.png") + ": No such file or directory)")
    with pytest.raises(UserError, match="gone.png is not a readable image .No such file or directory.\\.$"):
        ImageDataset(tmp_path, strict=True)
    (tmp_path / "gone.png").unlink()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # PIL's guard, past twice which it refuses
    with pytest.raises(UserError, match=r"a\.png is not a readable image .larger than PIL's limit of 20 "):
        ImageDataset(tmp_path, strict=True)
    (tmp_path / "empty.zip").write_bytes(b"")
    with pytest.raises(UserError, match="empty.zip is an empty file, neither a folder of images nor a zip"):
        ImageDataset(tmp_path / "empty.zip")


def one_line_error(build) -> str:
    with pytest.raises(UserError) as info:
        build()
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_bad_paths_are_one_clear_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no images" in one_line_error(lambda: ImageDataset(tmp_path / "empty"))
    assert "no folder or zip archive at" in one_line_error(lambda: ImageDataset(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("hello")
    message = one_line_error(lambda: ImageDataset(tmp_path / "notes.txt"))
    assert "neither a folder of images nor a zip archive" in message
    with zipfile.ZipFile(tmp_path / "labels.zip", "w") as archive:
        archive.writestr("dataset.json", "{}")
    assert "no images" in one_line_error(lambda: ImageDataset(tmp_path / "labels.zip"))
    cut = tmp_path / "cut.zip"  # a download or copy that stopped early
    cut.write_bytes((tmp_path / "labels.zip").read_bytes()[:40])
    message = one_line_error(lambda: ImageDataset(cut))
    assert "cut.zip is a damaged or incomplete zip archive (its table of contents" in message
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "none of the 1 images" in one_line_error(lambda: ImageDataset(tmp_path / "bad"))


def test_mixed_sizes_need_a_resolution(tmp_path):
    make_folder(tmp_path / "mixed", ["a.png"], size=(8, 8))
    make_folder(tmp_path / "mixed", ["b.png"], size=(10, 10))
    assert "give a resolution" in one_line_error(lambda: ImageDataset(tmp_path / "mixed"))
    make_folder(tmp_path / "wide", ["a.png"], size=(10, 8))
    assert "not square" in one_line_error(lambda: ImageDataset(tmp_path / "wide"))
    assert ImageDataset(tmp_path / "mixed", resolution=6)[1].shape == (3, 6, 6)
    for resolution in (0, 8.5, 10**6):  # 8.5 and 10**6 failed on every image, "none could be decoded"
        with pytest.raises(
            ConfigError, match=f"resolution must be a whole number of pixels from 1 to 4096, got {resolution}"
        ):
            ImageDataset(tmp_path / "mixed", resolution=resolution)
    with pytest.raises(ConfigError, match="xflip must be True or False, got 'no'"):  # doubled the dataset
        ImageDataset(tmp_path / "mixed", resolution=6, xflip="no")
    with pytest.raises(ConfigError, match="the data must be a file or folder path, got NoneType"):
        ImageDataset(None)


def test_a_zip_dataset_pickles_and_loads_in_worker_processes(tmp_path):
    folder = make_folder(tmp_path / "images", [f"{i:05d}/img{i:08d}.png" for i in range(6)])
    dataset = ImageDataset(zip_folder(folder, tmp_path / "images.zip"), xflip=True)
    expected = torch.stack([dataset[i] for i in range(len(dataset))])  # opens the zip in this process
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[7], expected[7])
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    assert torch.equal(torch.cat(list(loader)), expected)
    dataset.close()


def edge_marked(tmp_path, cols: int = 64, rows: int = 16):
    """A folder with one grey image whose first 3 columns are red and last 3 blue."""
    pixels = np.full((rows, cols, 3), 128, np.uint8)
    pixels[:, :3] = (255, 0, 0)
    pixels[:, -3:] = (0, 0, 255)
    folder = tmp_path / "edges"
    folder.mkdir()
    Image.fromarray(pixels).save(folder / "a.png")
    return folder


def test_wide_images_are_cropped_to_their_aspect_or_resized_whole(tmp_path):
    folder = edge_marked(tmp_path)
    whole = ImageDataset(folder, resolution=8, width=32, whole=True)[0]
    assert whole.shape == (3, 8, 32)
    assert whole[0, :, 0].min() > 200 and whole[2, :, -1].min() > 200  # both ends kept: red, blue
    squashed = "is 64x16, so resizing it whole to 16x8 would squash it; use a width of 32"
    with pytest.raises(UserError, match=squashed):
        ImageDataset(folder, resolution=8, width=16, whole=True)
    with pytest.warns(CroppedImagesWarning, match="keeping only 50%"):
        cropped = ImageDataset(folder, resolution=8, width=16)[0]  # the centre 32 x 16 of 64 x 16
    assert cropped.shape == (3, 8, 16) and (cropped.int() - 128).abs().max() <= 1
    with pytest.warns(
        CroppedImagesWarning, match="centre-cropped to squares, some keeping only 25%.*--panorama"
    ):
        square = ImageDataset(folder, resolution=8)[0]  # 4:1 images: panoramas cropped silently before
    assert square.shape == (3, 8, 8) and (square.int() - 128).abs().max() <= 1
    with pytest.raises(ConfigError, match="needs a resolution"):
        ImageDataset(folder, width=16)
    # Every image is checked, not only the first; an odd one is named as such wherever it sorts (the
    # advice of a width fitting it would be wrong for the others).
    for odd in ("b.png", "0.png"):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / odd)
        squash = f"{odd} is 16x16, so resizing it whole to 32x8 would squash it, unlike the image that fits; "
        squash += "crop it to its shape"
        with pytest.raises(UserError, match=squash):
            ImageDataset(folder, resolution=8, width=32, whole=True)
        with pytest.raises(UserError, match=squash):
            folder_to_zip(folder, tmp_path / "w.zip", resolution=8, width=32, whole=True, progress=False)
        assert not (tmp_path / "w.zip").exists()
        (folder / odd).unlink()


def test_images_smaller_than_the_resolution_are_said_to_be_enlarged(tmp_path):
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.warns(
        UpscaledImagesWarning, match="are 8 px on their short side, so they are enlarged to 16"
    ):
        ImageDataset(tmp_path, resolution=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageDataset(tmp_path, resolution=8)  # the same size or smaller: nothing to say
    with pytest.warns(UpscaledImagesWarning, match="so they are enlarged to 32 px"):
        ImageDataset(tmp_path, resolution=8, enlarged_above=32)  # a run's first stage, said of its last
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageDataset(tmp_path, resolution=16, enlarged_above=0)  # a later stage: said once already


def test_a_zip_of_a_folder_has_the_folders_fingerprint_and_other_sizes_do_not(tmp_path):
    """`zip -r data.zip data` stores every name under data/; the images are the same, and so is the
    fingerprint a resume compares. A file of another size changes it."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"data/{path.name}")
    assert ImageDataset(folder, 8).fingerprint == ImageDataset(tmp_path / "data.zip", 8).fingerprint
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)).save(folder / "1.png")
    assert ImageDataset(folder, 8).fingerprint != ImageDataset(tmp_path / "data.zip", 8).fingerprint


def test_a_file_name_that_would_break_the_one_line_message_is_quoted(tmp_path):
    make_folder(tmp_path, ["a.png"])
    (tmp_path / "b\nc.png").write_text("not an image")
    _, caught = recorded_warnings(lambda: ImageDataset(tmp_path))
    message = str(caught[0].message)  # was split over two lines by the name's newline
    assert "\n" not in message and "'" + str(tmp_path) + "/b\\nc.png': not a known image format" in message


def test_a_non_square_target_that_crops_much_of_each_image_says_so_once(tmp_path):
    make_folder(tmp_path / "faces", ["a.png", "b.png"], size=(16, 16))
    with pytest.warns(CroppedImagesWarning, match="centre-cropped to the 16x8 shape, some keeping only 50%"):
        ImageDataset(tmp_path / "faces", resolution=8, width=16)  # train2d --width 64 on faces said nothing
    make_folder(tmp_path / "wide", ["a.png"], size=(32, 8))
    make_folder(tmp_path / "photos", ["a.png"], size=(16, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the target's own shape, and square crops of photos, say nothing
        ImageDataset(tmp_path / "wide", resolution=8, width=32)
        ImageDataset(tmp_path / "photos", resolution=8)
    with pytest.warns(CroppedImagesWarning, match="centre-cropped to squares, some keeping only 25%"):
        ImageDataset(tmp_path / "wide", resolution=8)  # 4:1 panoramas without --panorama
    make_folder(tmp_path / "tall", ["a.png"], size=(8, 32))
    with pytest.warns(CroppedImagesWarning) as caught:
        ImageDataset(tmp_path / "tall", resolution=8)
    assert "keeping only 25%" in str(caught[0].message) and "panorama" not in str(caught[0].message)


def _without_utf8_flags(archive_path) -> None:
    """Clear bit 11 (names in UTF-8) of every header, as Info-ZIP's `zip` writes UTF-8 names."""
    data = bytearray(archive_path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + flags_at + 1] &= ~(0x800 >> 8) & 0xFF
            start = data.find(signature, start + 4)
    archive_path.write_bytes(bytes(data))


def test_a_zip_of_utf8_names_without_the_utf8_flag_reads_as_its_folder(tmp_path):
    """Linux's `zip -r` stores UTF-8 names unflagged, read by Python as cp437 ('phötö' as 'ph├╢t├╢'): a
    run on the folder was refused on a plain zip of it (other names, another data fingerprint)."""
    from cips3d.data.images import data_fingerprint, open_image_source  # noqa: PLC0415

    folder = make_folder(tmp_path / "p", ["sub/phötö ü 0.png", "sub/b.png"])
    archive = zip_folder(folder, tmp_path / "p.zip")
    _without_utf8_flags(archive)
    with zipfile.ZipFile(archive) as raw:
        assert "sub/ph├╢t├╢ ü 0.png" not in raw.namelist() and any("├" in n for n in raw.namelist())
    from_folder, from_zip = open_image_source(folder), open_image_source(archive)
    assert from_zip.names == from_folder.names == ("sub/b.png", "sub/phötö ü 0.png")
    assert from_zip.read("sub/phötö ü 0.png") == (folder / "sub/phötö ü 0.png").read_bytes()
    names = list(from_folder.names)
    assert data_fingerprint(from_zip, names) == data_fingerprint(from_folder, names)


def test_a_run_recorded_with_the_cp437_names_of_such_a_zip_still_resumes(tmp_path):
    """Runs begun before the names were read as UTF-8 recorded the cp437 names' fingerprint: their
    resume was refused as "other files or sizes" after the change."""
    from cips3d.training.snapshot import TrainState, check_run_data  # noqa: PLC0415

    folder = make_folder(tmp_path / "p", ["phötö.png", "ärger.png", "b.png"])
    archive = zip_folder(folder, tmp_path / "p.zip")
    _without_utf8_flags(archive)
    dataset = ImageDataset(archive)
    with zipfile.ZipFile(archive) as raw:  # the names and order the run was fingerprinted with
        then = sorted(raw.namelist())
    assert then != list(dataset.names) and dataset.cp437_fingerprint not in (None, dataset.fingerprint)
    (tmp_path / "run").mkdir()
    with pytest.warns(UserWarning, match="reads them as UTF-8 now, which orders them differently"):
        check_run_data(tmp_path / "run", dataset, TrainState(data_fingerprint=dataset.cp437_fingerprint))
    check_run_data(tmp_path / "run", dataset, TrainState(data_fingerprint=dataset.fingerprint))
    assert ImageDataset(folder).cp437_fingerprint is None
    with pytest.raises(UserError, match="are not the ones"):
        check_run_data(tmp_path / "run", dataset, TrainState(data_fingerprint="0123456789abcdef"))
