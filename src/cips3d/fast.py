"""Choosing the fastest correct matrix-product route at start-up (opt-in; CLI commands call it).

On CPUs, PyTorch can send float32 products through MKL (its default) or through oneDNN
(`torch.backends.mkldnn.matmul.fp32_precision`); on some CPUs oneDNN is about twice as fast, on others
(no AVX-512) they are the same. The same switch means bfloat16 arithmetic on CPUs with AMX, so each
candidate route is checked against a float64 product before it is kept: only a route that still
computes in float32 (relative error below 1e-5) can win. On CUDA nothing changes: float32 stays IEEE
(no TF32) unless a caller opts into reduced precision for one part of the model (`tf32_matmuls`, used by
`RenderConfig(precision='tf32' or 'bf16', field_precision='tf32')`).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator

import torch

from cips3d.errors import UserError, first_line

MAX_RELATIVE_ERROR = 1e-5  # float32 GEMM of this size errs ~1e-6 relative; bf16 would be ~1e-2
_SHAPE = (2048, 512, 512)  # a chunk of INR rows times one 512 x 512 modulated layer


def _route_setting() -> str | None:
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    return getattr(matmul, "fp32_precision", None) if matmul is not None else None


def _set_route(value: str) -> None:
    torch.backends.mkldnn.matmul.fp32_precision = value


def _operands() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    m, k, n = _SHAPE
    return torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator) / k**0.5


def _error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest error of the current route's product relative to the largest exact entry."""
    exact = a.double() @ b.double()
    return float(((a @ b).double() - exact).abs().max() / exact.abs().max())


def _seconds(a: torch.Tensor, b: torch.Tensor) -> float:
    start = time.perf_counter()
    a @ b
    return time.perf_counter() - start


class SlowPrecisionWarning(UserWarning):
    """bfloat16 asked for where it runs far slower than float32 (a CPU without bf16 matrix units)."""


def warn_if_bf16_slow(device: torch.device | str, precision: str) -> None:
    """One `SlowPrecisionWarning` when `precision` is bf16 and this device runs it slowly: the library's
    say of what the commands print (a 512 px frame took two minutes on such a CPU, without a word)."""
    if precision == "bf16" and not bf16_fast(device):
        warnings.warn("this device has no bfloat16 matrix units; bf16 renders much slower than float32 "
                      "here.", SlowPrecisionWarning, stacklevel=3)  # fmt: skip


def bf16_fast(device: torch.device | str) -> bool:
    """Whether bfloat16 matrix products run at hardware speed here (CPUs without bf16 units fall back
    to about 1 GFLOP/s, a hundred times slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@contextlib.contextmanager
def tf32_matmuls(enabled: bool, device: torch.device | str) -> Iterator[None]:
    """Within the block, float32 matrix products on a CUDA `device` use TF32 tensor cores (operands
    rounded to 10 mantissa bits, float32 accumulation); the previous setting is restored on exit.

    PyTorch's switch is process-wide, so it is set only for the block. Elsewhere (CPUs, or `enabled`
    False) nothing changes: there are no TF32 units, and products stay IEEE float32.
    """
    if not enabled or torch.device(device).type != "cuda":
        yield
        return
    with _switched(_matmul_switch(), tf32=True):
        yield


@contextlib.contextmanager
def ieee_convolutions() -> Iterator[None]:
    """Within the block, cuDNN's float32 convolutions compute in IEEE float32; the previous setting is
    restored on exit. PyTorch's default lets them use TF32 on GPUs that have it (unlike its matrix
    products), so a run's discriminator convolutions are TF32 unless asked otherwise. On a CPU the
    switch changes nothing."""
    with _switched(_convolution_switch(), tf32=False):
        yield


def cudnn_convolutions_use_tf32() -> bool:
    """Whether cuDNN's float32 convolutions may use TF32 now (whichever switch this PyTorch has)."""
    return _uses_tf32(_convolution_switch())


def cuda_matmuls_use_tf32() -> bool:
    """Whether float32 CUDA matrix products use TF32 now, read from whichever switch this PyTorch has."""
    return _uses_tf32(_matmul_switch())


# A TF32 switch: (object, attribute, its TF32 value, its IEEE value). PyTorch 2.9 added a per-backend
# `fp32_precision`; before it only `allow_tf32` exists. Mixing the two is an error in 2.9 and later, so
# only one of them is ever used.
_Switch = tuple[object, str, object, object]


def _switch(per_backend: object | None, legacy: object) -> _Switch:
    if per_backend is not None and _has_fp32_precision(per_backend):
        return per_backend, "fp32_precision", "tf32", "ieee"
    return legacy, "allow_tf32", True, False


def _matmul_switch() -> _Switch:
    matmul = torch.backends.cuda.matmul
    return _switch(matmul, matmul)


def _convolution_switch() -> _Switch:
    cudnn = torch.backends.cudnn
    return _switch(getattr(cudnn, "conv", None), cudnn)


