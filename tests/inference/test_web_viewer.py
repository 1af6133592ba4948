"""The browser viewer: its query parsing, and a live server on a free port answering the page, frames
equal to direct renders, fixed styles, errors and the CLI's port check."""

from __future__ import annotations

import io
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d.cli.main import build_parser
from cips3d.cli.view import sample_command
from cips3d.config import RenderConfig
from cips3d.inference import web_viewer
from cips3d.inference.geometry import normals_image
from cips3d.inference.video import seed_styles
from cips3d.inference.web_viewer import BadRequest, FrameRequest, make_server, serve_in_thread
from cips3d.io.images import colorize_depth, to_uint8
from cips3d.rendering.cameras import Camera
from tests.cli.helpers import run
from tests.inference.http_client import get

RENDER = RenderConfig(img_size=8, deterministic=True)


def test_a_frame_request_has_defaults_and_refuses_bad_values():
    r = FrameRequest.parse("")
    assert (r.seed, r.yaw, r.pitch, r.panel, r.psi, r.format) == (
        0,
        math.pi / 2,
        math.pi / 2,
        "image",
        1.0,
        "jpeg",
    )
    r = FrameRequest.parse("seed=7&yaw=1.2&pitch=1.4&panel=depth&psi=0.5&format=PNG")  # case as panel=
    assert (r.seed, r.yaw, r.pitch, r.panel, r.psi, r.format) == (7, 1.2, 1.4, "depth", 0.5, "png")
    bad = [("seed=x", "integer"), ("seed=-1", "seed must be"), ("yaw=nan", "yaw must be a number"),
           ("psi=2", "psi must"),
           ("yaw=1e39", "at most 1000 either way"), ("pitch=-1e308", "at most 1000 either way"),
           ("panel=mask", "panel must"), ("format=gif", "format must"),
           ("yaw=abc", "^yaw must be a number, got 'abc'.$"),  # was: "seed must be an integer and yaw, ..."
           ("seed=" + "9" * 5000, "^seed must be an integer, got '9999"),  # was: Python's digit-limit advice
           # were read as the default, or as numbers by Python's lenient int and float:
           ("seed=", "^seed must be an integer, got ''.$"), ("sed=3", "^unknown parameter 'sed'; the param"),
           ("seed=1_000", "got '1_000'"), ("seed=%D9%A1%D9%A2", "seed must be an integer"),
           ("yaw=%201.2", "yaw must be a number"), ("seed=9007199254740992", "from 0 to 2\\^53 - 1"),
           # past a pole, rendered as the pole without a word:
           ("pitch=4", "^pitch must be from 0 .* to pi .*, got 4.$"), ("pitch=-0.5", "got -0.5.$"),
           ]  # fmt: skip
    for query, words in bad:
        with pytest.raises(BadRequest, match=words):
            FrameRequest.parse(query)


@pytest.fixture
def server(tiny_G):
    server = make_server(tiny_G, RENDER, port=0)
    stop = serve_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop()


def expected_frame(G, styles, yaw: float, pitch: float) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesis(styles, Camera.from_angles(yaw, pitch), RENDER)


def test_the_server_answers_the_page_and_frames_equal_to_direct_renders(server, tiny_G):
    code, kind, page = get(server + "/")
    assert code == 200 and kind.startswith("text/html") and b"cips3d viewer" in page
    code, kind, png = get(server + "/frame?seed=3&yaw=1.7&pitch=1.5&format=png")
    assert code == 200 and kind == "image/png"
    out = expected_frame(tiny_G, seed_styles(tiny_G, 3)[0], 1.7, 1.5)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), to_uint8(out.img[0]))
    _, _, png = get(server + "/frame?seed=3&yaw=1.7&pitch=1.5&panel=depth&format=png")
    depth = colorize_depth(out.depth[0], RENDER.ray_start, RENDER.ray_end)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), depth)
    _, _, png = get(server + "/frame?seed=3&yaw=1.7&pitch=1.5&panel=Normals&format=png")  # as video's
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), normals_image(out.depth, RENDER.fov)[0])
    code, kind, jpeg = get(server + "/frame?seed=3&yaw=1.7&pitch=1.5")  # the page's default: JPEG
    decoded = np.asarray(Image.open(io.BytesIO(jpeg))).astype(int)
    assert kind == "image/jpeg" and np.abs(decoded - to_uint8(out.img[0])).mean() < 8
    info = json.loads(get(server + "/info")[2])
    assert info["size"] == 8 and info["frames_served"] == 4 and not info["fixed_styles"]
    code, _, message = get(server + "/frame?seed=-4")
    assert code == 400 and b"seed must be" in message
    assert get(server + "/nothing")[0] == 404


