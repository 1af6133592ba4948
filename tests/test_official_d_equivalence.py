"""Every case of the official discriminator fixture (fixtures/official-d), replayed with injected draws.

Definition of correct (fixture README §6): logits, losses and norms within 1e-5; features within 5e-5;
gradient tensors within 1e-4 of each tensor's max |value| (exactly-zero references within 1e-9);
DiffAugment images bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from cips3d.convert.official_d import from_official_d, key_table, ours_name
from cips3d.models.discriminator import Discriminator
from cips3d.training.augment import AugmentDraws, DiffAugmentConfig, draw_diff_augment
from cips3d.training.losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from tests.conftest import load_fixture, small_d_config

INPUTS = load_fixture("official-d", "inputs.pt")
OUTPUTS = load_fixture("official-d", "outputs.pt")
CASES = list(INPUTS["cases"].values())
AUGMENT = DiffAugmentConfig()  # the official 'color,translation,cutout', cutout 0.2
OFFICIAL_DRAWS_PER_CALL = 7
ATOL = 1e-5
FEATURE_ATOL = 5e-5
GRAD_RTOL = 1e-4
ZERO_ATOL = 1e-9


@pytest.fixture(scope="module")
def small_D() -> Discriminator:
    config = small_d_config()
    D = Discriminator(config, initialize=False)
    D.load_state_dict(
        from_official_d(load_fixture("official-d", "small_D_state_dict.pt"), config, D.state_dict())
    )
    return D


def case_draws(case) -> list[list[AugmentDraws]]:
    """The recorded draws grouped per D call (aux cases: [main, aux]; r1 cases: one call each)."""
    values = [d["value"] for d in case["rng_draws"]]
    per_call = [
        AugmentDraws.from_official_order(values[i : i + OFFICIAL_DRAWS_PER_CALL], AUGMENT)
        for i in range(0, len(values), OFFICIAL_DRAWS_PER_CALL)
    ]
    calls = 2 if case["use_aux_disc"] else 1
    return [per_call[i : i + calls] for i in range(0, len(per_call), calls)]


def run_D(D, images, case, draws):
    """The official routing: with use_aux_disc the first half goes to main and the second to aux."""
    augment = AUGMENT if case["diffaug"] else None
    if not case["use_aux_disc"]:
        return D(images, alpha=case["alpha"], augment=augment, draws=draws)
    half = images.shape[0] // 2
    return D(images[:half], images[half:], alpha=case["alpha"], augment=augment, draws=draws)


@contextmanager
def recorded(D, names):
    """Record the fixture's features ('main_disc.convs.16:in' = input of that official module)."""
    store, handles = {}, []
    for name in names:
        module_name, kind = name.rsplit(":", 1)
        module = D.get_submodule(ours_name(module_name))

        def hook(_module, args, output, name=name, kind=kind):
            store[name] = (args[0] if kind == "in" else output).detach().clone()

        handles.append(module.register_forward_hook(hook))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def max_err(actual, expected) -> float:
    return (actual - expected).abs().max().item()


def assert_grad_close(actual, expected, name):
    scale = expected.abs().max().item()
    tol = ZERO_ATOL if scale == 0 else GRAD_RTOL * scale
    assert max_err(actual, expected) <= tol, f"{name}: error {max_err(actual, expected):.2e} > {tol:.1e}"


@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "eval"], ids=lambda c: c["key"])
def test_eval_case(small_D, case):
    ref = OUTPUTS[case["key"]]
    draws = case_draws(case)
    features = ref.get("features", {})
    with torch.no_grad(), recorded(small_D, features) as got:
        logits = run_D(small_D, case["input"], case, draws[0] if draws else None)
    assert logits.shape == ref["logits"].shape
    assert max_err(logits, ref["logits"]) <= ATOL
    assert set(got) == set(features)
    for name, value in features.items():
        if name.endswith(f".conv_in.{case['size']}:in"):  # the augmented image: bit for bit
            assert torch.equal(got[name], value), name
        else:
            assert max_err(got[name], value) <= FEATURE_ATOL, name


def test_fixture_checks_the_augmentation():
    """Guard on the fixture: the diffaug cases' augmented images really differ from their inputs."""
    case = INPUTS["cases"]["diffaug_s32_aux_a1.0"]
    augmented = OUTPUTS[case["key"]]["features"]["main_disc.conv_in.32:in"]
    assert (augmented - case["input"][:3]).abs().max() > 0.1


