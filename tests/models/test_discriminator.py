"""The discriminator layers against their formulas, the configs and presets, routing and fade-in."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from cips3d import ConfigError
from cips3d.models.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    discriminator_preset,
    official_aux_channels,
    official_main_channels,
)
from cips3d.nn import equalized
from cips3d.nn.equalized import (
    ConvLayer,
    EqualConv2d,
    EqualLinear,
    ResBlock,
    blur,
    blur_kernel,
    conv2d,
    fused_leaky_relu,
)
from cips3d.training.augment import DiffAugmentConfig, draw_diff_augment
from tests.conftest import fixture_path, load_fixture

f64 = torch.float64


def small_official_kwargs() -> tuple[dict, dict]:
    kwargs = json.loads(fixture_path("official-d", "small_config.json").read_text())
    return kwargs["main_disc_kwargs"], kwargs["aux_disc_kwargs"]


@pytest.fixture(scope="module")
def tiny_D() -> Discriminator:
    return Discriminator(discriminator_preset("tiny"), torch.Generator().manual_seed(0)).double()


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- layers -------------------------------------------------------------------------------------------
def test_fused_leaky_relu_adds_the_bias_per_channel_then_scales_by_sqrt2():
    x = torch.randn(2, 3, 4, 5, dtype=f64)
    bias = torch.tensor([0.5, -1.0, 2.0], dtype=f64)
    y = x + bias[None, :, None, None]
    expected = torch.where(y > 0, y, 0.2 * y) * math.sqrt(2)
    assert torch.allclose(fused_leaky_relu(x, bias), expected, atol=1e-14)
    assert torch.allclose(fused_leaky_relu(x[..., 0, 0], bias), expected[..., 0, 0], atol=1e-14)  # [B, C]


def upfirdn_reference(x, kernel, pad):
    """upfirdn2d with up = down = 1 written out: zero-pad, then sum_k x[i + k] * kernel[kh - 1 - k]."""
    xp = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    kh, kw = kernel.shape
    out_h, out_w = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = torch.zeros(*x.shape[:2], out_h, out_w, dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            out += xp[:, :, ky : ky + out_h, kx : kx + out_w] * kernel[kh - 1 - ky, kw - 1 - kx]
    return out


@pytest.mark.parametrize("pad", [(2, 2), (1, 1), (2, 1), (0, 0)])
def test_blur_is_upfirdn2d_with_a_flipped_kernel(pad):
    x = torch.randn(2, 3, 6, 7, dtype=f64)
    kernel = torch.arange(12, dtype=f64).reshape(3, 4)  # asymmetric: a missing flip would show
    assert torch.allclose(blur(x, kernel, pad), upfirdn_reference(x, kernel, pad), atol=1e-12)


@pytest.mark.parametrize("pad", [(2, 2), (2, 1), (0, 0)])
def test_blur_derivatives_of_first_and_second_order_equal_the_plain_convolutions(pad):
    """`blur` differentiates through its own adjoint pair; autograd of the plain conv is the reference."""
    kernel = torch.arange(12, dtype=f64).reshape(3, 4)
    x = torch.randn(2, 3, 6, 7, dtype=f64, requires_grad=True)
    torch.autograd.gradcheck(lambda v: blur(v, kernel, pad), (x,))
    torch.autograd.gradgradcheck(lambda v: blur(v, kernel, pad), (x,))

    def r1_like(fn):  # the R1 pattern: a gradient with create_graph, then a second backward
        (g,) = torch.autograd.grad(fn(x).sin().sum(), x, create_graph=True)
        return g, torch.autograd.grad(g.square().sum(), x)[0]

    learned = kernel.clone().requires_grad_()  # a kernel that wants a gradient takes the plain path
    ours, plain = r1_like(lambda v: blur(v, kernel, pad)), r1_like(lambda v: blur(v, learned, pad))
    assert torch.allclose(ours[0], plain[0], atol=1e-12) and torch.allclose(ours[1], plain[1], atol=1e-12)
    (kernel_grad,) = torch.autograd.grad(blur(x, learned, pad).sum(), learned)
    assert kernel_grad.abs().sum() > 0


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # forward_ad.unpack_dual
@pytest.mark.parametrize(
    ("stride", "padding", "size", "side"),
    [(1, 1, 3, 7), (2, 0, 3, 7), (2, 0, 3, 8), (2, 0, 1, 7), (1, 0, 1, 7)],  # 8: the stride drops a row
)
def test_conv2d_derivatives_of_first_three_orders_equal_the_plain_convolutions(stride, padding, size, side):
    """`conv2d` differentiates through PyTorch's own gradient op, written as Functions of each other:
    every order against autograd of `F.conv2d` (third order too, through `gradgradcheck` of R1's input
    gradient)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, side, side, dtype=f64, generator=g, requires_grad=True)
    w = torch.randn(4, 3, size, size, dtype=f64, generator=g, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b: conv2d(a, b, stride, padding), (x, w))
    torch.autograd.gradgradcheck(lambda a, b: conv2d(a, b, stride, padding), (x, w))

    def r1_like(fn):  # the R1 pattern: the input's gradient with create_graph, then a second backward
        (gx,) = torch.autograd.grad(fn(x, w).sin().sum(), x, create_graph=True)
        return gx, torch.autograd.grad(gx.square().sum(), (x, w))

    ours = r1_like(lambda a, b: conv2d(a, b, stride, padding))
    plain = r1_like(lambda a, b: F.conv2d(a, b, stride=stride, padding=padding))
    torch.testing.assert_close(ours[0], plain[0], rtol=0, atol=1e-12)
    for a, b in zip(ours[1], plain[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)

    def input_gradient(a, b):  # R1's gradient as a function: its second derivatives are the third order
        (gx,) = torch.autograd.grad(conv2d(a, b, stride, padding).sin().sum(), a, create_graph=True)
        return gx

    torch.autograd.gradgradcheck(input_gradient, (x, w))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # forward_ad.unpack_dual
def test_conv2d_skips_the_weight_gradient_that_r1s_input_gradient_does_not_ask_for(monkeypatch):
    """`autograd.grad(logits, images)` wants no weight gradient (PyTorch's own node skips it: half of
    each layer's backward); the full backward still gets both."""
    asked = []
    original = equalized._backward

    def recording(g, x, weight, stride, padding, need_x, need_w):
        asked.append((need_x, need_w))
        return original(g, x, weight, stride, padding, need_x, need_w)

    monkeypatch.setattr(equalized, "_backward", recording)
    raw = torch.randn(4, 3, 3, 3, dtype=f64, requires_grad=True)
    x = torch.randn(2, 3, 6, 6, dtype=f64, requires_grad=True)
    out = conv2d(x * 1.0, raw * 0.5, 1, 1).square().sum()
    torch.autograd.grad(out, x, retain_graph=True, create_graph=True)
    assert asked == [(True, False)]
    asked.clear()
    out.backward()
    assert asked == [(True, True)] and raw.grad is not None and x.grad is not None


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # forward_ad.unpack_dual
def test_conv2d_takes_the_plain_convolution_where_its_functions_would_not_do():
    """CPU autocast (the saved float32 tensors against a bfloat16 gradient), forward-mode AD (no jvp)
    and unbatched inputs (which `convolution_backward` refuses) train as with `F.conv2d`."""
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv2d(x, w, 2, 1)
    out.float().sum().backward()
    assert x.grad is not None and w.grad is not None
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(x.detach(), torch.ones_like(x))
        tangent = torch.autograd.forward_ad.unpack_dual(conv2d(dual, w, 2, 1)).tangent
    torch.testing.assert_close(tangent, F.conv2d(torch.ones_like(x), w, stride=2, padding=1))
    single = x[0].detach().requires_grad_()
    conv2d(single, w, 2, 1).sum().backward()
    torch.testing.assert_close(
        single.grad, torch.autograd.grad(F.conv2d(x, w, stride=2, padding=1)[0].sum(), x)[0][0]
    )


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # forward_ad.unpack_dual
def test_conv2d_takes_the_plain_convolution_under_torch_func():
    x = torch.randn(2, 3, 6, 6, dtype=f64)
    w = torch.randn(4, 3, 3, 3, dtype=f64)
    ours = torch.func.grad(lambda v: conv2d(v, w, 1, 1).sin().sum())(x)
    xx = x.clone().requires_grad_()
    (plain,) = torch.autograd.grad(F.conv2d(xx, w, padding=1).sin().sum(), xx)
    torch.testing.assert_close(ours, plain, rtol=0, atol=1e-12)


def test_blur_kernel_is_the_normalised_outer_product_of_1331():
    k = blur_kernel()
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    assert torch.equal(k, torch.outer(taps, taps) / 64)


def test_equal_conv_and_linear_scale_their_weights_by_one_over_sqrt_fan_in():
    conv = EqualConv2d(4, 6, 3, stride=1, padding=1).double()
    conv.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(2, 4, 5, 5, dtype=f64)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight / 6.0, padding=1), atol=1e-12)  # sqrt(4*9)
    assert [name for name, _ in conv.named_parameters()] == ["weight"]  # no bias of its own
    linear = EqualLinear(16, 3, activate=True).double()
    linear.reset_parameters(torch.Generator().manual_seed(1))
    with torch.no_grad():
        linear.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    v = torch.randn(5, 16, dtype=f64)
    assert torch.allclose(linear(v), fused_leaky_relu(v @ linear.weight.T / 4, linear.bias), atol=1e-12)
    linear.activate = False
    assert torch.allclose(linear(v), v @ linear.weight.T / 4 + linear.bias, atol=1e-12)