def test_fixed_styles_replace_the_seeds(tiny_G):
    styles = seed_styles(tiny_G, 11)[0]
    server = make_server(tiny_G, RENDER, port=0, styles=styles, camera=(1.3, 1.45))
    stop = serve_in_thread(server)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/frame?seed=5&yaw=1.6&pitch=1.6&format=png"
        png = get(url)[2]
        info = json.loads(get(f"http://127.0.0.1:{server.server_address[1]}/info")[2])
    finally:
        stop()
    assert (info["yaw"], info["pitch"]) == (1.3, 1.45)  # the page starts at the fitted photo's camera
    out = expected_frame(tiny_G, styles, 1.6, 1.6)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), to_uint8(out.img[0]))


def test_fixed_styles_are_folded_once_per_psi_whatever_the_seed(tiny_G):
    source = web_viewer.FrameSource(tiny_G, RENDER, styles=seed_styles(tiny_G, 11)[0])
    for seed in (0, 1, 2):
        source.frame(FrameRequest(seed, 1.57, 1.57, "image", 1.0))
    source.frame(FrameRequest(0, 1.57, 1.57, "image", 0.5))
    assert list(source.viewers) == [(None, 1.0), (None, 0.5)]


def test_only_the_latest_seeds_keep_their_folded_styles(tiny_G):
    source = web_viewer.FrameSource(tiny_G, RENDER)
    for seed in range(web_viewer.CACHED_VIEWERS + 2):
        source.frame(FrameRequest(seed, 1.57, 1.57, "image", 1.0))
    assert len(source.viewers) == web_viewer.CACHED_VIEWERS and (0, 1.0) not in source.viewers


def test_cips3d_view_refuses_a_busy_port_in_one_sentence(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run(
            capsys, "view", "--preset", "tiny", "--size", "8", "--device", "cpu", "--port", str(port)
        )
    assert code == 2 and f"port {port} is in use" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", "-1"], "--seed must be from 0 to 2^53 - 1, got -1."),  # in one wording:
        (["--seed", str(2**53)], "--seed must be from 0 to 2^53 - 1, got 9007199254740992."),
        (["--seed", str(2**64)], "--seed must be from 0 to 2^53 - 1, got 18446744073709551616."),
        (["--size", "5000"], "at most 4096 px"),
    ],
)
def test_cips3d_view_refuses_a_seed_or_size_no_frame_could_use_before_serving(capsys, flags, message):
    code, _, err = run(capsys, "view", "--preset", "tiny", "--device", "cpu", "--port", "0", *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_browser_that_drops_its_connection_is_not_an_error(capsys):
    from cips3d.inference.web_viewer import ViewerServer  # noqa: PLC0415

    server = ViewerServer.__new__(ViewerServer)  # handle_error needs no socket
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        server.handle_error(None, ("127.0.0.1", 5))
    assert capsys.readouterr().err == ""
    try:
        raise ValueError("a real bug")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 5))
    assert "ValueError: a real bug" in capsys.readouterr().err  # everything else is still shown


@pytest.mark.parametrize(
    "flags, command",
    [
        (["--checkpoint", "runs/my model"], "cips3d sample --checkpoint 'runs/my model'"),
        (["--preset", "tiny", "--init-seed", "3"], "cips3d sample --preset tiny --init-seed 3"),
        (
            ["--checkpoint", "G.pth", "--preset", "ffhq", "--precision", "tf32", "--compile"],
            "cips3d sample --checkpoint G.pth --preset ffhq --precision tf32 --compile",
        ),
    ],  # fmt: skip
)
def test_the_page_is_given_the_sample_command_of_its_model_and_render_options(tiny_G, flags, command):
    args = build_parser().parse_args(["view", *flags, "--device", "cpu"])
    assert sample_command(args) == command  # the page adds --seeds, --yaw, --pitch, --psi, --size
    server = make_server(tiny_G, RENDER, port=0, sample_command=command)
    stop = serve_in_thread(server)
    try:
        _, _, body = get(f"http://127.0.0.1:{server.server_address[1]}/info")
    finally:
        stop()
    assert json.loads(body)["sample_command"] == command


