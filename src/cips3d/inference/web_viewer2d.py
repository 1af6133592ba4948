"""The browser viewer of a 2D CIPS model: drag to move over the image, scroll to zoom in.

Every pixel is computed from its own coordinates, so the window can go anywhere: zooming in renders
new pixels between the old ones (not an upscaled picture), moving past the training frame
extrapolates, and a panorama model (cylinder coordinates) goes round and round. `cips3d view` serves
this page when its checkpoint is a 2D model; the routes are the 3-D viewer's (`web_viewer`):

    GET /                                             the page
    GET /frame?seed=S&x=X&y=Y&zoom=Z&psi=F&format=jpeg|png   the window centred on (x, y), psi truncation
    GET /info                                         JSON: frame size, device, panorama or not, ...

At zoom 1 and (0, 0) the window is the training frame, rendered at the viewer's height.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import numpy as np
import torch

from cips3d.errors import ConfigError
from cips3d.inference.web_viewer import (
    SAVE_SCRIPT,
    BadRequest,
    RenderGate,
    check_psi,
    check_query_seed,
    http_server,
    image_format,
    make_handler,
    query_number,
    query_values,
    remember,
)
from cips3d.io.images import to_uint8
from cips3d.models.generator2d import MAX_ZOOM, Generator2D, check_window


@dataclass(frozen=True)
class WindowRequest:
    seed: int
    x: float = 0.0
    y: float = 0.0
    zoom: float = 1.0
    psi: float = 1.0
    format: str = "jpeg"

    @classmethod
    def parse(cls, query: str) -> WindowRequest:
        """?seed=&x=&y=&zoom=&psi=&format= -> a checked request (BadRequest says what is wrong)."""
        q = query_values(query, ("seed", "x", "y", "zoom", "psi", "format"))
        seed = query_number(q, "seed", 0, int)
        defaults = {"x": 0.0, "y": 0.0, "zoom": 1.0, "psi": 1.0}
        x, y, zoom, psi = (query_number(q, name, value) for name, value in defaults.items())
        check_query_seed(seed)
        try:
            check_window(x, y, zoom, "x and y", "zoom")
        except ConfigError as err:
            raise BadRequest(str(err)) from None
        check_psi(psi)
        return cls(seed, x, y, zoom, psi, image_format(q))


class WindowSource:
    """Renders windows of seeds for the server, one at a time (a lock: one model)."""

    def __init__(self, G: Generator2D, height: int, styles: torch.Tensor | None = None) -> None:
        self.G, self.height = G, height
        self.fixed_styles = styles  # a fitted photo's w (`cips3d invert2d`): the seed then plays no part
        self.styles: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.mean: torch.Tensor | None = None  # the truncation centre, computed at the first psi < 1
        self.lock = RenderGate()
        self.frames_served = 0

    def style(self, seed: int, psi: float = 1.0) -> torch.Tensor:
        """w [1, D] of `seed` (the same draw as `cips3d sample2d`), truncated by `psi`; the latest seeds'
        mapped styles are kept. With fixed styles, those (truncated by `psi`) whatever the seed."""
        if self.fixed_styles is not None:
            return self._truncated(self.fixed_styles, psi)

        def mapped() -> torch.Tensor:
            return self.G.mapping(self.G.sample_latents(1, torch.Generator().manual_seed(seed)))

        return self._truncated(remember(self.styles, seed, mapped), psi)

    def _truncated(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        if psi == 1:
            return w
        if self.mean is None:
            self.mean = self.G.mean_style()
        return self.G.truncate(w, psi, self.mean)

    @torch.no_grad()
    def frame(self, request: WindowRequest) -> np.ndarray:
        """uint8 [H, W, 3] of the request's window."""
        with self.lock:
            grid = self.G.window_grid(self.height, request.x, request.y, request.zoom)
            image = self.G.synthesis(self.style(request.seed, request.psi), grid)
            self.frames_served += 1
            return to_uint8(image.clamp(-1, 1))[0]  # inside the gate: no PyTorch work after a close


def make_server2d(
    G: Generator2D,
    height: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    first_seed: int = 0,
    styles: torch.Tensor | None = None,
    sample_command: str | None = None,
) -> ThreadingHTTPServer:
    """A server (not yet serving; call `serve_forever`) of the 2D viewer page and windows of `G`;
    `styles` (a fitted photo's w, `inversion2d.load_fitted_w`) replace the seeds. `sample_command`
    (`cips3d sample2d` with the model) is shown under the frame with the window's seed, centre, zoom,
    psi and height added."""
    source = WindowSource(G, height, styles)
    info = {
        "height": height, "width": G.frame_width(height), "device": str(G.device),
        "first_seed": first_seed, "panorama": G.config.panorama, "max_zoom": MAX_ZOOM,
        "fixed_styles": styles is not None, "sample_command": sample_command,
    }  # fmt: skip
    return http_server(make_handler(source, info, PAGE, WindowRequest.parse), host, port, source.lock)


PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cips3d 2D viewer</title>
<style>
 body { font-family: system-ui, sans-serif; background: #111; color: #ddd; margin: 0; padding: 16px; }
 #frame { max-width: 95vw; height: 512px; cursor: grab; background: #000; border-radius: 6px;
          touch-action: none; image-rendering: pixelated; }
 .row { margin: 8px 0; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
 input[type=number] { width: 90px; } #status { color: #999; font-size: 13px; }
</style></head>
<body>
<h3>cips3d 2D viewer</h3>
<img id="frame" alt="frame" draggable="false">
<div class="row">
 <label>seed <input id="seed" type="number" min="0" value="0"></label>
 <button id="prev">&larr;</button><button id="next">&rarr;</button>
 <button id="in">zoom in</button><button id="out">zoom out</button>
 <label>psi <input id="psi" type="range" min="0" max="1" step="0.05" value="1"></label>
 <label><input id="spin" type="checkbox"> move</label>
 <button id="reset">frame</button>
 <button id="save" title="download this window as a lossless PNG">save png</button>
</div>
<div class="row"><span id="status"></span></div>
<div class="row"><code id="command" title="this window, rendered again (any --size)"></code></div>
<script>"""
    + SAVE_SCRIPT
    + """
const img = document.getElementById('frame'), status = document.getElementById('status');
const el = id => document.getElementById(id);
let x = 0, y = 0, zoom = 1, maxZoom = 1024, busy = false, dirty = true, t0 = 0, dragging = null;
let command = null, height = 0;
// Short numbers for the command shown: x and y to 4 decimals more than the zoom's digits, zoom to 6 figures
const placed = v => Number(v.toFixed(4 + Math.max(0, Math.ceil(Math.log10(zoom)))));
function moveBy(dx, dy) { x = placed(x + dx); y = placed(y + dy); changed(); }
fetch('/info').then(r => r.json()).then(info => {
  el('seed').value = info.first_seed; maxZoom = info.max_zoom;
  command = info.sample_command; height = info.height;
  if (info.fixed_styles) { el('seed').disabled = el('prev').disabled = el('next').disabled = true; }
  img.style.height = Math.min(512, 4 * info.height) + 'px';
  status.textContent = `${info.height} x ${info.width} px on ${info.device}` +
    (info.panorama ? ' (panorama: drag round)' : ''); dirty = true;
});
function query(extra) {
  return new URLSearchParams({seed: el('seed').value || 0, x, y, zoom, psi: el('psi').value, ...extra});
}
function request() {
  if (busy || !dirty) return;
  busy = true; dirty = false; t0 = performance.now();
  const q = query({});  // what this frame is rendered with, for the command shown beside it
  fetch('/frame?' + q).then(async r => {
    if (!r.ok) { status.textContent = await r.text(); return; }
    const ms = r.headers.get('X-Render-Ms'), blob = await r.blob();
    const old = img.src; img.src = URL.createObjectURL(blob); if (old) URL.revokeObjectURL(old);
    status.textContent = `x ${x.toFixed(3)}  y ${y.toFixed(3)}  zoom ${zoom.toFixed(2)}  ` +
      `render ${ms} ms  round trip ${(performance.now() - t0).toFixed(0)} ms`;
    if (command) {  // --center=: an x below zero would read as a flag
      el('command').textContent = `${command} --seeds ${q.get('seed')} ` +
        `--center=${q.get('x')},${q.get('y')} --zoom ${q.get('zoom')} --psi ${q.get('psi')} --size ${height}`;
    }
  }).catch(e => { status.textContent = 'server unreachable: ' + e; })
    .finally(() => { busy = false; });
}
function changed() { dirty = true; }
function setZoom(z) { zoom = Number(Math.min(maxZoom, Math.max(1 / maxZoom, z)).toPrecision(6)); changed(); }
img.addEventListener('pointerdown', e => {
  dragging = [e.clientX, e.clientY]; img.setPointerCapture(e.pointerId);
});
img.addEventListener('pointerup', () => { dragging = null; });
img.addEventListener('pointermove', e => {
  if (!dragging) return;  // the window spans 2 / zoom in x and in y, over the image's shown size
  moveBy(-(e.clientX - dragging[0]) * 2 / zoom / img.clientWidth,
         -(e.clientY - dragging[1]) * 2 / zoom / img.clientHeight);
  dragging = [e.clientX, e.clientY];
});
img.addEventListener('wheel', e => { e.preventDefault(); setZoom(zoom * Math.exp(-e.deltaY * 0.002)); },
                     {passive: false});
for (const id of ['seed', 'psi']) el(id).addEventListener('input', changed);
el('prev').onclick = () => { el('seed').value = Math.max(0, +el('seed').value - 1); changed(); };
el('next').onclick = () => { el('seed').value = +el('seed').value + 1; changed(); };
el('in').onclick = () => setZoom(zoom * 1.5);
el('out').onclick = () => setZoom(zoom / 1.5);
el('reset').onclick = () => { x = 0; y = 0; zoom = 1; changed(); };
const MOVE = {ArrowLeft: [-0.1, 0], ArrowRight: [0.1, 0], ArrowUp: [0, -0.1], ArrowDown: [0, 0.1]};
document.addEventListener('keydown', e => {  // arrows move a tenth of the window, + and - zoom
  if (['INPUT', 'SELECT'].includes(e.target.tagName)) return;
  if (e.key in MOVE) moveBy(MOVE[e.key][0] * 2 / zoom, MOVE[e.key][1] * 2 / zoom);
  else if (e.key === '+' || e.key === '=') setZoom(zoom * 1.5);
  else if (e.key === '-') setZoom(zoom / 1.5);
  else return;
  e.preventDefault();
});
el('save').onclick = () =>
  download(query({format: 'png'}), `x${x.toFixed(3)}_y${y.toFixed(3)}_zoom${zoom.toFixed(2)}`);
(function tick() {
  if (el('spin').checked) moveBy(0.01 / zoom, 0);
  request(); requestAnimationFrame(tick);
})();
</script>
</body></html>
"""
)
