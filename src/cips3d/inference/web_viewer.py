"""A 3-D viewer in the browser: drag to turn the object, pick a seed, watch frames render live.

`cips3d view` serves one page and its frames from this machine (`ViewerServer`); the model runs here,
on its CPU or GPU, through `InteractiveRenderer` (styles folded once per seed, CUDA graph replay on a
GPU). The page asks for the next frame only when the last one has arrived, so a slow model shows fewer
frames instead of a growing queue. Nothing is loaded from the internet: the page is self-contained.

Routes:
    GET /                                  the page
    GET /frame?seed=S&yaw=Y&pitch=P&panel=image|aux|depth|normals&psi=F&format=jpeg|png   one frame
    GET /info                              JSON: image size, device, seeds shown first, frames served
"""

from __future__ import annotations

import io
import json
import re
import socket
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image

from cips3d import constants as K
from cips3d.config import RenderConfig
from cips3d.config import check_psi as psi_rule
from cips3d.errors import ConfigError
from cips3d.fast import SlowPrecisionWarning
from cips3d.inference.interactive import InteractiveRenderer
from cips3d.inference.video import PANELS, compose_frame, seed_styles
from cips3d.models.generator3d import Generator3D
from cips3d.outputs import Styles
from cips3d.rendering.cameras import ANGLE_RULE, PITCH_RULE, Camera, is_camera_angle, is_pitch
from cips3d.seeding import check_seed as seed_rule

FORMATS = {"jpeg": "image/jpeg", "png": "image/png"}
"""JPEG by default: a 512 px PNG takes about 40 ms to encode here (JPEG about 1 ms), more than a GPU
takes to render the frame; PNG gives the exact pixels."""
PLAIN_TEXT = "text/plain; charset=utf-8"  # the viewers' refusals: one line a page or curl shows as is
JPEG_QUALITY = 90
CACHED_VIEWERS = 8
"""Seeds whose folded styles (and CUDA graph) are kept; a ninth evicts the oldest."""
MAX_SEED = 2**53 - 1
"""The largest integer a browser's numbers hold exactly (Number.MAX_SAFE_INTEGER): the page's next and
previous buttons count in them."""


class Source(Protocol):
    """What a viewer server draws its frames from (`FrameSource`; the 2D viewer's `WindowSource`)."""

    frames_served: int

    def frame(self, request: Any) -> np.ndarray: ...


class BadRequest(ValueError):
    """A query the viewer cannot answer (answered with HTTP 400 and this message)."""


class Stopping(RuntimeError):
    """The viewer is closing: a frame asked for now is not rendered (answered with HTTP 503)."""


