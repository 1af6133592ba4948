"""Our checkpoint format and official .pth files: round trips and every way a file can be wrong."""

from __future__ import annotations

import argparse
import copy
import json
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from cips3d import CheckpointError, ConfigError, Generator3D, PoseConfig, RenderConfig, generator_preset
from cips3d.io.checkpoint import (
    load_generator,
    official_state_dict,
    read_torch_file,
    resolve_official_config,
    save_generator,
)
from cips3d.io.checkpoint2d import load_generator2d
from cips3d.training.snapshot import load_snapshot
from cips3d.training.trainer import Trainer, TrainOptions
from tests.conftest import fixture_path
from tests.training.conftest import micro_config


def render(G):
    z = G.sample_latents(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        return G(*z, pose=PoseConfig.fixed(1.7, 1.5), render=RenderConfig(img_size=8, deterministic=True)).img


def test_save_and_load_round_trip(tmp_path, small_G):
    save_generator(small_G, tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    for path in (tmp_path / "ck", tmp_path / "ck" / "model.safetensors"):
        loaded = load_generator(path)
        assert loaded.config == small_G.config
        assert torch.equal(loaded.truncation_mean_inr, small_G.truncation_mean_inr)
        assert torch.equal(render(loaded), render(small_G))


def test_official_pth_with_config_or_preset(tmp_path, small_G):
    path = fixture_path("official", "small_G_state_dict.pt")
    G = load_generator(path, official_config=fixture_path("official", "small_config.json"))
    assert torch.equal(render(G), render(small_G))
    ffhq = Generator3D(generator_preset("ffhq"), initialize=False)
    zeros = {k: torch.zeros_like(v) for k, v in official_state_dict(ffhq).items()}  # not uninitialised memory
    torch.save(zeros, tmp_path / "G_ema.pth")
    assert load_generator(tmp_path / "G_ema.pth", preset="ffhq").config == generator_preset("ffhq")
    with pytest.raises(ConfigError, match="--preset"):
        load_generator(path)


def test_official_arguments_load_on_pytorch_without_scoped_safe_globals(tmp_path, monkeypatch):
    """torch 2.4 has no `safe_globals` scope: the Namespace official training files keep their
    arguments in is then allowed through the process-wide list instead."""
    path = tmp_path / "train.pt"
    torch.save({"g_ema": {"w": torch.ones(2)}, "args": argparse.Namespace(size=32)}, path)
    monkeypatch.delattr(torch.serialization, "safe_globals", raising=False)  # torch 2.4 has none
    content = read_torch_file(path)
    assert content["args"].size == 32 and torch.equal(content["g_ema"]["w"], torch.ones(2))


def test_ddp_prefix_is_dropped(tmp_path, small_G):
    state = {f"module.{k}": v for k, v in official_state_dict(small_G).items()}
    torch.save(state, tmp_path / "ddp.pth")
    G = load_generator(tmp_path / "ddp.pth", official_config=fixture_path("official", "small_config.json"))
    assert torch.equal(render(G), render(small_G))


class NotATensor:
    pass


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no checkpoint file"),
        (
            lambda p: p.write_bytes(b"definitely not a zip"),
            r"not a readable PyTorch state dict \(not a PyTorch file, or a truncated one\)",
        ),
        (
            lambda p: torch.save({"a": NotATensor()}, p),
            r"NotATensor object, and cips3d loads tensors only, never code",
        ),
        (lambda p: torch.save([torch.zeros(1)], p), "plain state dict"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("img0.png", b"x"), "a dataset zip is --data"),
    ],
    ids=["missing", "garbage", "pickled-code", "not-a-dict", "dataset-zip"],
)
def test_bad_official_files_raise_one_clear_error(tmp_path, make, message):
    path = tmp_path / "G.pth"
    make(path)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path, preset="tiny")


