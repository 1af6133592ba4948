"""Both viewers' pages in a real (headless) Chromium: the page's script asks for frames and shows them, and
dragging, the wheel, the buttons, the panel and the seed box ask the server for what they should.
Kept out of the default run by the `browser` marker (`make test-browser` installs Chromium and runs
them); selected without Chromium they fail, never skip."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import shlex
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d.config import RenderConfig
from cips3d.config_2d import cips2d_preset
from cips3d.inference.video import seed_styles
from cips3d.inference.web_viewer import make_server, serve_in_thread
from cips3d.inference.web_viewer2d import make_server2d
from cips3d.io.checkpoint import save_generator
from cips3d.io.checkpoint2d import save_generator2d
from cips3d.io.images import to_uint8
from cips3d.models.generator2d import Generator2D
from cips3d.rendering.cameras import Camera
from tests.cli.helpers import run
from tests.inference.headless_browser import Page
from tests.inference.http_client import get

pytestmark = pytest.mark.browser

HALF_PI = math.pi / 2
STATUS = "document.getElementById('status').textContent"


class FrameLog:
    """The query of every /frame request a server answered, in order (read from the handler)."""

    def __init__(self, server) -> None:
        self.queries: list[dict[str, str]] = []
        self._lock = threading.Lock()
        log, handler = self, server.RequestHandlerClass

        class Logged(handler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                if url.path == "/frame":
                    with log._lock:
                        log.queries.append({k: v[0] for k, v in parse_qs(url.query).items()})
                super().do_GET()

        server.RequestHandlerClass = Logged

    def wait_for(self, wanted: dict[str, float | str], timeout: float = 20.0) -> dict[str, str]:
        """The first frame request since the last one matched whose values match `wanted` (it and those
        before it are then passed over: a state the page asked for earlier does not count again)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for i, query in enumerate(self.queries):
                    if all(_same(query.get(k), v) for k, v in wanted.items()):
                        del self.queries[: i + 1]
                        return query
            time.sleep(0.05)
        raise AssertionError(f"no frame request with {wanted}; the last ones: {self.queries[-3:]}")

    def clear(self) -> None:
        with self._lock:
            self.queries.clear()


def _same(given: str | None, wanted: float | str) -> bool:
    if given is None:
        return False
    if isinstance(wanted, str):
        return given == wanted
    return math.isclose(float(given), wanted, abs_tol=1e-4)  # the 3-D page keeps angles to 4 decimals


def serving(server):
    stop = serve_in_thread(server)
    return f"http://127.0.0.1:{server.server_address[1]}/", stop


