"""`cips3d train2d --init`: fine-tuning a 2D model (here an official CIPS checkpoint) on new images."""

from __future__ import annotations

import argparse
import dataclasses

import torch

from cips3d.io.checkpoint2d import discriminator2d_from_official, load_generator2d
from cips3d.training.snapshot import load_snapshot
from cips3d.training.trainer2d import Train2DConfig, Trainer2D
from tests.cli.helpers import run
from tests.convert.cips_official import SIZE, official_d_state, official_state

OPTIONS = ["--batch-size", "2", "--snapshot-every", "2", "--quiet", "--device", "cpu"]


def official_file(tmp_path, discriminator: bool = False):
    path = tmp_path / "cips.pt"
    content = {"g_ema": official_state(), "args": argparse.Namespace(size=SIZE)}
    if discriminator:
        content["d"] = official_d_state()
    torch.save(content, path)
    return path


def test_the_run_starts_from_the_model_and_keeps_its_config(tmp_path, blob_folder):
    init = official_file(tmp_path)
    model = load_generator2d(init)
    config = Train2DConfig(generator="init", init=str(init), model=model.config.to_dict(), batch_size=2)
    trainer = Trainer2D(config, tmp_path / "run", blob_folder, progress=False)
    for key, tensor in model.state_dict().items():
        assert torch.equal(trainer.G.state_dict()[key], tensor) and torch.equal(
            trainer.G_ema.state_dict()[key], tensor
        )
    assert trainer.dataset[0].shape[-2:] == (SIZE, SIZE)  # the model's size decides the images'
    assert trainer.D.config.size == SIZE
    assert trainer.started_from.endswith("D from scratch (the file has no 'd')")


def test_the_official_discriminator_is_taken_when_it_fits_the_run(tmp_path, blob_folder):
    init = official_file(tmp_path, discriminator=True)
    model = load_generator2d(init).config.to_dict()
    config = Train2DConfig(generator="init", init=str(init), model=model, batch_size=2)
    trainer = Trainer2D(config, tmp_path / "run", blob_folder, progress=False)
    assert trainer.started_from == f"G and D from {init}"
    expected = discriminator2d_from_official(official_d_state()).state_dict()
    assert all(torch.equal(trainer.D.state_dict()[k], v) for k, v in expected.items())
    other = dataclasses.replace(config, d_reads_coordinates=True)  # a 5-channel D cannot take it
    trainer = Trainer2D(other, tmp_path / "run2", blob_folder, progress=False)
    assert "D from scratch (its discriminator reads 3 channels at 8 px" in trainer.started_from
    assert "this run's reads 5 channels at 8 px" in trainer.started_from
    broken = torch.load(init, weights_only=False)
    broken["d"]["convs.1.0.weight"] = torch.ones(1)  # extra first layers: the generator is still usable
    torch.save(broken, init)
    trainer = Trainer2D(config, tmp_path / "run3", blob_folder, progress=False)
    assert "D from scratch (this CIPS discriminator has extra first layers" in trainer.started_from


def test_fine_tuning_from_an_official_file_trains_and_resumes(capsys, tmp_path, blob_folder):
    init, out = official_file(tmp_path), tmp_path / "run"
    where = ["--data", str(blob_folder), "--outdir", str(out), "--init", str(init), *OPTIONS]
    code, text, err = run(capsys, "train2d", *where, "--max-steps", "2")
    assert code == 0, err
    assert "fine-tuning, G from" in text
    tuned, start = load_generator2d(out), load_generator2d(init)
    assert tuned.config == start.config and tuned.config.embedding_align_corners is False
    moved = max((tuned.state_dict()[k] - v).abs().max().item() for k, v in start.state_dict().items())
    assert 0 < moved < 0.5  # G_ema has moved a little from the official weights, not started afresh
    code, text, err = run(capsys, "train2d", *where, "--max-steps", "3", "--resume")
    assert code == 0, err
    snapshot = load_snapshot(out)
    assert snapshot.state.global_step == 3
    code, text, err = run(capsys, "convert", str(out), str(tmp_path / "back.pt"), "--to-official")
    assert code == 0 and "'g_ema' (" in text and "'d' (" in text, err
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    D = discriminator2d_from_official(back["d"])
    assert all(torch.equal(D.state_dict()[k], v) for k, v in snapshot.D.items())


def test_fine_tuning_mistakes_are_one_sentence(capsys, tmp_path, blob_folder):
    init = official_file(tmp_path)
    where = ["--data", str(blob_folder), "--outdir", str(tmp_path / "r"), "--max-steps", "1", *OPTIONS]
    code, _, err = run(capsys, "train2d", *where, "--init", str(init), "--preset", "cips-tiny")
    assert code == 2 and "--init brings its own generator" in err
    code, _, err = run(capsys, "train2d", *where, "--init", str(tmp_path / "nothing.pt"))
    assert code == 2 and "no 2D model, run or checkpoint" in err


def test_fid_arguments_are_checked_before_training(capsys, tmp_path, blob_folder):
    where = ["--data", str(blob_folder), "--outdir", str(tmp_path / "r"), "--max-steps", "1", *OPTIONS]
    code, _, err = run(capsys, "train2d", *where, "--inception", str(tmp_path / "x.pt"))
    assert code == 2 and "--inception is the network of --fid" in err
    code, _, err = run(capsys, "train2d", *where, "--fid", "4", "--inception", str(tmp_path / "x.pt"))
    assert code == 2 and "no Inception weights file at" in err and not (tmp_path / "r").exists()


def test_fine_tuning_a_capped_run_keeps_its_discriminator_without_being_told(capsys, tmp_path, blob_folder):
    """Fine-tuning from a run whose D is capped (here at 16) takes that cap, and so that D, unasked."""
    source = tmp_path / "source"
    where = ["--data", str(blob_folder), "--max-steps", "1", *OPTIONS]
    assert run(capsys, "train2d", *where, "--outdir", str(source), "--d-max-channels", "16")[0] == 0
    code, text, err = run(
        capsys, "train2d", *where, "--outdir", str(tmp_path / "tuned"), "--init", str(source)
    )
    assert code == 0 and f"G and D from {source}" in text, err
    assert load_snapshot(tmp_path / "tuned").config["d_max_channels"] == 16
    code, _, err = run(capsys, "train2d", *where[:2], "--max-steps", "2", *OPTIONS, "--outdir",
                       str(tmp_path / "tuned"), "--init", str(source), "--resume")  # fmt: skip
    assert code == 0, err
    # Told otherwise, the new cap wins (and the source's D, of other widths, is not taken).
    wider = ["--outdir", str(tmp_path / "wider"), "--init", str(source), "--d-max-channels", "32"]
    code, text, err = run(capsys, "train2d", *where, *wider)
    assert code == 0 and "D from scratch" in text, err
    assert load_snapshot(tmp_path / "wider").config["d_max_channels"] == 32
    # The same run written as one official file (convert --to-official writes its d too) keeps its D.
    assert run(capsys, "convert", str(source), str(tmp_path / "source.pt"), "--to-official")[0] == 0
    official = ["--outdir", str(tmp_path / "from-pt"), "--init", str(tmp_path / "source.pt")]
    code, text, err = run(capsys, "train2d", *where, *official)
    assert code == 0 and "G and D from" in text, text + err  # was: "D from scratch (... expected 512)"
    assert load_snapshot(tmp_path / "from-pt").config["d_max_channels"] == 16