class RenderGate:
    """A frame source's lock (one frame renders at a time: one model) that its server closes for good.

    `with gate:` raises `Stopping` once `close` was called, so requests that queued behind the frame
    being rendered leave without touching PyTorch: closing waits for that one frame only (it rendered
    every queued frame first, and a Python exit with a thread still inside PyTorch aborts the process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.closed = False

    def __enter__(self) -> RenderGate:
        self._lock.acquire()
        if self.closed:
            self._lock.release()
            raise Stopping("the viewer is stopping.")
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def close(self) -> None:
        """Let no frame start, and wait for the one being rendered (after it, every `with` refuses)."""
        self.closed = True
        with self._lock:
            pass


def check_query_seed(seed: int) -> None:
    """A `BadRequest` unless `seed` is one the page's buttons count exactly (`seeding.check_seed`'s rule)."""
    _bad_request(seed_rule, seed, "seed", MAX_SEED)


def check_psi(psi: float) -> None:
    """A `BadRequest` unless `psi` is a truncation (`config.check_psi`'s rule)."""
    _bad_request(psi_rule, psi)


def _bad_request(check: Any, *args: Any) -> None:
    """`check(*args)`, its `ConfigError` turned into a `BadRequest` (an HTTP 400) with its words."""
    try:
        check(*args)
    except ConfigError as err:
        raise BadRequest(str(err)) from None


def query_values(query: str, names: tuple[str, ...]) -> dict[str, str]:
    """The query's values by name (the last of a repeated name, as browsers' forms send them); a name
    not among `names` (a misspelt `sed=`) is refused rather than silently left at its default."""
    values = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = [name for name in values if name not in names]
    if unknown:
        raise BadRequest(
            f"unknown parameter {unknown[0][:MAX_NUMBER_TEXT]!r}; the parameters are {', '.join(names)}."
        )
    return values


def query_number(query: dict[str, str], name: str, default: float | int, kind: type = float) -> Any:
    """`query[name]` read as `kind` (float or int), `default` when absent; a BadRequest naming it. Only
    plain ASCII numbers are read: Python's int and float also take `1_000`, other scripts' digits and
    surrounding spaces, which no page sends and a typo should not turn into a number."""
    text = query.get(name)
    if text is None:
        return default
    pattern = INTEGER_TEXT if kind is int else NUMBER_TEXT
    if len(text) <= MAX_NUMBER_TEXT and pattern.fullmatch(text):  # longer: past any value, and Python
        return kind(text)  # refuses long integers in its own words
    what = "an integer" if kind is int else "a number"
    raise BadRequest(f"{name} must be {what}, got {text[:MAX_NUMBER_TEXT]!r}.")


MAX_NUMBER_TEXT = 40  # characters: a seed up to 2^53 - 1 has 16 digits, a float's repr at most 24
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def image_format(query: dict[str, str]) -> str:
    """The query's `format` (default jpeg), one of FORMATS."""
    name = query.get("format", "jpeg").lower()  # as panel= is read: PNG was refused
    if name not in FORMATS:
        raise BadRequest(f"format must be jpeg or png, got {name!r}.")
    return name


def remember(cache: OrderedDict, key: Any, make: Callable[[], Any]) -> Any:
    """`cache[key]`, made by `make()` when missing; the `CACHED_VIEWERS` latest keys are kept."""
    if key not in cache:
        cache[key] = make()
        if len(cache) > CACHED_VIEWERS:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]


@dataclass(frozen=True)
class FrameRequest:
    seed: int
    yaw: float
    pitch: float
    panel: str
    psi: float
    format: str = "jpeg"

    @classmethod
    def parse(cls, query: str) -> FrameRequest:
        """?seed=&yaw=&pitch=&panel=&psi=&format= -> a checked request (BadRequest says what is wrong)."""
        q = query_values(query, ("seed", "yaw", "pitch", "panel", "psi", "format"))
        seed = query_number(q, "seed", 0, int)
        yaw, pitch = query_number(q, "yaw", K.YAW_MEAN), query_number(q, "pitch", K.PITCH_MEAN)
        psi = query_number(q, "psi", 1.0)
        panel = q.get("panel", "image").lower()  # as video's --panels
        check_query_seed(seed)
        if not (is_camera_angle(yaw) and is_camera_angle(pitch)):
            raise BadRequest(f"yaw and pitch must be {ANGLE_RULE}.")
        if not is_pitch(pitch):  # the renderer would clamp it to the pole without a word
            raise BadRequest(f"pitch must be {PITCH_RULE}, got {pitch:g}.")
        check_psi(psi)
        if panel not in PANELS:
            raise BadRequest(f"panel must be one of {', '.join(PANELS)}, got {panel!r}.")
        return cls(seed, yaw, pitch, panel, psi, image_format(q))


class FrameSource:
    """Renders frames of seeds (or of fixed styles) for the server, one at a time (a lock: one model)."""

    def __init__(self, G: Generator3D, render: RenderConfig, styles: Styles | None = None) -> None:
        self.G, self.render = G, render
        self.fixed_styles = styles
        self.viewers: OrderedDict[tuple[int | None, float], InteractiveRenderer] = OrderedDict()
        self.lock = RenderGate()
        self.frames_served = 0

    def viewer(self, seed: int, psi: float) -> InteractiveRenderer:
        """The renderer of (seed, psi); with fixed styles the seed plays no part, so psi alone is the key."""
        key = (None if self.fixed_styles is not None else seed, psi)

        def make() -> InteractiveRenderer:
            if self.fixed_styles is not None:
                styles = self.G.truncate(self.fixed_styles, psi)
            else:
                styles = seed_styles(self.G, seed, psi)[0]
            with warnings.catch_warnings():  # `cips3d view` says it once, at start, not per seed
                warnings.simplefilter("ignore", SlowPrecisionWarning)
                return InteractiveRenderer(self.G, styles, self.render)

        return remember(self.viewers, key, make)

    def frame(self, request: FrameRequest) -> np.ndarray:
        """uint8 [H, W, 3] of the request's panel (its PyTorch work inside the gate: none after a close)."""
        with self.lock:
            camera = Camera.from_angles(request.yaw, request.pitch)  # pitch is kept off the poles there
            out = self.viewer(request.seed, request.psi).render(camera)
            pixels = compose_frame(out, self.render, (request.panel,))
            self.frames_served += 1
        return pixels


