"""The demo's inversion step (the rest of the demo is `make demo` itself: minutes of training)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cips3d import demo
from cips3d.io.images import read_png_record
from cips3d.io.video import read_video_record


def test_the_demo_fits_a_held_out_object_and_writes_its_views(tiny_G, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "INVERSION_STEPS", 3)
    files, record = demo._inversion(tiny_G, tmp_path, progress=False)
    tiles = np.asarray(Image.open(files["inversion.png"]))
    assert tiles.shape == (demo.DATA_SIZE, 4 * demo.DATA_SIZE, 3)  # target | fit | aux | depth
    target = tiles[:, : demo.DATA_SIZE]
    assert target.std() > 10  # the held-out object is drawn, not a blank frame
    assert files["inversion_video"].is_file() and files["inversion_video"].stat().st_size > 0
    assert record["true_yaw_pitch"] == list(demo.HELD_OUT_CAMERA)
    assert all(np.isfinite(record["fitted_yaw_pitch"])) and record["perceptual_weight"] == 0.1
    made = read_png_record(files["inversion.png"])  # `cips3d info` on the demo's pictures says what they are
    assert made["command"] == "cips3d demo" and made["run"] == str((tmp_path / "run").resolve())
    assert read_video_record(files["inversion_video"])["output"].startswith("the fit along the yaw sweep")