def d_step(D, case, draws):
    """The official D step (train.py): R1 on reals, logistic loss, r1-only grads, backward, norm."""
    D.zero_grad(set_to_none=True)
    real = case["input"].clone().requires_grad_()
    r_preds = run_D(D, real, case, draws[0])
    (grad_real,) = torch.autograd.grad(r_preds.sum(), real, retain_graph=True)
    r1 = r1_penalty(r_preds, real, gamma=INPUTS["r1_lambda"])
    g_preds = run_D(D, case["fake_input"], case, draws[1])
    d_loss = d_logistic_loss(r_preds, g_preds, r1)
    params = dict(D.named_parameters())
    r1_grads = torch.autograd.grad(
        r1.mean(), list(params.values()), retain_graph=True, allow_unused=True, materialize_grads=True
    )
    d_loss.backward()
    grads = {name: p.grad.clone() for name, p in params.items() if p.grad is not None}
    norm = torch.nn.utils.clip_grad_norm_(D.parameters(), INPUTS["grad_clip"])
    out = {"r_preds": r_preds, "grad_real": grad_real, "r1_penalty": r1, "r1_penalty_mean": r1.mean()}
    out |= {"g_preds": g_preds, "d_loss": d_loss, "D_total_grad_norm": norm}
    out |= {
        "softplus_fake_mean": F.softplus(g_preds).mean(),
        "softplus_neg_real_mean": F.softplus(-r_preds).mean(),
    }
    return out, grads, dict(zip(params, r1_grads, strict=True))


def g_loss_step(D, case, draws):
    """G loss with D frozen, on the same fakes: returns logits, loss and d loss / d fakes."""
    D.requires_grad_(False)
    try:
        fake = case["fake_input"].clone().requires_grad_()
        g_preds = run_D(D, fake, case, draws)
        g_loss = g_nonsaturating_loss(g_preds)
        (grad_fake,) = torch.autograd.grad(g_loss, fake)
    finally:
        D.requires_grad_(True)
    return {"g_preds_G": g_preds, "g_loss": g_loss, "grad_fake": grad_fake}


@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "r1"], ids=lambda c: c["key"])
def test_training_step_case(small_D, case):
    ref = OUTPUTS[case["key"]]
    draws = case_draws(case) if case["diffaug"] else [None, None, None]
    assert len(draws) == 3  # D(real), D(fake) in the D step, D(fake) in the G loss
    out, grads, r1_grads = d_step(small_D, case, draws)
    out |= g_loss_step(small_D, case, draws[2])
    for name in ("r_preds", "g_preds", "g_preds_G", "d_loss", "g_loss", "r1_penalty_mean"):
        assert max_err(out[name], ref[name]) <= ATOL, name
    for name in ("softplus_fake_mean", "softplus_neg_real_mean", "D_total_grad_norm"):
        assert max_err(out[name], ref[name]) <= ATOL, name
    for name in ("grad_real", "grad_fake", "r1_penalty"):
        assert_grad_close(out[name], ref[name], name)
    to_ours = {row.official: row.ours for row in key_table(small_D.config)}
    # Exactly the parameters the official step gives a gradient get one here.
    assert {to_ours[k] for k in ref["D_grads"]} == set(grads)
    for key in ref["D_grads"]:
        assert_grad_close(grads[to_ours[key]], ref["D_grads"][key], key)
        assert_grad_close(r1_grads[to_ours[key]], ref["D_grads_r1_only"][key], f"r1-only {key}")
    small_D.zero_grad(set_to_none=True)


def test_r1_gives_exactly_zero_bias_gradients_as_in_the_fixture(small_D):
    """The fixture's exactly-zero r1-only bias gradients (leaky-ReLU is piecewise linear)."""
    ref = OUTPUTS["r1_s32_aux_a1.0"]["D_grads_r1_only"]
    zero = [k for k, v in ref.items() if not v.any()]
    assert zero and all(k.endswith("bias") for k in zero)


@pytest.mark.parametrize("case", [c for c in CASES if c["diffaug"]], ids=lambda c: c["key"])
def test_seeded_generator_reproduces_the_official_draws(case):
    """The same-seed route: our draw order and ranges equal the official ones."""
    generator = torch.Generator().manual_seed(case["seed"])
    batch = 3
    recorded_values = [d["value"] for d in case["rng_draws"]]
    drawn = []
    for _ in range(len(recorded_values) // OFFICIAL_DRAWS_PER_CALL):
        d = draw_diff_augment(AUGMENT, batch, (case["size"], case["size"]), generator=generator)
        drawn += [getattr(d, name) for name in AUGMENT.draw_names()]
    assert all(torch.equal(a, b) for a, b in zip(drawn, recorded_values, strict=True))