def test_bad_checkpoint_folders_raise_one_clear_error(tmp_path, tiny_G):
    folder = tmp_path / "ck"
    save_generator(tiny_G, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_generator(folder)
    save_file({"x": torch.zeros(2)}, str(weights))
    with pytest.raises(CheckpointError, match="missing"):
        load_generator(folder)
    (folder / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not a readable cips3d config"):
        load_generator(folder)
    (folder / "config.json").write_text(json.dumps({"format": "cips3d.Generator3D", "format_version": 1}))
    with pytest.raises(CheckpointError, match="is damaged: it needs a format_version number and a generator"):
        load_generator(folder)
    (folder / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CheckpointError, match="not a cips3d generator config"):
        load_generator(folder)
    with pytest.raises(CheckpointError, match="without config.json"):
        load_generator(tmp_path)
    save_file({"w": torch.zeros(1, 4)}, str(tmp_path / "w.safetensors"))  # fitted styles, not a model
    for load in (load_generator, load_generator2d):
        with pytest.raises(CheckpointError, match="w.safetensors has no config.json beside it"):
            load(tmp_path / "w.safetensors")


def test_a_preset_for_a_model_that_carries_its_config_is_refused(tmp_path, tiny_G):
    save_generator(tiny_G, tmp_path / "ck")
    for path in (tmp_path / "ck", tmp_path / "ck" / "model.safetensors"):
        with pytest.raises(ConfigError, match="carries its own config; --preset and --official-config"):
            load_generator(path, preset="ffhq")


def test_weights_of_another_config_are_refused(tmp_path, tiny_G, small_G):
    save_generator(tiny_G, tmp_path / "ck")
    small = tmp_path / "small"
    save_generator(small_G, small)
    (tmp_path / "ck" / "config.json").write_bytes((small / "config.json").read_bytes())
    with pytest.raises(CheckpointError, match="wrongly shaped"):
        load_generator(tmp_path / "ck")


def test_a_training_run_or_snapshot_loads_its_g_ema(tmp_path, blob_folder):
    options = TrainOptions(progress=False, max_steps=2)
    trainer = Trainer(micro_config(), tmp_path / "run", blob_folder, options)
    trainer.run()
    for path in (tmp_path / "run", tmp_path / "run" / "snapshots" / "step-000000002"):
        G = load_generator(path)
        expected = trainer.G_ema.state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in G.state_dict().items())
    with pytest.raises(ConfigError, match="is a CIPS-3D training run, not a 2D one; the 3-D commands"):
        load_generator2d(tmp_path / "run")
    (tmp_path / "run" / "snapshots" / "step-000000002" / "optimizers.pt").write_bytes(b"damaged")
    assert load_generator(tmp_path / "run").config == trainer.G_ema.config  # rendering needs G_ema only
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_snapshot(tmp_path / "run")  # a resume needs the optimizers
    ema = tmp_path / "run" / "snapshots" / "step-000000002" / "G_ema.safetensors"
    save_file({k: v * float("nan") for k, v in load_file(str(ema)).items()}, str(ema))  # a diverged run
    with pytest.raises(CheckpointError, match=r"step-000000002 \(G_ema\) holds NaN or infinite weights"):
        load_generator(tmp_path / "run")


def test_a_run_before_its_first_snapshot_is_named_as_such(tmp_path):
    """A run whose first snapshot failed holds run.json and logs only; it was called "a folder without
    config.json, so not a cips3d checkpoint"."""
    (tmp_path / "run" / "logs").mkdir(parents=True)
    (tmp_path / "run" / "run.json").write_text("{}")
    for load in (load_generator, load_generator2d):
        with pytest.raises(
            CheckpointError, match="run holds no complete training snapshot: its run stopped before"
        ):
            load(tmp_path / "run")


def test_a_model_folder_holding_a_run_record_still_loads_as_a_model(tmp_path, tiny_G):
    save_generator(tiny_G, tmp_path / "model")
    (tmp_path / "model" / "run.json").write_text("{}")  # kept beside the model for provenance, say
    assert load_generator(tmp_path / "model").config == tiny_G.config


def test_weights_holding_nan_are_refused_by_name(tmp_path, tiny_G):
    state = official_state_dict(tiny_G)
    name = next(iter(state))
    state[name] = torch.full_like(state[name], float("nan"))
    torch.save(state, tmp_path / "diverged.pth")
    with pytest.raises(CheckpointError, match=f"holds NaN or infinite weights \\(first: {name}\\)"):
        load_generator(tmp_path / "diverged.pth", preset="tiny")
    save_generator(tiny_G, tmp_path / "ours")
    weights = load_file(str(tmp_path / "ours" / "model.safetensors"))
    save_file({k: v * float("inf") for k, v in weights.items()}, str(tmp_path / "ours" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="holds NaN or infinite weights"):
        load_generator(tmp_path / "ours")
    diverged = copy.deepcopy(tiny_G)
    with torch.no_grad():
        next(diverged.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="render black images; nothing was written to"):
        save_generator(diverged, tmp_path / "nan")  # was written, to be refused when loaded
    assert not (tmp_path / "nan").exists()


def test_a_device_this_machine_lacks_is_one_sentence(tmp_path, tiny_G):
    save_generator(tiny_G, tmp_path / "m")
    for device in ("cuda:99", "tpu"):  # no machine has a 100th GPU
        with pytest.raises(ConfigError) as raised:
            load_generator(tmp_path / "m", device=device)
        text = str(raised.value)
        assert text.startswith(f"device '{device}' was asked for") or text.startswith(
            f"unknown device '{device}'"
        )
    assert load_generator(tmp_path / "m", device="auto").device.type in ("cpu", "cuda")


def _official_kwargs_without(section: str, key: str) -> dict:
    kwargs = generator_preset("tiny").to_official_kwargs()
    del kwargs[section][key]
    return kwargs


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "must hold a JSON object of the constructor kwargs"),  # JSON null
        ([1, 2], "must hold a JSON object of the constructor kwargs"),
        ({"constructor_kwargs": 5}, "must be a JSON object holding the objects nerf_cfg, inr_cfg"),
        ({**generator_preset("tiny").to_official_kwargs(), "mapping_nerf_cfg": [1]}, "must be a JSON object"),
        (_official_kwargs_without("mapping_nerf_cfg", "z_dim"), "lack the key 'z_dim'"),
        (_official_kwargs_without("inr_cfg", "style_dim"), "lack the key 'style_dim'"),
    ],
    ids=["null", "list", "number-kwargs", "list-section", "no-z-dim", "no-style-dim"],
)
def test_a_malformed_official_config_is_one_config_error(tmp_path, content, message):
    """A hand-edited --official-config failed with KeyError or AttributeError tracebacks."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message):
        resolve_official_config(None, path)


def test_an_official_file_without_a_preset_names_the_preset_its_weights_fit(tmp_path, tiny_G):
    torch.save(official_state_dict(tiny_G), tmp_path / "tiny.pth")
    with pytest.raises(
        ConfigError,
        match=r"needs --preset \(e\.g\. ffhq\) or --official-config; its weights fit --preset tiny\.",
    ):
        load_generator(tmp_path / "tiny.pth")  # `cips3d info` knew; sample only said "e.g. ffhq"
