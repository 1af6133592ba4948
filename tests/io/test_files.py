"""`atomic_write`: the whole file or the old one, and output-path mistakes said of the path given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cips3d.errors import UserError
from cips3d.io import files
from cips3d.io.files import atomic_write


def write_text(text: str):
    return lambda tmp: Path(tmp).write_text(text)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, write_text("old"))

    def failing(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_a_failed_write_removes_the_folders_made_for_it_but_no_other(tmp_path):
    def failing(tmp):
        raise RuntimeError("disk full")

    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "kept" / "new" / "deeper" / "a.zip", failing)
    assert os.listdir(tmp_path) == ["kept"] and os.listdir(tmp_path / "kept") == []  # was: new/deeper/ left
    atomic_write(tmp_path / "kept" / "new" / "a.json", write_text("ok"))  # a write that works keeps them
    assert (tmp_path / "kept" / "new" / "a.json").read_text() == "ok"


def test_output_path_mistakes_name_the_path_given(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match=r"folder is a folder; a file path was expected"):
        atomic_write(tmp_path / "folder", write_text("x"))
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UserError, match=r"file is a file, so the folder .*file/sub cannot be made"):
        atomic_write(tmp_path / "file" / "sub" / "out.json", write_text("x"))
    assert (tmp_path / "file").read_text() == "mine"
    atomic_write(tmp_path / "new" / "deeper" / "out.json", write_text("x"))
    assert (tmp_path / "new" / "deeper" / "out.json").read_text() == "x"


def test_a_folder_it_may_not_write_in_is_named_not_the_temporary_file(tmp_path, monkeypatch):
    def refused(dir, prefix, suffix):  # what mkstemp raises in a read-only folder (root is never refused)
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "x1y2" + suffix))

    monkeypatch.setattr(files.tempfile, "mkstemp", refused)
    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "out.json", write_text("x"))
    assert caught.value.filename == str(tmp_path)
    assert caught.value.strerror == "cannot write out.json there: Permission denied"


def test_a_folder_that_cannot_be_made_is_one_sentence_naming_it(tmp_path, monkeypatch):
    def refused(self, *args, **kwargs):  # a read-only parent (root is never refused)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(files.Path, "mkdir", refused)
    with pytest.raises(UserError, match=r"^cannot make the folder .*ro/run \(Permission denied\)\.$"):
        files.make_folder(tmp_path / "ro" / "run")  # was "Permission denied (ro/run)", made of what?


def test_a_full_disk_is_said_as_such_naming_the_file_whatever_the_writer_raised(tmp_path, monkeypatch):
    # safetensors raises SafetensorError and torch.save a RuntimeError ("unexpected pos ...") on a full
    # disk: neither is an OSError, so `cips3d convert` ended in a traceback.
    def torch_save_on_a_full_disk(tmp):
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 238336 vs 238224")

    free = {"bytes": 100}
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: Usage(free["bytes"]))
    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "model.pth", torch_save_on_a_full_disk)
    assert caught.value.errno == 28 and caught.value.filename == str(tmp_path / "model.pth")
    assert os.listdir(tmp_path) == []
    free["bytes"] = 10 << 30  # room enough: the same error is a bug, raised as it is
    with pytest.raises(RuntimeError, match="unexpected pos"):
        atomic_write(tmp_path / "model.pth", torch_save_on_a_full_disk)


class Usage:
    def __init__(self, free: int) -> None:
        self.free = free


def test_an_os_error_without_the_destination_names_it_not_the_temporary_file(tmp_path):
    def pil_on_a_full_disk(tmp):
        raise OSError(28, "No space left on device")

    def video_on_a_full_disk(tmp):
        raise OSError(28, "No space left on device", tmp)

    for failing in (pil_on_a_full_disk, video_on_a_full_disk):
        with pytest.raises(OSError) as caught:
            atomic_write(tmp_path / "seed0000.png", failing)
        assert caught.value.filename == str(tmp_path / "seed0000.png")
        assert caught.value.strerror == "No space left on device"


def test_a_broken_link_in_the_way_of_a_folder_is_named_as_one(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "gone")  # mkdir said only "File exists"
    with pytest.raises(
        UserError, match=r"out is a link to .*gone, which does not exist, so the folder .*out/"
    ):
        files.make_folder(tmp_path / "out" / "sub")