def encode(pixels: np.ndarray, image_format: str) -> bytes:
    """uint8 [H, W, 3] -> JPEG (quality 90) or PNG (fastest compression: the traffic is local) bytes."""
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    else:
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def make_handler(
    source: Source, info: dict, page: str | None = None, parse: Callable[[str], Any] | None = None
) -> type[BaseHTTPRequestHandler]:
    """The request handler class of one server (bound to its frame source). `page` and `parse` (the
    query -> request a `source.frame` takes, with a `format`) default to the 3-D viewer's."""
    page_bytes = (PAGE if page is None else page).encode()
    parse = parse or FrameRequest.parse

    class Handler(BaseHTTPRequestHandler):
        # http.server's own refusals (a malformed request line, too many headers) in one plain line too
        error_message_format = "%(message)s.\n"
        error_content_type = PLAIN_TEXT
        head_only = False

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
            self.head_only = True
            self.do_GET()

        def refuse_method(self) -> None:
            headers = {"Allow": "GET, HEAD"}
            self._send(405, PLAIN_TEXT, f"{self.command} is not served; use GET.".encode(), headers)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse_method  # noqa: N815 (http.server's names)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            try:
                if url.path == "/":
                    self._send(200, "text/html; charset=utf-8", page_bytes)
                elif url.path == "/info":
                    body = json.dumps(info | {"frames_served": source.frames_served})
                    self._send(200, "application/json", body.encode())
                elif url.path == "/frame":
                    self._send_frame(parse(url.query))
                else:
                    self._send(404, PLAIN_TEXT, b"not found: the routes are /, /frame and /info.")
            except (BadRequest, ConfigError) as err:  # a ConfigError: a view the model cannot render
                self._send(400, PLAIN_TEXT, str(err).encode())
            except Stopping as err:
                self._send(503, PLAIN_TEXT, str(err).encode())

        def _send_frame(self, request: Any) -> None:
            """The image, with the milliseconds spent rendering (pixels ready on the host) and encoding."""
            started = time.perf_counter()
            pixels = source.frame(request)
            rendered = time.perf_counter()
            body = encode(pixels, request.format)
            timings = {
                "X-Render-Ms": f"{1000 * (rendered - started):.2f}",
                "X-Encode-Ms": f"{1000 * (time.perf_counter() - rendered):.2f}",
            }
            self._send(200, FORMATS[request.format], body, timings | {"Cache-Control": "no-store"})

        def _send(self, code: int, kind: str, body: bytes, headers: dict | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not self.head_only:
                self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # quiet: one line per frame would flood
            pass

    return Handler


def make_server(
    G: Generator3D,
    render: RenderConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    styles: Styles | None = None,
    first_seed: int = 0,
    camera: tuple[float, float] = (K.YAW_MEAN, K.PITCH_MEAN),
    sample_command: str | None = None,
) -> ThreadingHTTPServer:
    """A server (not yet serving; call `serve_forever`) of the viewer page and frames of `G`.

    `styles` ([1, D] per layer, e.g. from `cips3d invert`) replace the seeds: the seed box then has
    no effect. `camera` (yaw, pitch) is where the page starts (a fitted photo's own camera).
    `sample_command` (`cips3d sample` with the model and render options) is shown under the frame with
    the view's seed, camera, psi and size added. `port` 0 picks a free port (`server.server_address`
    tells which).
    """
    source = FrameSource(G, render, styles)
    info = {
        "size": render.img_size, "device": str(G.device), "first_seed": first_seed,
        "fixed_styles": styles is not None, "yaw": camera[0], "pitch": camera[1],
        "sample_command": sample_command,
    }  # fmt: skip
    return http_server(make_handler(source, info), host, port, source.lock)


class ViewerServer(ThreadingHTTPServer):
    """The viewers' HTTP server: request threads do not keep Python alive, and a browser that closes
    the connection before its frame arrives (a closed tab, a superseded fetch) is not an error.

    Closing it waits for the frame being rendered and lets no other start (`render_gate`, the frame
    source's `RenderGate`, is closed): a request thread still inside PyTorch when Python exits aborted
    the process (SIGABRT, "terminate called without an active exception") on Ctrl-C under load."""

    daemon_threads = True

    def __init__(self, address, handler, render_gate: RenderGate | None = None) -> None:
        self.render_gate = render_gate  # first: a failed bind closes the server inside __init__
        host, port = address
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # a URL's [::1]
        if ":" in host:  # an IPv6 address: http.server listens on IPv4 only ("address family not supported")
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)

    def url(self) -> str:
        """The address to open in a browser: a listener on every interface (0.0.0.0, ::) is reached here
        through the loopback address (http://0.0.0.0:PORT was printed)."""
        host, port = self.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def server_close(self) -> None:
        super().server_close()
        if self.render_gate is not None and not self.render_gate.closed:
            self.render_gate.close()

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset, ...
            return
        super().handle_error(request, client_address)