def test_downsampling_conv_layer_blurs_with_the_official_padding_then_strides_by_two():
    layer = ConvLayer(3, 5, 3, downsample=True).double()
    layer.reset_parameters(torch.Generator().manual_seed(2))
    assert layer.blur.pad == (2, 2) and ConvLayer(3, 5, 1, downsample=True).blur.pad == (1, 1)
    x = torch.randn(2, 3, 8, 8, dtype=f64)
    blurred = upfirdn_reference(x, blur_kernel().double(), (2, 2))
    expected = fused_leaky_relu(
        F.conv2d(blurred, layer.conv.weight / math.sqrt(27), stride=2), layer.act.bias
    )
    assert layer(x).shape == (2, 5, 4, 4)
    assert torch.allclose(layer(x), expected, atol=1e-12)


@pytest.mark.parametrize("first_downsample", [False, True])
def test_res_block_averages_the_residual_and_a_bias_free_skip(first_downsample):
    block = ResBlock(4, 6, first_downsample).double()
    block.reset_parameters(torch.Generator().manual_seed(3))
    assert (block.conv1.blur is not None) == first_downsample
    assert (block.conv2.blur is not None) != first_downsample
    assert block.skip.act is None
    x = torch.randn(2, 4, 8, 8, dtype=f64)
    expected = (block.conv2(block.conv1(x)) + block.skip(x)) / math.sqrt(2)
    out = block(x)
    assert out.shape == (2, 6, 4, 4) and torch.allclose(out, expected, atol=1e-12)


