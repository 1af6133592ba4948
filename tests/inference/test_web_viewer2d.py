"""The 2D viewer: its query parsing, the window's coordinates, and a live server answering windows
equal to direct renders (the training frame, zoomed and moved, round a panorama), and `cips3d view`
choosing it for 2D checkpoints."""

from __future__ import annotations

import dataclasses
import io
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from cips3d.config_2d import cips2d_preset
from cips3d.errors import CheckpointError, ConfigError
from cips3d.inference.inversion2d import load_fitted_w
from cips3d.inference.web_viewer import BadRequest, serve_in_thread
from cips3d.inference.web_viewer2d import WindowRequest, make_server2d
from cips3d.io.checkpoint2d import save_generator2d
from cips3d.io.images import to_uint8
from cips3d.models.coordinates import plane_grid
from cips3d.models.generator2d import Generator2D
from tests.inference.http_client import get


def png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)))


@pytest.fixture(scope="module")
def flat() -> Generator2D:
    return Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)).eval()


@pytest.fixture(scope="module")
def panorama() -> Generator2D:
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=64)
    return Generator2D(config, torch.Generator().manual_seed(1)).eval()


def render(G: Generator2D, seed: int, grid: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return render_w(G, G.mapping(G.sample_latents(1, torch.Generator().manual_seed(seed))), grid)


def render_w(G: Generator2D, w: torch.Tensor, grid: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesis(w, grid).clamp(-1, 1))[0]


def test_a_window_request_has_defaults_and_refuses_bad_values():
    r = WindowRequest.parse("")
    assert (r.seed, r.x, r.y, r.zoom, r.psi, r.format) == (0, 0.0, 0.0, 1.0, 1.0, "jpeg")
    r = WindowRequest.parse("seed=4&x=-0.5&y=2&zoom=3&psi=0.7&format=png")
    assert (r.seed, r.x, r.y, r.zoom, r.psi, r.format) == (4, -0.5, 2.0, 3.0, 0.7, "png")
    bad = [("seed=x", "integer"), ("seed=-1", "seed must be"), ("x=inf", "x must be a number"),
           ("x=1e7", "finite and at most"), ("zoom=0", "zoom must"), ("zom=2", "unknown parameter 'zom'"),
           ("y=1e308", "at most 1e\\+06 either way"),
           ("zoom=1e9", "zoom must"), ("psi=1.5", "psi must"), ("format=gif", "format must")]  # fmt: skip
    for query, words in bad:
        with pytest.raises(BadRequest, match=words):
            WindowRequest.parse(query)


def test_the_window_is_the_training_frame_scaled_and_moved(flat, panorama):
    assert torch.equal(flat.window_grid(16, 0.0, 0.0, 1.0), flat.frame_grid(16))
    assert torch.equal(panorama.window_grid(16, 0.0, 0.0, 1.0), panorama.frame_grid(16))
    moved = flat.window_grid(16, 0.25, -0.5, 4.0)
    torch.testing.assert_close(moved, plane_grid(16, 16, 1, 0.25) + torch.tensor([0.25, -0.5]))
    pano = panorama.window_grid(8, 0.5, 0.0, 2.0)  # half the turn, centred on x = 0.5
    assert pano.shape == (1, 8, 16, 2) and pano[0, 0, 0, 0] == 0.0 and pano[0, 0, -1, 0] < 1.0
    with pytest.raises(ConfigError, match="zoom 256 at most there, or look nearer the origin"):
        flat.window_grid(256, 100.0, 0.0, 1024.0)  # was: pixels in blocks of the same coordinates
    flat.window_grid(256, 10.0, 0.0, 1024.0)  # float32 is fine enough there
    with pytest.raises(ConfigError, match=r"the window's zoom must be in \[1/1024, 1024\], got 0."):
        flat.window_grid(16, zoom=0.0)


def test_the_server_answers_windows_equal_to_direct_renders(flat):
    server = make_server2d(flat, 16, port=0, first_seed=2)
    stop = serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        code, kind, page = get(url + "/")
        assert code == 200 and kind.startswith("text/html") and b"cips3d 2D viewer" in page
        code, kind, body = get(url + "/frame?seed=3&format=png")
        assert code == 200 and kind == "image/png"
        assert np.array_equal(png(body), render(flat, 3, flat.frame_grid(16)))
        body = get(url + "/frame?seed=3&x=1.5&y=-0.25&zoom=3&format=png")[2]  # beyond the frame, closer
        assert np.array_equal(png(body), render(flat, 3, flat.window_grid(16, 1.5, -0.25, 3.0)))
        mean_image = png(get(url + "/frame?seed=3&psi=0&format=png")[2])  # psi 0: every seed is the mean's
        assert np.array_equal(mean_image, png(get(url + "/frame?seed=8&psi=0&format=png")[2]))
        assert np.array_equal(mean_image, render_w(flat, flat.mean_style(), flat.frame_grid(16)))
        code, _, message = get(url + "/frame?zoom=-1")
        assert code == 400 and b"zoom must be" in message
        code, _, message = get(url + "/frame?x=500000&zoom=1000")  # float32 cannot tell its pixels apart
        assert code == 400 and b"finer than float32 coordinates resolve" in message
        info = json.loads(get(url + "/info")[2])
        assert (info["height"], info["width"], info["first_seed"], info["panorama"]) == (16, 16, 2, False)
        assert info["frames_served"] == 4
    finally:
        stop()


def test_a_panorama_goes_round(panorama):
    server = make_server2d(panorama, 8, port=0)
    stop = serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/frame?seed=1&zoom=2&format=png"
    try:
        here, once_round = png(get(url + "&x=0.3")[2]), png(get(url + "&x=2.3")[2])
    finally:
        stop()
    assert here.shape == (8, 16, 3)
    assert np.abs(here.astype(int) - once_round.astype(int)).max() <= 1  # x + 2 is the same direction


def test_cips3d_view_serves_the_2d_viewer_for_a_2d_checkpoint(tmp_path, flat, monkeypatch, capsys):
    """The CLI picks the 2D viewer for a 2D folder; serving is stopped as soon as it starts."""
    from cips3d.cli import view  # noqa: PLC0415
    from cips3d.cli.main import main  # noqa: PLC0415

    save_generator2d(flat, tmp_path / "model")
    started = {}

    def fake_make_server2d(G, height, host, port, first_seed, styles, sample_command):
        server = make_server2d(G, height, host, 0, first_seed, styles, sample_command)
        started["server"], started["command"] = server, sample_command
        threading.Timer(0.5, server.shutdown).start()
        return server

    monkeypatch.setattr(view, "make_server2d", fake_make_server2d)
    code = main(["view", "--checkpoint", str(tmp_path / "model"), "--device", "cpu", "--seed", "5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "a 2D CIPS model, 32x32 px" in out
    assert (
        started["command"] == f"cips3d sample2d --checkpoint {tmp_path / 'model'}"
    )  # the page adds the rest
    missing = str(tmp_path / "w.safetensors")
    assert main(["view", "--checkpoint", str(tmp_path / "model"), "--styles", missing]) == 2
    assert "no fitted style at" in capsys.readouterr().err
    # A style fitted with another model is shown, with a note (as for the 3-D styles of cips3d invert).
    w = torch.zeros(1, flat.config.style_dim)
    save_file({"w": w}, tmp_path / "w.safetensors", metadata={"model": str(tmp_path / "other")})
    argv = ["view", "--checkpoint", str(tmp_path / "model"), "--device", "cpu"]
    assert main([*argv, "--styles", str(tmp_path / "w.safetensors")]) == 0
    err = capsys.readouterr().err
    assert f"note: the styles in {tmp_path / 'w.safetensors'} were fitted with {tmp_path / 'other'}" in err
    save_file({"w": w}, tmp_path / "w.safetensors", metadata={"model": str((tmp_path / "model").resolve())})
    assert main([*argv, "--styles", str(tmp_path / "w.safetensors")]) == 0
    assert "note" not in capsys.readouterr().err


def test_a_fitted_style_replaces_the_seeds(tmp_path, flat):
    w = torch.randn(1, flat.num_styles, flat.config.style_dim, generator=torch.Generator().manual_seed(2))
    save_file({"w": w}, tmp_path / "w.safetensors")
    server = make_server2d(flat, 16, port=0, styles=load_fitted_w(tmp_path / "w.safetensors", flat))
    stop = serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        first, other = (png(get(url + f"/frame?seed={s}&format=png")[2]) for s in (1, 5))
        assert json.loads(get(url + "/info")[2])["fixed_styles"] is True
    finally:
        stop()
    assert np.array_equal(first, other) and np.array_equal(first, render_w(flat, w, flat.frame_grid(16)))
    save_file({"w": torch.zeros(1, 3)}, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match=r"holds 'w' of shape \[1, 3\], not a style of this model"):
        load_fitted_w(tmp_path / "bad.safetensors", flat)
    # NaN or another dtype started the viewer, whose every frame was then refused.
    for bad, why in ((torch.full_like(w, float("nan")), "it holds NaN or infinite values"),
                     (w.half(), "its dtype is torch.float16, not torch.float32")):  # fmt: skip
        save_file({"w": bad}, tmp_path / "bad.safetensors")
        with pytest.raises(CheckpointError, match=f"holds no usable style of this model: {why}"):
            load_fitted_w(tmp_path / "bad.safetensors", flat)