def http_server(
    handler: type[BaseHTTPRequestHandler], host: str, port: int, render_gate: RenderGate | None = None
) -> ThreadingHTTPServer:
    """A `ViewerServer` of `handler` on (host, port); `render_gate` is its frame source's gate."""
    return ViewerServer((host, port), handler, render_gate)


def serve_in_thread(server: ThreadingHTTPServer) -> Callable[[], None]:
    """Serve on a background thread; returns the function that stops it (tests, notebooks)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


SAVE_SCRIPT = """
function download(q, middle) {  // the view of query q as a lossless PNG, in a file named after its settings
  const panel = q.get('panel') && q.get('panel') !== 'image' ? '_' + q.get('panel') : '';
  const name = `seed${q.get('seed').padStart(4, '0')}_${middle}_psi${(+q.get('psi')).toFixed(2)}${panel}.png`;
  fetch('/frame?' + q).then(async r => {
    if (!r.ok) { status.textContent = await r.text(); return; }
    const a = document.createElement('a');
    a.href = URL.createObjectURL(await r.blob()); a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    status.textContent = 'saved ' + name;
  }).catch(e => { status.textContent = 'server unreachable: ' + e; });
}
"""
"""Both viewers' "save png" button: the page's `status` line says what was saved or what went wrong."""

PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cips3d viewer</title>
<style>
 body { font-family: system-ui, sans-serif; background: #111; color: #ddd; margin: 0; padding: 16px; }
 #frame { width: 512px; height: 512px; image-rendering: auto; cursor: grab; background: #000;
          border-radius: 6px; touch-action: none; }
 .row { margin: 8px 0; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
 input[type=number] { width: 90px; } #status { color: #999; font-size: 13px; }
</style></head>
<body>
<h3>cips3d viewer</h3>
<img id="frame" alt="frame" draggable="false">
<div class="row">
 <label>seed <input id="seed" type="number" min="0" value="0"></label>
 <button id="prev">&larr;</button><button id="next">&rarr;</button>
 <label>panel <select id="panel">
  <option>image</option><option>aux</option><option>depth</option><option>normals</option></select></label>
 <label>psi <input id="psi" type="range" min="0" max="1" step="0.05" value="1"></label>
 <label><input id="spin" type="checkbox"> turn</label>
 <button id="reset">front</button>
 <button id="save" title="download this view as a lossless PNG">save png</button>
</div>
<div class="row"><span id="status"></span></div>
<div class="row"><code id="command" title="this view, rendered again (any --size)"></code></div>
<script>"""
    + SAVE_SCRIPT
    + """
const img = document.getElementById('frame'), status = document.getElementById('status');
const el = id => document.getElementById(id);
let yaw = Math.PI / 2, pitch = Math.PI / 2, busy = false, dirty = true, t0 = 0, dragging = null;
let command = null, size = 0;
const rounded = a => Math.round(a * 1e4) / 1e4;  // 4 decimals: the command shown renders this exact view
fetch('/info').then(r => r.json()).then(info => {
  el('seed').value = info.first_seed; yaw = info.yaw; pitch = info.pitch;
  command = info.sample_command; size = info.size;
  if (info.fixed_styles) { el('seed').disabled = el('prev').disabled = el('next').disabled = true; }
  status.textContent = `${info.size} px on ${info.device}`; dirty = true;
});
function query(extra) {
  return new URLSearchParams({seed: el('seed').value || 0, yaw, pitch, panel: el('panel').value,
                              psi: el('psi').value, ...extra});
}
function request() {
  if (busy || !dirty) return;
  busy = true; dirty = false; t0 = performance.now();
  const q = query({});  // what this frame is rendered with, for the command shown beside it
  fetch('/frame?' + q).then(async r => {
    if (!r.ok) { status.textContent = await r.text(); return; }
    const ms = r.headers.get('X-Render-Ms'), blob = await r.blob();
    const old = img.src; img.src = URL.createObjectURL(blob); if (old) URL.revokeObjectURL(old);
    status.textContent = `yaw ${yaw.toFixed(2)}  pitch ${pitch.toFixed(2)}  render ${ms} ms  ` +
      `round trip ${(performance.now() - t0).toFixed(0)} ms`;
    if (command) {
      el('command').textContent = `${command} --seeds ${q.get('seed')} --yaw ${q.get('yaw')} ` +
        `--pitch ${q.get('pitch')} --psi ${q.get('psi')} --deterministic --size ${size}` +
        ({aux: ' --aux', depth: ' --depth', normals: ' --normals'}[q.get('panel')] || '');  // those files too
    }
  }).catch(e => { status.textContent = 'server unreachable: ' + e; })
    .finally(() => { busy = false; });
}
function changed() { dirty = true; }
img.addEventListener('pointerdown', e => {
  dragging = [e.clientX, e.clientY]; img.setPointerCapture(e.pointerId);
});
img.addEventListener('pointerup', () => { dragging = null; });
img.addEventListener('pointermove', e => {
  if (!dragging) return;
  yaw = rounded(yaw - (e.clientX - dragging[0]) * 0.005);
  pitch = rounded(Math.min(Math.PI - 0.01, Math.max(0.01, pitch - (e.clientY - dragging[1]) * 0.005)));
  dragging = [e.clientX, e.clientY]; changed();
});
for (const id of ['seed', 'panel', 'psi']) el(id).addEventListener('input', changed);
el('prev').onclick = () => { el('seed').value = Math.max(0, +el('seed').value - 1); changed(); };
el('next').onclick = () => { el('seed').value = +el('seed').value + 1; changed(); };
el('reset').onclick = () => { yaw = rounded(Math.PI / 2); pitch = rounded(Math.PI / 2); changed(); };
const TURN = {ArrowLeft: [0.05, 0], ArrowRight: [-0.05, 0], ArrowUp: [0, 0.05], ArrowDown: [0, -0.05]};
document.addEventListener('keydown', e => {  // the arrow keys turn as a 10-pixel drag does
  if (!(e.key in TURN) || ['INPUT', 'SELECT'].includes(e.target.tagName)) return;
  e.preventDefault();
  yaw = rounded(yaw + TURN[e.key][0]);
  pitch = rounded(Math.min(Math.PI - 0.01, Math.max(0.01, pitch + TURN[e.key][1]))); changed();
});
el('save').onclick = () => download(query({format: 'png'}), `yaw${yaw.toFixed(3)}_pitch${pitch.toFixed(3)}`);
let phase = 0;
(function tick() {
  if (el('spin').checked) { phase += 0.03; yaw = rounded(Math.PI / 2 + 0.5 * Math.sin(phase)); changed(); }
  request(); requestAnimationFrame(tick);
})();
</script>
</body></html>
"""
)
