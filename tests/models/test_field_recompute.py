"""The NeRF field's CPU gradient over blocks with recomputed activations (`models.field_recompute`)."""

from __future__ import annotations

import pytest
import torch

from cips3d import constants as K
from cips3d.config import NerfFieldConfig
from cips3d.models.field_recompute import field_with_recompute
from cips3d.models.nerf_field import NerfField


def _field(layers: int, seed: int = 0) -> tuple[NerfField, dict[str, torch.Tensor]]:
    """A small float64 field (hidden 16, colour 8, feature 5) and styles for 3 images."""
    config = NerfFieldConfig(hidden_dim=16, hidden_layers=layers, feature_dim=5, style_dim=6)
    field = NerfField(config).double()
    g = torch.Generator().manual_seed(seed)
    field.reset_parameters(g)
    styles = {n: torch.randn(3, 6, generator=g, dtype=torch.float64) for n in field.style_names}
    return field, styles


def _gradients(field, styles, points, evaluate, upstream):
    """Outputs and the gradients of every parameter, style and the points, through `evaluate`."""
    leaves = [*field.parameters(), *styles.values(), points]
    feature, sigma = evaluate(points, field.modulate(styles))
    grads = torch.autograd.grad((feature, sigma), leaves, upstream, allow_unused=True)
    return feature.detach(), sigma.detach(), grads


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_gradients_equal_autograds_over_uneven_blocks(layers):
    """Three images of 1,500 points: blocks of 682 rows per image, the last one short."""
    field, styles = _field(layers)
    for s in styles.values():
        s.requires_grad_()
    g = torch.Generator().manual_seed(1)
    points = ((torch.rand(3, 1500, 3, generator=g, dtype=torch.float64) - 0.5) * 0.24).requires_grad_()
    upstream = (
        torch.randn(3, 1500, 5, generator=g, dtype=torch.float64),
        torch.randn(3, 1500, 1, generator=g, dtype=torch.float64),
    )
    assert 1500 > K.FIELD_BLOCK_ROWS // 3  # more than one block per image
    ours = _gradients(field, styles, points, field, upstream)
    plain = _gradients(field, styles, points, field._evaluate, upstream)  # autograd through every layer
    assert ours[0].equal(plain[0]) and ours[1].equal(plain[1])
    for a, b in zip(ours[2], plain[2], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


def test_gradcheck():
    field, styles = _field(2, seed=2)
    folded = field.modulate(styles)
    g = torch.Generator().manual_seed(3)
    points = (torch.rand(3, 4, 3, generator=g, dtype=torch.float64) - 0.5) * 0.24
    flat = [t.clone().requires_grad_() for layer in (*folded.hidden, folded.color) for t in layer]

    def run(points, *tensors):
        layers = [type(folded.color)(tensors[i], tensors[i + 1]) for i in range(0, len(tensors), 2)]
        return field_with_recompute(points, layers[:-1], layers[-1], field.sigma, field.feature)

    assert torch.autograd.gradcheck(run, (points.requires_grad_(), *flat))


def test_the_field_takes_it_on_the_cpu_only_when_a_gradient_is_recorded():
    field, styles = _field(2)
    points = torch.rand(3, 10, 3, dtype=torch.float64) * 0.1
    feature, _ = field(points, styles)  # the field's weights need gradients
    assert type(feature.grad_fn).__name__ == "_RecomputedFieldBackward"
    with torch.no_grad():
        assert field(points, styles)[0].grad_fn is None
    field.requires_grad_(False)
    assert field(points, styles)[0].grad_fn is None  # nothing to differentiate: the inference blocks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_blocks_of_one_images_rows_equal_the_plain_layers(monkeypatch, dtype):
    """Inference and the training forward write each image's blocks of rows into the outputs: the same
    numbers as the batched layers, over uneven blocks (150 points in blocks of 64)."""
    monkeypatch.setattr(K, "FIELD_BLOCK_ROWS", 64)
    field, styles = _field(2)
    field.to(dtype)
    styles = {name: s.to(dtype) for name, s in styles.items()}
    points = ((torch.rand(3, 150, 3, generator=torch.Generator().manual_seed(5)) - 0.5) * 0.24).to(dtype)
    with torch.no_grad():
        plain = field._evaluate(points, field.modulate(styles))
        ours = field(points, styles)
    for a, b in zip(ours, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-13)
    trained = field(points, styles)  # the training forward: the same blocks
    assert type(trained[0].grad_fn).__name__ == "_RecomputedFieldBackward"
    for a, b in zip(trained, ours, strict=True):
        assert a.detach().equal(b)


def test_styles_for_another_batch_are_refused_and_an_empty_batch_renders():
    """The blocks index each image's weights: a batch mismatch must still fail as the plain layers do
    (it returned image 0's field), and a batch of no images must not reach the blocks' division."""
    field, styles = _field(2)
    points = torch.rand(1, 10, 3, dtype=torch.float64) * 0.1
    for grad in (False, True):
        with torch.set_grad_enabled(grad), pytest.raises(RuntimeError):
            field(points, styles)  # styles for 3 images
    empty = {name: s[:0] for name, s in styles.items()}
    feature, sigma = field(torch.zeros(0, 10, 3, dtype=torch.float64), empty)
    (feature.sum() + sigma.sum()).backward()
    assert feature.shape == (0, 10, 5) and sigma.shape == (0, 10, 1)


def test_torch_func_takes_autograds_own_graph():
    """torch.func transforms trace the plain layers (the written-out backward is differentiable once)."""
    field, styles = _field(2)
    points = torch.rand(3, 10, 3, dtype=torch.float64) * 0.1
    style = styles["nerf_w0"]

    def loss(s):
        return field(points, {**styles, "nerf_w0": s})[0].square().sum()

    plain_style = style.clone().requires_grad_()
    (plain,) = torch.autograd.grad(
        field._evaluate(points, field.modulate({**styles, "nerf_w0": plain_style}))[0].square().sum(),
        plain_style,
    )
    assert torch.allclose(torch.func.grad(loss)(style), plain, rtol=1e-10, atol=1e-13)


def test_transforms_over_inputs_made_outside_them():
    """An active torch.func transform refuses a Function without a vmap rule even for plain inputs (the
    field's own trainable weights): the plain layers run."""
    field, styles = _field(2)
    points = torch.rand(3, 10, 3, dtype=torch.float64) * 0.1
    total = field(points, styles)[0].sum().detach()
    scaled = torch.func.vmap(lambda x: x * field(points, styles)[0].sum())(
        torch.arange(3.0, dtype=torch.float64)
    )
    torch.testing.assert_close(scaled, torch.arange(3.0, dtype=torch.float64) * total)


def test_second_derivatives_go_through_autograds_graph():
    """A Hessian in the points and a penalty on the points' gradient (an eikonal term) build a graph in
    the backward: they must match the plain layers (the blocked backward is differentiable once)."""
    field, styles = _field(2)
    point = (
        torch.rand(1, 1, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64) - 0.5
    ) * 0.24
    one = {name: s[:1] for name, s in styles.items()}

    def sigma_of(evaluate):
        return lambda q: evaluate(q, field.modulate(one))[1].sum()

    hessian = torch.autograd.functional.hessian(sigma_of(field), point)
    assert torch.allclose(hessian, torch.autograd.functional.hessian(sigma_of(field._evaluate), point))
    assert hessian.abs().max() > 1  # not the zeros a once-differentiable backward would give

    def penalised(evaluate) -> torch.Tensor:
        points = ((torch.rand(3, 20, 3, dtype=torch.float64) - 0.5) * 0.24).requires_grad_()
        feature, sigma = evaluate(points, field.modulate(styles))
        (normals,) = torch.autograd.grad(sigma.sum(), points, create_graph=True)
        loss = feature.square().mean() + (normals.norm(dim=-1) - 1).square().mean()
        return torch.autograd.grad(loss, field.hidden[0].linear.weight)[0]

    torch.manual_seed(5)
    ours = penalised(field)
    torch.manual_seed(5)
    assert torch.allclose(ours, penalised(field._evaluate), rtol=1e-10, atol=1e-13)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # inside forward-mode AD
def test_batched_and_forward_mode_gradients():
    field, styles = _field(2)
    for s in styles.values():
        s.requires_grad_()
    points = (
        torch.rand(3, 30, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64) - 0.5
    ) * 0.24
    vectors = torch.randn(4, 3, 30, 1, dtype=torch.float64)

    def batched(evaluate):
        sigma = evaluate(points, field.modulate(styles))[1]
        return torch.autograd.grad(sigma, styles["nerf_w0"], vectors, is_grads_batched=True)[0]

    assert torch.allclose(batched(field), batched(field._evaluate), rtol=1e-10, atol=1e-13)
    tangent = torch.randn_like(points)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(points, tangent)
        ours = torch.autograd.forward_ad.unpack_dual(field(dual, styles)[1]).tangent
        plain = torch.autograd.forward_ad.unpack_dual(
            field._evaluate(dual, field.modulate(styles))[1]
        ).tangent
    assert ours is not None and torch.allclose(ours, plain, rtol=1e-10, atol=1e-13)


def test_what_autograd_would_say_is_said_the_same():
    """Hooks on the heads run; autocast keeps its dtypes; an output no loss uses leaves its weights
    without a gradient (None, not zeros: optimisers skip those); no points give an empty gradient."""
    field, styles = _field(2)
    points = torch.rand(3, 10, 3, dtype=torch.float64) * 0.1
    seen = []
    handle = field.sigma.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    field(points, styles)
    handle.remove()
    assert seen == [(3, 10, 1)]
    float_styles = {n: s.float() for n, s in styles.items()}
    field.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert field(points.float(), float_styles)[0].dtype == torch.bfloat16
    field.double()
    feature, _ = field(points, styles)
    feature.sum().backward()
    assert field.sigma.weight.grad is None and field.sigma.bias.grad is None
    assert field.feature.weight.grad is not None and field.color.linear.weight.grad is not None
    field.zero_grad(set_to_none=True)
    _, sigma = field(points, styles)
    sigma.sum().backward()
    assert field.feature.weight.grad is None and field.color.linear.weight.grad is None
    assert field.hidden[0].linear.weight.grad is not None
    empty = torch.zeros(3, 0, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(field(empty, styles)[1].sum(), empty)
    assert grad.shape == (3, 0, 3)


def test_checkpoints_inference_tensors_and_global_hooks():
    """Non-reentrant checkpointing lets a backward unpack its saved tensors once (the fallback for a
    second derivative read them twice); points made under inference mode cannot be saved by a function;
    a global module hook must see the heads run."""
    field, styles = _field(2)
    points = (
        torch.rand(3, 20, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64) - 0.5
    ) * 0.24

    def normals(evaluate, checkpointed: bool) -> torch.Tensor:
        p = points.clone().requires_grad_()
        if checkpointed:
            sigma = torch.utils.checkpoint.checkpoint(
                evaluate, p, field.modulate(styles), use_reentrant=False
            )[1]
        else:
            sigma = evaluate(p, field.modulate(styles))[1]
        (n,) = torch.autograd.grad(sigma.sum(), p, create_graph=True)
        return torch.autograd.grad(n.square().sum(), field.hidden[1].linear.weight)[0]

    assert torch.allclose(normals(field, True), normals(field._evaluate, False), rtol=1e-10, atol=1e-13)
    with torch.inference_mode():
        frozen = points.clone()
    feature, sigma = field(frozen, styles)
    (feature.sum() + sigma.sum()).backward()
    assert field.sigma.weight.grad is not None
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: seen.append(module) if module is field.sigma else None
    )
    try:
        field(points, styles)
    finally:
        handle.remove()
    assert seen == [field.sigma]