def wait_for_file(path: Path, timeout: float = 20.0) -> Path:
    """`path` once the browser has finished writing it (it writes a .crdownload first, then renames)."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"no {path.name} downloaded; the folder holds {sorted(os.listdir(path.parent))}"
    return path


def shown_pixels(page: Page) -> list[int]:
    """The RGBA bytes of the frame the page shows, read back through a canvas."""
    return page.evaluate(
        "(() => { const img = document.getElementById('frame'), c = document.createElement('canvas');"
        " c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d');"
        " g.drawImage(img, 0, 0); return Array.from(g.getImageData(0, 0, c.width, c.height).data); })()"
    )


def test_the_3d_page_turns_the_camera_changes_seed_panel_and_psi_and_saves(tiny_G, tmp_path, capsys):
    render = RenderConfig(img_size=16, deterministic=True)
    model = save_generator(tiny_G, tmp_path / "model")
    server = make_server(tiny_G, render, port=0, sample_command=f"cips3d sample --checkpoint {model}")
    log = FrameLog(server)
    url, stop = serving(server)
    try:
        with Page(url) as page:
            page.wait_for(f"{STATUS}.startsWith('yaw 1.57  pitch 1.57  render')")
            log.wait_for({"seed": "0", "yaw": HALF_PI, "pitch": HALF_PI, "panel": "image", "psi": 1.0})
            assert page.evaluate("document.getElementById('frame').naturalWidth") == 16
            front = shown_pixels(page)

            width = page.evaluate("document.getElementById('frame').clientWidth")
            assert width == 512  # the page's CSS: drags are in screen pixels, 0.005 rad each
            page.drag("frame", 100, 0)  # right: the camera turns to smaller yaw
            log.wait_for({"yaw": HALF_PI - 0.5, "pitch": HALF_PI})
            page.wait_for(f"{STATUS}.startsWith('yaw 1.07  pitch 1.57')")
            page.drag("frame", 0, -60)  # up: larger pitch
            log.wait_for({"yaw": HALF_PI - 0.5, "pitch": HALF_PI + 0.3})
            page.wait_for(f"{STATUS}.startsWith('yaw 1.07  pitch 1.87')")
            assert shown_pixels(page) != front  # the new frame is shown

            page.press("ArrowLeft")  # the arrow keys turn as a 10-pixel drag does
            page.press("ArrowLeft")
            page.press("ArrowDown")
            log.wait_for({"yaw": HALF_PI - 0.4, "pitch": HALF_PI + 0.25})
            page.press("ArrowRight")
            page.press("ArrowRight")
            page.press("ArrowUp")
            log.wait_for({"yaw": HALF_PI - 0.5, "pitch": HALF_PI + 0.3})
            page.click("next")
            log.wait_for({"seed": "1", "yaw": HALF_PI - 0.5})
            page.click("prev")
            log.wait_for({"seed": "0", "yaw": HALF_PI - 0.5})
            page.click("reset")
            log.wait_for({"yaw": HALF_PI, "pitch": HALF_PI})
            page.evaluate("(() => { const p = document.getElementById('panel'); p.value = 'depth';"
                          " p.dispatchEvent(new Event('input')); })()")  # fmt: skip
            log.wait_for({"panel": "depth"})
            page.evaluate("(() => { const p = document.getElementById('psi'); p.value = '0.5';"
                          " p.dispatchEvent(new Event('input')); })()")  # fmt: skip
            log.wait_for({"panel": "depth", "psi": 0.5})

            log.clear()
            page.click("spin")  # the turntable: yaw keeps changing by itself
            page.wait_for("document.getElementById('spin').checked")
            deadline = time.monotonic() + 20
            while len({q["yaw"] for q in log.queries}) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len({q["yaw"] for q in log.queries}) >= 3, log.queries

            page.click("spin")
            page.save_downloads_to(tmp_path)  # "save png": the view, lossless, named after its settings
            page.click("reset")
            log.wait_for({"yaw": HALF_PI, "pitch": HALF_PI, "panel": "depth"})
            page.evaluate("(() => { const p = document.getElementById('panel'); p.value = 'image';"
                          " p.dispatchEvent(new Event('input')); })()")  # fmt: skip
            page.click("next")
            log.wait_for({"seed": "1", "yaw": HALF_PI, "panel": "image", "psi": 0.5})
            page.click("save")
            saved = wait_for_file(tmp_path / "seed0001_yaw1.571_pitch1.571_psi0.50.png")
            styles = tiny_G.truncate(seed_styles(tiny_G, 1)[0], 0.5)
            with torch.no_grad():
                direct = tiny_G.synthesis(styles, Camera.from_angles(HALF_PI, HALF_PI), render).img
            assert np.array_equal(np.asarray(Image.open(saved)), to_uint8(direct[0]))
            page.wait_for(f"{STATUS} === 'saved seed0001_yaw1.571_pitch1.571_psi0.50.png'")

            # The command under the frame renders what the page shows, exactly: after a drag too
            page.drag("frame", 37, -23)
            log.wait_for(
                {"seed": "1", "yaw": round(HALF_PI - 37 * 0.005, 4), "pitch": round(HALF_PI + 23 * 0.005, 4)}
            )
            command = page.wait_for(
                "(t => t.includes('--pitch 1.6858') && t)(document.getElementById('command').textContent)"
            )
            page.click("save")
            saved = wait_for_file(tmp_path / "seed0001_yaw1.386_pitch1.686_psi0.50.png")
            words = shlex.split(command)
            assert words[:4] == ["cips3d", "sample", "--checkpoint", str(model)] and "--size" in words
            assert "--depth" not in words  # the image panel: only the image
            page.evaluate("(() => { const p = document.getElementById('panel'); p.value = 'depth';"
                          " p.dispatchEvent(new Event('input')); })()")  # fmt: skip
            page.wait_for("document.getElementById('command').textContent.endsWith(' --depth')")
            assert (
                run(capsys, *words[1:], "--outdir", str(tmp_path / "again"), "--quiet", "--no-grid")[0] == 0
            )
            again = np.asarray(Image.open(tmp_path / "again" / "seed0001.png"))
            assert np.array_equal(again, np.asarray(Image.open(saved)))

            page.evaluate("(() => { const s = document.getElementById('seed'); s.value = '-1';"
                          " s.dispatchEvent(new Event('input')); })()")  # fmt: skip
            page.wait_for(f"{STATUS}.startsWith('seed must be')")  # the server's refusal, shown
    finally:
        stop()


def test_the_2d_page_moves_zooms_and_saves_the_window(tmp_path, capsys):
    G = Generator2D(dataclasses.replace(cips2d_preset("cips-tiny")), torch.Generator().manual_seed(0)).eval()
    model = save_generator2d(G, tmp_path / "model")
    server = make_server2d(G, height=16, port=0, sample_command=f"cips3d sample2d --checkpoint {model}")
    log = FrameLog(server)
    url, stop = serving(server)
    try:
        with Page(url) as page:
            page.wait_for(f"{STATUS}.startsWith('x 0.000  y 0.000  zoom 1.00  render')")
            log.wait_for({"seed": "0", "x": 0.0, "y": 0.0, "zoom": 1.0})
            assert page.evaluate("document.getElementById('frame').naturalHeight") == 16

            shown = page.evaluate("[document.getElementById('frame').clientWidth,"
                                  " document.getElementById('frame').clientHeight]")  # fmt: skip
            page.drag("frame", 40, -20)  # the window moves against the drag: 2 / zoom per shown width
            x, y = -40 * 2 / shown[0], 20 * 2 / shown[1]
            log.wait_for({"x": x, "y": y, "zoom": 1.0})

            page.click("in")
            log.wait_for({"x": x, "y": y, "zoom": 1.5})
            page.click("out")
            log.wait_for({"zoom": 1.0})
            page.press("ArrowRight")  # a tenth of the window (2 / zoom wide) per key
            page.press("ArrowUp")
            log.wait_for({"x": x + 0.2, "y": y - 0.2, "zoom": 1.0})
            page.press("+")
            log.wait_for({"x": x + 0.2, "zoom": 1.5})
            page.press("ArrowLeft")
            log.wait_for({"x": x + 0.2 - 0.2 / 1.5, "zoom": 1.5})
            page.press("-")
            log.wait_for({"zoom": 1.0})
            page.wheel("frame", -100)  # wheel up zooms in by exp(0.2)
            log.wait_for({"zoom": math.exp(0.2)})
            page.click("next")
            log.wait_for({"seed": "1", "zoom": math.exp(0.2)})
            page.click("reset")
            log.wait_for({"seed": "1", "x": 0.0, "y": 0.0, "zoom": 1.0})
            page.click("in")
            log.wait_for({"seed": "1", "zoom": 1.5})
            page.save_downloads_to(tmp_path)
            page.click("save")
            saved = wait_for_file(tmp_path / "seed0001_x0.000_y0.000_zoom1.50_psi1.00.png")
            _, _, direct = get(url + "frame?seed=1&x=0&y=0&zoom=1.5&psi=1&format=png")
            assert Image.open(saved).size == Image.open(io.BytesIO(direct)).size
            assert np.array_equal(np.asarray(Image.open(saved)), np.asarray(Image.open(io.BytesIO(direct))))

            # The command under the frame renders the window shown, exactly: after a drag too
            page.drag("frame", 37, -23)
            x, y = -37 * 2 / 1.5 / shown[0], 23 * 2 / 1.5 / shown[1]
            asked = log.wait_for({"seed": "1", "x": x, "y": y, "zoom": 1.5})
            assert len(asked["x"]) <= 8 and len(asked["y"]) <= 7  # kept to 5 decimals at zoom 1.5
            center = f"--center={asked['x']},{asked['y']} --zoom 1.5 --psi 1 --size 16"
            command = page.wait_for(
                f"(t => t.endsWith('{center}') && t)(document.getElementById('command').textContent)"
            )
            page.click("save")
            name = f"seed0001_x{float(asked['x']):.3f}_y{float(asked['y']):.3f}_zoom1.50_psi1.00.png"
            saved = wait_for_file(tmp_path / name)
            words = shlex.split(command)
            assert words[:4] == ["cips3d", "sample2d", "--checkpoint", str(model)]
            assert run(capsys, *words[1:], "--outdir", str(tmp_path / "again"), "--quiet")[0] == 0
            again = np.asarray(Image.open(tmp_path / "again" / "seed0001.png"))
            assert np.array_equal(again, np.asarray(Image.open(saved)))
    finally:
        stop()
