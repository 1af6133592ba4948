"""The INR decoder's CPU training pass over blocks of one image's pixels (`models.inr_blocked`)."""

from __future__ import annotations

import pytest
import torch

from cips3d import constants as K
from cips3d.config import InrConfig
from cips3d.models.inr_blocked import evaluate_inr, inr_with_blocked_gradient
from cips3d.models.inr_decoder import InrDecoder

HIDDEN, FEATURE = 12, 5


def _decoder(seed: int = 0) -> tuple[InrDecoder, dict[str, torch.Tensor]]:
    """A small float64 decoder (nine blocks 12 wide, residual from block 4, heads from block 3) and
    styles for 3 images."""
    decoder = InrDecoder(InrConfig(hidden_dim=HIDDEN, style_dim=7), FEATURE).double()
    g = torch.Generator().manual_seed(seed)
    decoder.reset_parameters(g)
    names = [n for pair in decoder.style_pairs for n in pair]
    styles = {n: torch.randn(3, 7, generator=g, dtype=torch.float64) * 0.3 for n in names}
    return decoder, styles


def _plain(decoder: InrDecoder, feature: torch.Tensor, styles) -> torch.Tensor:
    """Autograd through every layer: the decoder's own loop, the blocked path switched off."""
    modulation = decoder.modulate(styles)
    heads = [(h.weight, h.bias) for h in decoder.to_rgb[decoder.rgb_from_block :]]
    residual = [b.residual for b in decoder.blocks]
    return torch.tanh(evaluate_inr(feature, modulation.weights, residual, heads))


def _gradients(decoder, styles, feature, evaluate, upstream):
    leaves = [*decoder.parameters(), *styles.values(), feature]
    leaves = [t for t in leaves if t.requires_grad]
    rgb = evaluate(feature, styles)
    return rgb.detach(), torch.autograd.grad(rgb, leaves, upstream, allow_unused=True)


