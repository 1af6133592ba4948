"""Checks that need a CUDA GPU: kept out of the default run (`-m cuda` selects them; CI has no GPU).

Selected without a GPU they fail, never skip. A GPU session runs them with `benchmarks/gpu_session.sh`.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from cips3d import Camera, Generator3D, RenderConfig, generator_preset
from cips3d.fast import cuda_matmuls_use_tf32, ieee_convolutions
from cips3d.inference.interactive import InteractiveRenderer
from cips3d.models.discriminator import Discriminator, discriminator_preset
from cips3d.reference import reference_images
from cips3d.rendering.volume import resolve_chunk_rows
from cips3d.training.losses import r1_penalty
from cips3d.training.trainer import Trainer, TrainOptions

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cuda() -> torch.device:
    assert torch.cuda.is_available(), "these checks need a CUDA GPU (run them with -m cuda on one)"
    return torch.device("cuda")


@pytest.fixture(scope="module")
def ffhq(cuda) -> Generator3D:
    return Generator3D(generator_preset("ffhq")).to(cuda).eval()


def _cameras(batch: int) -> list[Camera]:
    yaw = math.pi / 2 + torch.linspace(-0.3, 0.3, batch)
    return [Camera.from_angles(yaw + d, math.pi / 2 - d) for d in (0.0, 0.1, -0.2)]


def _styles(G: Generator3D, batch: int = 2):
    return G.mapping(*G.sample_latents(batch, torch.Generator().manual_seed(0)))


def test_float32_on_the_gpu_equals_the_cpu(ffhq):
    """IEEE float32 on the GPU (TF32 off by default) renders what the CPU renders."""
    styles, camera = _styles(ffhq), _cameras(2)[1]
    render = RenderConfig(img_size=32, deterministic=True)
    with torch.no_grad():
        gpu = ffhq.synthesis(styles, camera, render).img.cpu()
    cpu_G = Generator3D(generator_preset("ffhq")).eval()  # the same seed-0 weights
    with torch.no_grad():
        cpu = cpu_G.synthesis({k: v.cpu() for k, v in styles.items()}, camera, render).img
    assert (gpu - cpu).abs().max() < 1e-4


def test_the_fast_path_equals_the_reference_path_on_the_gpu(ffhq):
    styles, camera = _styles(ffhq), _cameras(2)[0]
    render = RenderConfig(img_size=48, deterministic=True, chunk_rows=65536)
    with torch.no_grad():
        fast = ffhq.synthesis(styles, camera, render).img
    assert (fast - reference_images(ffhq, styles, camera, render)).abs().max() < 1e-4


def test_auto_chunks_are_large_on_the_gpu_and_render_what_small_ones_do(ffhq, cuda):
    assert resolve_chunk_rows("auto", cuda) >= 16384  # any GPU with 4 GB free
    styles, camera = _styles(ffhq), _cameras(2)[1]
    render = RenderConfig(img_size=128, deterministic=True)
    with torch.no_grad():
        auto = ffhq.synthesis(styles, camera, render).img
        small = ffhq.synthesis(styles, camera, dataclasses.replace(render, chunk_rows=4096)).img
    assert (auto - small).abs().max() < 1e-4


def test_graph_replay_equals_eager_frames_for_a_moving_camera(ffhq):
    """float32 replays match eager frames to rounding; the fast setting within a bf16 rounding (cuBLAS
    may pick other kernels while capturing)."""
    styles = _styles(ffhq)
    for options, tolerance in (({}, 1e-4), ({"precision": "bf16", "field_precision": "tf32"}, 3e-2)):
        render = RenderConfig(img_size=64, deterministic=True, chunk_rows=65536, **options)
        graphed = InteractiveRenderer(ffhq, styles, render, cuda_graph=True)
        eager = InteractiveRenderer(ffhq, styles, render, cuda_graph=False)
        for camera in _cameras(2):
            a, b = graphed.render(camera), eager.render(camera)
            assert (a.img - b.img).abs().max() < tolerance and (a.depth - b.depth).abs().max() < tolerance
            assert torch.equal(a.pitch_yaw, b.pitch_yaw)
        assert graphed.uses_graph and not eager.uses_graph


def test_tf32_and_bf16_change_the_arithmetic_within_their_tolerance(ffhq):
    styles, camera = _styles(ffhq), _cameras(2)[2]
    exact = RenderConfig(img_size=64, deterministic=True)
    with torch.no_grad():
        reference = ffhq.synthesis(styles, camera, exact)
        for options, tolerance in (({"field_precision": "tf32"}, 2e-2), ({"precision": "tf32"}, 1e-3),
                                   ({"precision": "bf16", "field_precision": "tf32"}, 3e-2)):  # fmt: skip
            out = ffhq.synthesis(styles, camera, RenderConfig(**{**vars(exact), **options}))
            error = (out.img - reference.img).abs().max()
            assert 0 < error < tolerance, (options, float(error))  # > 0: the reduced arithmetic ran
    assert not cuda_matmuls_use_tf32()  # restored after each block


def test_the_fused_field_kernel_renders_what_the_pytorch_field_does(ffhq):
    """field_kernel='triton' (compiled for this GPU) against the layer-by-layer field: with IEEE
    products equal to rounding; with TF32 products no further from the IEEE render than the PyTorch
    field's TF32 render is (the two round differently, so they are compared through the exact one);
    and inside a captured CUDA graph."""
    styles, camera = _styles(ffhq), _cameras(2)[1]

    def render(**options):
        with torch.no_grad():
            out = ffhq.synthesis(styles, camera, RenderConfig(img_size=64, deterministic=True, **options))
        return torch.cat([out.img.flatten(), out.aux_img.flatten()])

    exact = render()
    assert (render(field_kernel="triton") - exact).abs().max() < 1e-4
    layered_tf32 = (render(field_precision="tf32") - exact).abs().max()
    fused_tf32 = (render(field_precision="tf32", field_kernel="triton") - exact).abs().max()
    assert 0 < fused_tf32 < 2 * layered_tf32 + 1e-4, (float(fused_tf32), float(layered_tf32))
    render = RenderConfig(img_size=64, deterministic=True, chunk_rows=65536, field_kernel="triton")
    graphed = InteractiveRenderer(ffhq, styles, render, cuda_graph=True)
    eager = InteractiveRenderer(ffhq, styles, render, cuda_graph=False)
    for camera in _cameras(2):
        assert (graphed.render(camera).img - eager.render(camera).img).abs().max() < 1e-4
    assert graphed.uses_graph


def test_the_fused_inr_kernel_renders_what_the_pytorch_decoder_does(ffhq):
    """inr_kernel='triton' against cuBLAS products with separate activations: with IEEE float32
    products equal to rounding; in bfloat16 no further from the float32 render than PyTorch's bfloat16
    path is (it rounds once per layer, PyTorch three times); and inside a captured CUDA graph."""
    styles, camera = _styles(ffhq), _cameras(2)[1]

    def render(**options):
        with torch.no_grad():
            out = ffhq.synthesis(styles, camera, RenderConfig(img_size=64, deterministic=True, **options))
        return out.img

    exact = render()
    assert (render(inr_kernel="triton") - exact).abs().max() < 1e-4
    layered_bf16 = (render(precision="bf16") - exact).abs().max()
    fused_bf16 = (render(precision="bf16", inr_kernel="triton") - exact).abs().max()
    assert 0 < fused_bf16 < 2 * layered_bf16 + 1e-4, (float(fused_bf16), float(layered_bf16))
    options = dict(precision="bf16", inr_kernel="triton")
    render = RenderConfig(img_size=64, deterministic=True, chunk_rows=65536, **options)
    graphed = InteractiveRenderer(ffhq, styles, render, cuda_graph=True)
    eager = InteractiveRenderer(ffhq, styles, render, cuda_graph=False)
    for camera in _cameras(2):
        assert (graphed.render(camera).img - eager.render(camera).img).abs().max() < 1e-3
    assert graphed.uses_graph


def test_two_training_processes_on_the_gpu_stay_in_step(cuda, tmp_path):
    """Data-parallel training with CUDA tensors (two ranks on one GPU, over gloo: NCCL refuses two
    ranks per device): the ranks' weights agree exactly and stay close to one process's run."""
    from tests.training import ddp_workers  # noqa: PLC0415
    from tests.training.conftest import micro_config  # noqa: PLC0415
    from tests.training.test_distributed import STAGE, identical_images  # noqa: PLC0415

    data = tmp_path / "same"
    identical_images(data)
    config = micro_config(STAGE, xflip=False, snapshot_every=2, preview_every=2)
    out = tmp_path / "out"
    out.mkdir()
    ddp_workers.spawn(ddp_workers.train_body, 2, config, tmp_path / "pair", data, 4, out, True, "cuda")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = Trainer(config, tmp_path / "single", data, TrainOptions(device=cuda, progress=False))
    start = {name: _float_state(getattr(single, name)) for name in ("G", "G_ema", "D")}
    single.run()
    for name in ("G", "G_ema", "D"):
        assert all(torch.equal(ranks[0][name][k], ranks[1][name][k]) for k in ranks[0][name]), name
        mine = _float_state(getattr(single, name))
        # GPU kernels need not repeat bit for bit, and Adam's first steps (nearly lr x the gradient's
        # sign) turn rounding in near-zero gradients into whole steps: so the two runs' weights are
        # compared in norm, against how far training moved them.
        moved = _norm({k: mine[k] - start[name][k] for k in mine})
        apart = _norm({k: ranks[0][name][k].double() - mine[k] for k in mine})
        assert 0 < apart < 0.3 * moved, (name, apart, moved)
    assert ranks[0]["state"] == {"global_step": 4, "images_seen": 16}


def _float_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().double() for k, v in module.state_dict().items() if v.is_floating_point()}


def _norm(tensors: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.square().sum()) for t in tensors.values()))


def test_r1_and_its_parameter_gradients_on_the_gpu_equal_the_cpu(cuda):
    """The discriminator's R1 step (second derivatives through the adjoint blur) on the GPU, in IEEE
    float32 convolutions, against the CPU."""
    D_cpu = Discriminator(discriminator_preset("ffhq"), torch.Generator().manual_seed(0))
    D_gpu = Discriminator(discriminator_preset("ffhq"), torch.Generator().manual_seed(0)).to(cuda)
    reals = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def r1_and_grads(D, device):
        x = reals.to(device, copy=True).requires_grad_()  # two leaves (`.to` alone returns `reals`
        x_aux = reals.to(device, copy=True).requires_grad_()  # itself on the CPU: one leaf, twice)
        penalty = r1_penalty(D(x, x_aux, alpha=0.5), [x, x_aux], gamma=10.0).sum()
        penalty.backward()
        return penalty.cpu(), {n: p.grad.cpu() for n, p in D.named_parameters() if p.grad is not None}

    with ieee_convolutions():  # PyTorch's cuDNN default is TF32
        gpu_penalty, gpu_grads = r1_and_grads(D_gpu, cuda)
    cpu_penalty, cpu_grads = r1_and_grads(D_cpu, torch.device("cpu"))
    assert torch.allclose(gpu_penalty, cpu_penalty, rtol=1e-4)
    assert gpu_grads.keys() == cpu_grads.keys() and len(cpu_grads) > 10
    # Float32 second derivatives summed in another order: near-zero gradients of the deepest blocks
    # (1e-7) keep a few 1e-3 of relative error, so each tensor is held to 1e-2 and all of them together,
    # in norm, to 1e-3 (3.3e-4 measured on an H100).
    for name, grad in cpu_grads.items():
        scale = grad.abs().max().clamp_min(1e-12)
        assert (gpu_grads[name] - grad).abs().max() / scale < 1e-2, name
    apart = math.sqrt(sum(float((gpu_grads[n] - g).double().square().sum()) for n, g in cpu_grads.items()))
    size = math.sqrt(sum(float(g.double().square().sum()) for g in cpu_grads.values()))
    assert apart < 1e-3 * size, (apart, size)