# --- configs and presets ---------------------------------------------------------------------------
def test_ffhq_preset_has_the_official_parameter_counts():
    D = Discriminator(discriminator_preset("ffhq"), initialize=False)
    assert n_params(D.main) == 29_019_937
    assert n_params(D.aux) == 8_498_977
    assert n_params(D) == 37_518_914
    assert len(D.state_dict()) == 160
    assert sum(name.endswith("blur.kernel") for name in D.state_dict()) == 32
    assert D.config.main_channels == {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 512,
        128: 256,
        256: 128,
        512: 64,
        1024: 32,
    }
    assert D.config.aux_channels[128] == 256 and D.config.aux_channels[256] == 128


def test_tiny_preset_serves_16_32_and_64_px():
    config = discriminator_preset("tiny")
    assert config.input_sizes == (8, 16, 32, 64)
    assert n_params(Discriminator(config, initialize=False)) == 371_290


def test_official_small_kwargs_give_the_fixture_tables_and_counts():
    config = DiscriminatorConfig.from_official_kwargs(*small_official_kwargs())
    assert config.max_size == 64
    assert config.main_channels[64] == 16 and config.aux_channels[32] == 12
    assert (config.main_first_downsample, config.aux_first_downsample) == (False, True)
    D = Discriminator(config, initialize=False)
    assert (n_params(D.main), n_params(D.aux)) == (75_921, 21_393)