@pytest.mark.parametrize("rows", [7, 40, K.INR_BLOCK_ROWS])
def test_gradients_equal_autograds_over_uneven_blocks(monkeypatch, rows):
    """Three images of 40 pixels in blocks of 7 (the last one short), 40 and the default rows."""
    monkeypatch.setattr(K, "INR_BLOCK_ROWS", rows)
    decoder, styles = _decoder()
    for s in styles.values():
        s.requires_grad_()
    g = torch.Generator().manual_seed(1)
    feature = torch.randn(3, 40, FEATURE, generator=g, dtype=torch.float64).requires_grad_()
    upstream = torch.randn(3, 40, 3, generator=g, dtype=torch.float64)
    rgb = decoder(feature, styles)
    assert type(rgb.grad_fn.next_functions[0][0]).__name__ == "_BlockedInrBackward"
    ours = _gradients(decoder, styles, feature, decoder, upstream)
    plain = _gradients(decoder, styles, feature, lambda f, s: _plain(decoder, f, s), upstream)
    torch.testing.assert_close(ours[0], plain[0], rtol=1e-12, atol=1e-14)
    for a, b in zip(ours[1], plain[1], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    unused = [p for p in decoder.to_rgb[: decoder.rgb_from_block].parameters()]
    assert all(p.grad is None for p in unused)


@pytest.mark.parametrize(
    ("wanted", "blocked"),
    [
        ("feature", True),
        ("first styles", True),
        ("heads", False),
        ("late blocks", False),
        ("late styles", False),
    ],
)
def test_only_the_gradients_asked_for(wanted, blocked):
    """A frozen generator fitting a feature or latents through the first block's styles takes the blocks
    (the gradient runs down to block 0); heads alone, the last blocks alone or a late block's styles take
    autograd's layers, which keep only what that shorter path needs. Either way: autograd's gradients
    for what needs one, none for the rest."""
    decoder, styles = _decoder(seed=2)
    decoder.requires_grad_(False)
    g = torch.Generator().manual_seed(3)
    feature = torch.randn(3, 9, FEATURE, generator=g, dtype=torch.float64)
    if wanted == "feature":
        feature.requires_grad_()
    elif wanted == "first styles":
        styles["inr_w4_1"].requires_grad_()
    elif wanted == "heads":
        decoder.to_rgb[5].requires_grad_()
    elif wanted == "late blocks":
        decoder.blocks[7:].requires_grad_()
    else:
        styles["inr_w32_1"].requires_grad_()
    node = type(decoder(feature, styles).grad_fn.next_functions[0][0]).__name__
    assert (node == "_BlockedInrBackward") == blocked
    upstream = torch.randn(3, 9, 3, generator=g, dtype=torch.float64)
    ours = _gradients(decoder, styles, feature, decoder, upstream)
    plain = _gradients(decoder, styles, feature, lambda f, s: _plain(decoder, f, s), upstream)
    assert len(ours[1]) > 0
    for a, b in zip(ours[1], plain[1], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_gradcheck():
    decoder, styles = _decoder(seed=4)
    modulation = decoder.modulate(styles)
    weights = [w.detach().clone().requires_grad_() for pair in modulation.weights for w in pair]
    feature = torch.randn(3, 4, FEATURE, dtype=torch.float64, requires_grad=True)
    residual = [b.residual for b in decoder.blocks]
    heads = [(h.weight, h.bias) for h in decoder.to_rgb[decoder.rgb_from_block :]]

    def run(feature, *flat):
        pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        return inr_with_blocked_gradient(feature, pairs, residual, heads)

    assert torch.autograd.gradcheck(run, (feature, *weights))


def test_the_decoder_takes_it_on_the_cpu_only_when_a_gradient_is_recorded_in_full_precision():
    decoder, styles = _decoder()
    feature = torch.randn(3, 6, FEATURE, dtype=torch.float64)

    def last_node(rgb: torch.Tensor) -> str | None:
        return None if rgb.grad_fn is None else type(rgb.grad_fn.next_functions[0][0]).__name__

    assert last_node(decoder(feature, styles)) == "_BlockedInrBackward"
    with torch.no_grad():
        assert last_node(decoder(feature, styles)) is None
    decoder.float()
    float_styles = {n: s.float() for n, s in styles.items()}
    assert last_node(decoder(feature.float(), float_styles)) == "_BlockedInrBackward"
    assert last_node(decoder(feature.float(), float_styles, precision="bf16")) != "_BlockedInrBackward"
    assert last_node(decoder(torch.zeros(3, 0, FEATURE), float_styles)) != "_BlockedInrBackward"
    decoder.requires_grad_(False)
    assert last_node(decoder(feature.float(), float_styles)) is None  # nothing to differentiate


def test_hooks_and_torch_func_see_the_plain_layers():
    """A hook on a block runs (the blocked pass would skip the block's forward); torch.func's gradient
    equals autograd's through the plain layers."""
    decoder, styles = _decoder()
    feature = torch.randn(3, 6, FEATURE, dtype=torch.float64)
    seen = []
    handle = decoder.blocks[2].register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    decoder(feature, styles).sum().backward()
    handle.remove()
    assert seen == [(3, 6, HIDDEN)]

    def loss(f):
        return decoder(f, styles).square().sum()

    plain_feature = feature.clone().requires_grad_()
    (plain,) = torch.autograd.grad(_plain(decoder, plain_feature, styles).square().sum(), plain_feature)
    torch.testing.assert_close(torch.func.grad(loss)(feature), plain, rtol=1e-10, atol=1e-13)


def test_transforms_over_inputs_made_outside_them():
    """Under an active torch.func transform a Function without a vmap rule is refused even when its
    inputs are plain tensors (training parameters, a feature made before): the plain layers run."""
    decoder, styles = _decoder(seed=9)
    feature = torch.randn(3, 6, FEATURE, dtype=torch.float64)
    total = decoder(feature, styles).sum().detach()
    grad = torch.func.grad(lambda x: x * decoder(feature, styles).sum())(
        torch.tensor(2.0, dtype=torch.float64)
    )
    torch.testing.assert_close(grad, total)
    scaled = torch.func.vmap(lambda x: x * decoder(feature, styles).sum())(
        torch.arange(3.0, dtype=torch.float64)
    )
    torch.testing.assert_close(scaled, torch.arange(3.0, dtype=torch.float64) * total)


def test_a_modulation_for_another_batch_is_refused():
    """The blocks index the weights by image: a modulation for 4 images with 3 features is the batched
    product's error, as before (not 3 images decoded with the first 3 images' weights)."""
    decoder, styles = _decoder()
    feature = torch.randn(2, 6, FEATURE, dtype=torch.float64, requires_grad=True)
    for grad in (True, False):
        with torch.set_grad_enabled(grad), pytest.raises(RuntimeError, match="batch2"):
            decoder(feature, styles)


def test_second_derivatives_and_checkpoints_go_through_autograds_graph():
    """A penalty on the feature's gradient builds a graph in the backward, also under non-reentrant
    checkpointing (which lets a backward unpack its saved tensors once); batched gradients too."""
    decoder, styles = _decoder(seed=5)
    feature = torch.randn(3, 8, FEATURE, generator=torch.Generator().manual_seed(6), dtype=torch.float64)

    def penalised(evaluate, checkpointed: bool = False) -> torch.Tensor:
        f = feature.clone().requires_grad_()
        if checkpointed:
            rgb = torch.utils.checkpoint.checkpoint(evaluate, f, styles, use_reentrant=False)
        else:
            rgb = evaluate(f, styles)
        (slope,) = torch.autograd.grad(rgb.sum(), f, create_graph=True)
        return torch.autograd.grad(slope.square().sum(), decoder.blocks[1].mod1.weight)[0]

    plain = penalised(lambda f, s: _plain(decoder, f, s))
    assert plain.abs().max() > 0
    torch.testing.assert_close(penalised(decoder), plain, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(penalised(decoder, checkpointed=True), plain, rtol=1e-10, atol=1e-13)

    vectors = torch.randn(4, 3, 8, 3, dtype=torch.float64)

    def batched(evaluate) -> torch.Tensor:
        f = feature.clone().requires_grad_()
        return torch.autograd.grad(evaluate(f, styles), f, vectors, is_grads_batched=True)[0]

    torch.testing.assert_close(
        batched(decoder), batched(lambda f, s: _plain(decoder, f, s)), rtol=1e-10, atol=1e-13
    )


def test_a_decoder_without_a_head_on_its_last_block_is_refused():
    decoder, styles = _decoder()
    modulation = decoder.modulate(styles)
    residual = [b.residual for b in decoder.blocks]
    with pytest.raises(ValueError, match="the last block needs one"):
        inr_with_blocked_gradient(
            torch.zeros(3, 2, FEATURE, dtype=torch.float64), modulation.weights, residual, []
        )


@pytest.mark.parametrize("rows", [7, K.INR_BLOCK_ROWS])
def test_inference_decodes_the_same_rows_through_three_buffers(monkeypatch, rows):
    """Without a recorded graph the decoder runs the same blocks of rows (residual sums in place, three
    buffers taking turns): the numbers of the batched layers; a hook on a block gets the batched layers."""
    from cips3d.models import inr_decoder  # noqa: PLC0415 (spied on below)

    monkeypatch.setattr(K, "INR_BLOCK_ROWS", rows)
    calls = []
    decode = inr_decoder.decode_rows
    monkeypatch.setattr(inr_decoder, "decode_rows", lambda *args: calls.append(1) or decode(*args))
    decoder, styles = _decoder(seed=7)
    feature = torch.randn(3, 40, FEATURE, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    with torch.no_grad():
        ours = decoder(feature, styles)
        plain = _plain(decoder, feature, styles)
        assert calls == [1]
        torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-14)
        handle = decoder.blocks[0].register_forward_pre_hook(lambda module, inputs: None)
        assert torch.equal(decoder(feature, styles), plain) and calls == [1]
        handle.remove()