@contextlib.contextmanager
def _switched(switch: _Switch, tf32: bool) -> Iterator[None]:
    """The switch set to TF32 (or IEEE) for the block, its previous value restored after it: PyTorch's
    switches are process-wide."""
    owner, attribute, on, off = switch
    previous = getattr(owner, attribute)
    setattr(owner, attribute, on if tf32 else off)
    try:
        yield
    finally:
        setattr(owner, attribute, previous)


def _uses_tf32(switch: _Switch) -> bool:
    owner, attribute, on, _ = switch
    return getattr(owner, attribute) == on


def _has_fp32_precision(backend) -> bool:
    """Whether this PyTorch has the per-backend precision switch on `backend`."""
    try:
        backend.fp32_precision  # noqa: B018 - probing the attribute
    except AttributeError:
        return False
    return True


ROUTE_NAMES = {"none": "default (MKL)", "bf16": "oneDNN"}
"""The CPU float32 product routes by their PyTorch setting, as records and messages name them."""


def matmul_route() -> str | None:
    """The CPU float32 product route in use, by name (None with a PyTorch without the switch). The
    routes round differently: a training run resumed on the other one goes on, but not bit for bit."""
    setting = _route_setting()
    return ROUTE_NAMES.get(setting, setting) if setting is not None else None


def use_matmul_route(name: str) -> bool:
    """Switch to the route `name` (`matmul_route`'s words) when this PyTorch has it and it passes the
    float64 self-test here; whether it could. A resumed run takes the route it was trained on: the
    start-up timing picks either when they are close (or when another process loads the CPU)."""
    settings = {v: k for k, v in ROUTE_NAMES.items()}
    if _route_setting() is None or name not in settings:
        return False
    previous = _route_setting()
    _set_route(settings[name])
    if _error(*_operands()) < MAX_RELATIVE_ERROR:
        return True
    _set_route(previous)
    return False


def configure_fast_paths(device: torch.device | str = "cpu") -> dict:
    """Pick the fastest float32 matmul route that passes the float64 self-test; returns what was chosen
    and measured (for logs and benchmark records)."""
    device = torch.device(device)
    if device.type != "cpu":
        return {"device": device.type, "matmul_route": "default (IEEE float32)"}
    original = _route_setting()
    if original is None:  # an older PyTorch without the switch
        return {"device": "cpu", "matmul_route": "default", "note": "no oneDNN matmul switch"}
    a, b = _operands()
    routes = ("none", "bf16")  # 'none' = PyTorch's default (MKL); 'bf16' = oneDNN's GEMM
    errors, times = {}, {r: [] for r in routes}
    for route in routes:
        _set_route(route)
        errors[route] = _error(a, b)  # also warms the route's kernels
    for _ in range(7):  # interleaved, best of 7: robust to another process taking a core for a moment
        for route in routes:
            _set_route(route)
            times[route].append(_seconds(a, b))
    results = {r: (errors[r], min(times[r])) for r in routes}
    usable = {r: t for r, (err, t) in results.items() if err < MAX_RELATIVE_ERROR}
    best = "none"
    if "bf16" in usable and usable["bf16"] < 0.8 * usable.get("none", float("inf")):
        best = "bf16"  # oneDNN only when it is clearly faster and still float32
    _set_route(best)
    return {
        "device": "cpu",
        "matmul_route": "oneDNN" if best == "bf16" else "default (MKL)",
        "self_test": {r: {"relative_error": e, "seconds": round(t, 5)} for r, (e, t) in results.items()},
    }


def compile_generator(G) -> None:
    """Compile the per-point NeRF field and the per-pixel INR decoder with `torch.compile` (in place).

    Opt-in: the first render pays the compilation (about half a minute on a 2-core CPU); later renders
    are faster (about 10-20% on that CPU, more where elementwise fusion matters). Results agree with the
    eager model to float32 rounding. If compiling fails (no C++ compiler, a corrupt compile cache under
    /tmp/torchinductor_*), a warning says why and the module runs eagerly from then on.
    """
    for module in (G.field, G.decoder):
        module.forward = _eager_on_failure(module, torch.compile(module.forward))


@contextlib.contextmanager
def uncompiled() -> Iterator[None]:
    """A block in which functions compiled with `torch.compile` run eagerly and compile nothing (for
    renders of shapes that are not rendered again, where compiling costs more than it saves). PyTorch
    before 2.6 has no such switch; there the block changes nothing."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    if set_stance is None:
        yield
        return
    with set_stance("force_eager"):
        yield


def _eager_on_failure(module: torch.nn.Module, compiled):
    eager = module.forward

    def forward(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except (UserError, torch.OutOfMemoryError):  # the input's or the memory's fault, not the compiler's
            raise
        except Exception as error:  # noqa: BLE001 - any compiler failure; a real error recurs eagerly
            warnings.warn(
                f"torch.compile failed for {type(module).__name__} ({first_line(error, 200)}); "
                "running it eagerly.",
                stacklevel=2,
            )
            module.forward = eager
            return eager(*args, **kwargs)

    return forward