def test_seeded_init_gives_the_official_weights():
    """Seeded like torch.manual_seed(0), our init draws the official constructor's weights; the fixture
    biases were re-drawn after init (README §2), so only weights are compared, and our biases are 0."""
    D = Discriminator(DiscriminatorConfig.from_official_kwargs(*small_official_kwargs()))
    official = load_fixture("official-d", "small_D_state_dict.pt")
    ours = D.state_dict()
    weights = [k for k in official if k.endswith("weight")]
    ours_weights = [k for k in ours if k.endswith("weight")]
    assert len(weights) == len(ours_weights) == 48
    assert all(torch.equal(official[a], ours[b]) for a, b in zip(weights, ours_weights, strict=True))
    assert all(not v.any() for k, v in ours.items() if k.endswith("bias"))
    other = Discriminator(D.config, torch.Generator().manual_seed(1))
    assert not torch.equal(other.main.out_linear.weight, D.main.out_linear.weight)


def test_config_round_trips_through_json():
    config = discriminator_preset("tiny")
    assert DiscriminatorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 48}, "power of two"),
        ({"max_size": 4}, "power of two >= 8"),
        ({"max_size": 64, "main_channels": {4: 8, 8: 8, 16: 8, 64: 8}}, r"lacks resolutions \[32\]"),
        ({"max_size": 16, "aux_channels": {4: 8, 8: 0, 16: 8}}, "positive widths"),
        ({"max_size": 16, "aux_channels": {3: 8, 4: 8, 8: 8, 16: 8}}, "power-of-two resolutions"),
    ],
)
def test_impossible_configs_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DiscriminatorConfig(**kwargs)


def test_official_kwargs_are_checked():
    main, aux = small_official_kwargs()
    with pytest.raises(ConfigError, match="stddev_group"):
        DiscriminatorConfig.from_official_kwargs({k: v for k, v in main.items() if k != "stddev_group"}, aux)
    with pytest.raises(ConfigError, match="max_size differ"):
        DiscriminatorConfig.from_official_kwargs(main, {**aux, "max_size": 128})
    no_tables = [{k: v for k, v in d.items() if k != "channels"} for d in (main, aux)]
    config = DiscriminatorConfig.from_official_kwargs(*no_tables)
    assert config.main_channels == {r: c for r, c in official_main_channels().items()}
    assert official_aux_channels()[4] == 256
    with pytest.raises(ConfigError, match="unknown discriminator preset"):
        discriminator_preset("huge")


# --- forward ------------------------------------------------------------------------------------------
def test_aux_images_go_to_the_aux_discriminator_and_are_concatenated(tiny_D):
    x, y = torch.randn(2, 3, 32, 32, dtype=f64), torch.randn(2, 3, 32, 32, dtype=f64)
    with torch.no_grad():
        both = tiny_D(x, y, alpha=0.7)
        assert both.shape == (4, 1)
        assert torch.allclose(both[:2], tiny_D(x, alpha=0.7), atol=1e-12)
        assert torch.allclose(both[2:], tiny_D.aux(y, alpha=0.7), atol=1e-12)
        assert not torch.allclose(both[2:], tiny_D(y, alpha=0.7), atol=1e-3)  # a different network