def test_other_methods_and_malformed_requests_get_one_plain_line(server):
    url = server
    head = urllib.request.Request(url + "/frame?seed=1&format=png", method="HEAD")
    with urllib.request.urlopen(head, timeout=60) as answer:  # was 501: HEAD is served, without a body
        assert answer.status == 200 and answer.headers["Content-Type"] == "image/png" and answer.read() == b""
    post = urllib.request.Request(url + "/frame", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=60)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == "GET, HEAD"
    assert refused.value.read() == b"POST is not served; use GET."
    code, kind, body = get(url + "/nowhere")
    assert code == 404 and body == b"not found: the routes are /, /frame and /info."
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:  # http.server's own refusal
        raw.sendall(b"GARBAGE\r\n\r\n")
        answer = raw.recv(4096).decode()
    assert answer == "Bad request syntax ('GARBAGE').\n"  # was an HTML page (HTTP/0.9: no headers)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        raw.sendall(b"GET /info HTTP/2.0\r\n\r\n")
        answer = raw.recv(4096).decode()
    assert answer == "Invalid HTTP version (2.0).\n"
    assert get(url + "/info")[0] == 200  # and it goes on serving


def test_closing_waits_for_the_frame_being_rendered_and_starts_no_other(tiny_G):
    """A request thread inside PyTorch when Python exits aborted `cips3d view` (SIGABRT) on Ctrl-C;
    requests queued behind the frame being rendered were all rendered before the close returned."""
    server = make_server(tiny_G, RenderConfig(img_size=8, deterministic=True), port=0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    stop = serve_in_thread(server)
    gate = server.render_gate
    gate.__enter__()  # as a frame being rendered holds it
    queued = []
    waiting = threading.Thread(target=lambda: queued.append(get(url + "/frame?seed=1")))
    waiting.start()
    time.sleep(0.2)  # the request waits at the gate
    threading.Timer(0.5, gate.__exit__).start()
    started = time.monotonic()
    stop()
    assert time.monotonic() - started >= 0.4  # it waited for that frame
    waiting.join(timeout=60)
    assert queued[0][0] == 503 and queued[0][2] == b"the viewer is stopping."  # not rendered after it
    assert server.render_gate.closed


def test_a_second_ctrl_c_while_closing_leaves_at_once_without_pythons_exit(monkeypatch, capsys):
    """The second Ctrl-C of an impatient user raised out of the close, and Python's exit with a request
    thread inside PyTorch aborted the process (SIGABRT)."""
    from cips3d.cli import view  # noqa: PLC0415

    class Busy:
        def server_close(self) -> None:
            raise KeyboardInterrupt  # the second Ctrl-C, while waiting for the frame

    exits = []
    monkeypatch.setattr(view.os, "_exit", exits.append)
    view.close_server(Busy())
    assert exits == [130]
    assert "stopped without waiting for the frame being rendered" in capsys.readouterr().out


def _loopback_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_the_viewer_listens_on_ipv6_and_prints_a_url_that_opens(tiny_G):
    """--host ::1 failed ("Address family for hostname not supported"); 0.0.0.0 printed
    http://0.0.0.0:PORT as the address to open."""
    render = RenderConfig(img_size=8, deterministic=True)
    everywhere = make_server(tiny_G, render, host="0.0.0.0", port=0)
    try:
        assert everywhere.url() == f"http://127.0.0.1:{everywhere.server_address[1]}"
    finally:
        everywhere.server_close()
    if not _loopback_ipv6():  # a machine without IPv6: the failure is still one OSError, said by `view`
        with pytest.raises(OSError):
            make_server(tiny_G, render, host="::1", port=0)
        return
    for host in ("::1", "[::1]"):
        server = make_server(tiny_G, render, host=host, port=0)
        stop = serve_in_thread(server)
        try:
            assert server.url() == f"http://[::1]:{server.server_address[1]}"
            code, _, body = get(server.url() + "/info")
            assert code == 200 and json.loads(body)["size"] == 8
        finally:
            stop()
