"""Interactive rendering: one set of latents, a new camera every frame, each frame as fast as it can be.

    viewer = InteractiveRenderer(G, G.mapping(z_nerf, z_inr), RenderConfig(img_size=512,
                                 deterministic=True, precision="bf16", field_precision="tf32"))
    for camera in cameras:
        frame = viewer.render(camera).img          # [B, 3, H, W]

The styles are folded into the field's and the INR's weights once, when the viewer is made, not once per
frame. On a CUDA GPU the whole frame (rays, field, compositing, INR) is captured once as a CUDA graph and
replayed for every later camera: a 512 px frame is thousands of small kernel launches, and a replay
issues them without the CPU's per-launch cost. The first two replays are checked against eagerly
rendered frames. Elsewhere, or if capturing fails or a check does, frames render eagerly (with a warning).
Sampling must be deterministic: a graph would replay the same random draws every frame.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping

import torch

from cips3d.config import RenderConfig
from cips3d.errors import ConfigError, first_line
from cips3d.fast import warn_if_bf16_slow
from cips3d.models.generator3d import Generator3D
from cips3d.outputs import GeneratorOutput
from cips3d.rendering.cameras import Camera
from cips3d.rendering.volume import resolve_chunk_rows
from cips3d.words import counted

# Replays checked against eager frames before a graph is trusted: the first (the captured camera) and
# the second (a new camera through the static buffers).
CHECKED_FRAMES = 2
F32_TOLERANCE = 1e-4  # float32: the same kernels, up to a different cuBLAS choice while capturing
REDUCED_TOLERANCE = 3e-2  # bf16/TF32: a different kernel may round differently


class InteractiveRenderer:
    """Render frames of fixed styles from any cameras (see the module docstring).

    Args:
        G: the generator (its device is used).
        styles: {layer: [B, D]} styles, e.g. `G.truncate(G.mapping(z_nerf, z_inr), psi)`.
        render: image size, sampling and precision; `deterministic` must be True.
        cuda_graph: capture and replay a CUDA graph on CUDA devices (ignored elsewhere).
    """

    def __init__(
        self,
        G: Generator3D,
        styles: Mapping[str, torch.Tensor],
        render: RenderConfig | None = None,
        cuda_graph: bool = True,
    ) -> None:
        render = render or RenderConfig(img_size=256, deterministic=True)
        if not render.deterministic:
            raise ConfigError("interactive rendering needs RenderConfig(deterministic=True): frames must not "
                              "depend on random draws.")  # fmt: skip
        # Chunking fixed once ('auto' looks at free memory, which the first frames change; a captured
        # graph must not query the device either).
        render = dataclasses.replace(render, chunk_rows=resolve_chunk_rows(render.chunk_rows, G.device))
        self.G, self.render_config = G, render
        warn_if_bf16_slow(G.device, render.precision)
        G.check_styles(styles, None, same_dtype=False)
        self.styles = {name: s.to(G.device, G.dtype) for name, s in styles.items()}
        self.batch = next(iter(self.styles.values())).shape[0]
        with torch.no_grad():
            self.modulation = G.modulate(self.styles, render)
        self.wants_graph = cuda_graph and G.device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self._static_camera: Camera | None = None
        self._static_out: GeneratorOutput | None = None
        self._checks_left = 0
        exact = render.precision == "float32" and render.field_precision == "float32"
        self._tolerance = F32_TOLERANCE if exact else REDUCED_TOLERANCE

    @property
    def uses_graph(self) -> bool:
        """Whether frames are replayed from a captured CUDA graph."""
        return self.graph is not None

    @torch.no_grad()
    def render(self, camera: Camera) -> GeneratorOutput:
        """One frame for `camera` (B cameras for B styles).

        With a CUDA graph, the returned tensors are the graph's output buffers: the next frame
        overwrites them, so clone what you keep.
        """
        if not isinstance(camera, Camera):
            raise ConfigError(f"render takes a Camera, got {type(camera).__name__}.")
        if camera.batch != self.batch:
            raise ConfigError(f"got {counted(camera.batch, 'camera')} for styles of batch {self.batch}.")
        camera = _complete(camera.to(self.G.device, self.G.dtype))
        if self.wants_graph and self.graph is None:
            self._capture(camera)
        if self.graph is None:
            return self._frame(camera)
        _copy_camera(self._static_camera, camera)
        self.graph.replay()
        if self._checks_left:
            return self._checked(camera)
        return self._static_out

    def _frame(self, camera: Camera) -> GeneratorOutput:
        return self.G.synthesis(self.styles, camera, self.render_config, modulation=self.modulation)

    def _capture(self, camera: Camera) -> None:
        """Record one frame as a CUDA graph reading its camera from static buffers; on failure, warn
        once and render eagerly from then on."""
        self.wants_graph = False  # one attempt
        static = Camera(*(t.clone() for t in _camera_tensors(camera)))  # `camera` is complete already
        try:
            graph, out = record_cuda_graph(lambda: self._frame(static), self.G.device)
        except Exception as error:  # noqa: BLE001 - any capture failure leaves the eager path working
            self._fall_back(f"CUDA graph capture failed ({first_line(error, 200)})")
            return
        self.graph, self._static_camera, self._static_out = graph, static, out
        self._checks_left = CHECKED_FRAMES

    def _checked(self, camera: Camera) -> GeneratorOutput:
        """Compare a replayed frame with the same frame rendered eagerly; keep the graph only if they
        agree (a graph that recorded something wrong must never give silent garbage)."""
        self._checks_left -= 1
        eager = self._frame(camera)
        error = max(float((self._static_out.img - eager.img).abs().max()),
                    float((self._static_out.depth - eager.depth).abs().max()))  # fmt: skip
        if not error <= self._tolerance:  # NaN fails too
            self._fall_back(f"a CUDA graph replay differed from the eager frame by {error:.3g}")
            return eager
        return self._static_out

    def _fall_back(self, reason: str) -> None:
        warnings.warn(f"{reason}; rendering frames eagerly.", stacklevel=4)
        self.graph = None


def record_cuda_graph(frame: Callable[[], GeneratorOutput], device: torch.device):
    """(graph, outputs): `frame` run twice on a side stream (library handles, workspaces, any
    compilation), then captured; `graph.replay()` recomputes the outputs in place."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(2):
            frame()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = frame()
    return graph, out


def _camera_tensors(camera: Camera) -> tuple[torch.Tensor, ...]:
    """(origin, forward, up, yaw, pitch) of a camera completed by `_complete`."""
    return camera.origin, camera.forward, camera.up, camera.yaw, camera.pitch


def _complete(camera: Camera) -> Camera:
    """The same camera with every field a [B, ...] tensor (world +y up, zero angles where absent), so
    a graph can read each from a fixed buffer. The angles only label the output (`pitch_yaw`)."""
    b, like = camera.batch, camera.origin
    up = camera.up if camera.up is not None else like.new_tensor([0.0, 1.0, 0.0])
    zeros = like.new_zeros(b)
    return Camera(
        camera.origin,
        camera.forward,
        up.to(like).expand(b, 3),
        camera.yaw.to(like) if camera.yaw is not None else zeros,
        camera.pitch.to(like) if camera.pitch is not None else zeros,
    )


def _copy_camera(static: Camera, camera: Camera) -> None:
    for buffer, value in zip(_camera_tensors(static), _camera_tensors(camera), strict=True):
        buffer.copy_(value)