@pytest.mark.parametrize("size", [16, 32, 64])
def test_alpha_zero_is_the_half_size_image_through_the_next_input_layer(tiny_D, size):
    x = torch.randn(2, 3, size, size, dtype=f64)
    with torch.no_grad():
        faded = tiny_D(x, alpha=0.0)
        half = tiny_D(F.avg_pool2d(x, 2), alpha=1.0)
    assert torch.allclose(faded, half, atol=1e-12)


def test_alpha_one_ignores_the_half_resolution_input_layer(tiny_D):
    x = torch.randn(2, 3, 32, 32, dtype=f64)
    tiny_D.zero_grad(set_to_none=True)
    tiny_D(x, alpha=1.0).sum().backward()
    assert tiny_D.main.conv_in["16"].conv.weight.grad is None
    tiny_D.zero_grad(set_to_none=True)
    tiny_D(x, alpha=0.5).sum().backward()
    assert tiny_D.main.conv_in["16"].conv.weight.grad.abs().sum() > 0
    # Every layer on the 32 -> 4 path (and conv_in.16 for the fade-in) gets a non-zero gradient; no other.
    used = (
        "conv_in.32.",
        "conv_in.16.",
        "blocks.32.",
        "blocks.16.",
        "blocks.8.",
        "final_conv.",
        "space_linear.",
    )
    params = dict(tiny_D.main.named_parameters())
    expected = {n for n in params if n.startswith((*used, "out_linear."))}
    assert {n for n, p in params.items() if p.grad is not None} == expected
    assert all(params[n].grad.abs().sum() > 0 for n in expected)
    tiny_D.zero_grad(set_to_none=True)


def test_samples_are_judged_independently(tiny_D):
    """No minibatch-stddev (stddev_group 0): a row's logit does not depend on the other rows."""
    x = torch.randn(3, 3, 16, 16, dtype=f64)
    with torch.no_grad():
        assert torch.allclose(tiny_D(x)[1:2], tiny_D(x[1:2]), atol=1e-12)


def test_float32_and_float64_agree():
    D = Discriminator(discriminator_preset("tiny"), torch.Generator().manual_seed(4))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        single = D(x, x, alpha=0.5)
        double = D.double()(x.double(), x.double(), alpha=0.5)
    assert single.dtype == torch.float32 and double.dtype == f64
    assert torch.allclose(single.double(), double, atol=1e-5)


def test_augmentation_runs_inside_each_discriminator_call(tiny_D):
    x = torch.rand(2, 3, 32, 32, dtype=f64) * 2 - 1
    augment = DiffAugmentConfig()
    with torch.no_grad():
        a = tiny_D(x, x, augment=augment, generator=torch.Generator().manual_seed(5))
        b = tiny_D(x, x, augment=augment, generator=torch.Generator().manual_seed(5))
        plain = tiny_D(x, x)
        g = torch.Generator().manual_seed(5)
        draws = [draw_diff_augment(augment, 2, (32, 32), generator=g, dtype=f64) for _ in range(2)]
        injected = tiny_D(x, x, augment=augment, draws=draws)
    assert torch.equal(a, b)
    assert not torch.allclose(a, plain, atol=1e-3)
    assert torch.equal(a, injected)  # main draws first, then aux, from the one generator


def test_bad_calls_are_reported(tiny_D):
    x = torch.randn(1, 3, 16, 16, dtype=f64)
    with pytest.raises(ConfigError, match="image size 128 is not supported"):
        tiny_D(torch.randn(1, 3, 128, 128, dtype=f64))
    with pytest.raises(ConfigError, match=r"\[B, 3, S, S\]"):
        tiny_D(torch.randn(1, 4, 16, 16, dtype=f64))
    with pytest.raises(ConfigError, match="alpha"):
        tiny_D(x, alpha=1.5)
    draws = draw_diff_augment(DiffAugmentConfig(), 1, (16, 16))
    with pytest.raises(ValueError, match="sequence of 2"):
        tiny_D(x, x, augment=DiffAugmentConfig(), draws=[draws])
    with pytest.raises(ValueError, match="augment is None"):
        tiny_D(x, draws=[draws])
