"""The training loop on the tiny networks: a short run, exact resume, stage hand-off, fine-tuning with a
frozen NeRF, and stopping on non-finite losses."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import signal
import types

import pytest
import torch

from cips3d import CheckpointError, Generator3D, generator_preset
from cips3d.convert.official_d import to_official_d
from cips3d.errors import ConfigError, UserError
from cips3d.io.checkpoint import official_state_dict, save_generator
from cips3d.metrics.evaluate import evaluate
from cips3d.rendering.cameras import Camera
from cips3d.training import trainer as trainer_module
from cips3d.training.config import StageConfig, train_preset
from cips3d.training.monitor import SilentMonitor
from cips3d.training.run_lock import run_lock
from cips3d.training.snapshot import list_snapshots, load_snapshot
from cips3d.training.trainer import Trainer, TrainingStopped, TrainOptions, nerf_modules
from cips3d.training.warm_start import warm_start
from tests.conftest import write_blobs
from tests.training.conftest import count_fid_network_loads, micro_config

QUIET = TrainOptions(progress=False)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_short_run_trains_and_writes_previews_logs_and_snapshots(tmp_path, blob_folder):
    trainer = Trainer(micro_config(), tmp_path / "run", blob_folder, QUIET)
    g0, d0 = weights(trainer.G), weights(trainer.D)
    state = trainer.run()
    assert state.global_step == 4 and state.images_seen == 8
    assert not same(g0, weights(trainer.G)) and not same(d0, weights(trainer.D))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["swd"] == r["swd"] and r["swd"] > 0 for r in records)  # finite scores
    snap = load_snapshot(tmp_path / "run")
    assert snap.state.global_step == 4 and snap.state.skipped_steps == 0
    assert same(snap.G, weights(trainer.G)) and same(snap.D, weights(trainer.D))
    assert (tmp_path / "run" / "previews" / "step-000000002" / "G_ema_flip.png").is_file()
    assert list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))


def test_the_progress_bar_ends_where_the_run_will(tmp_path, blob_folder, monkeypatch):
    totals = []
    monitor = trainer_module.Monitor

    def recording(log_dir, total_steps, initial_step, enabled=True, device=None):
        totals.append((total_steps, initial_step))
        return monitor(log_dir, total_steps, initial_step, enabled, device)

    monkeypatch.setattr(trainer_module, "Monitor", recording)
    Trainer(micro_config(), tmp_path / "run", blob_folder, dataclasses.replace(QUIET, max_steps=2)).run()
    Trainer.from_snapshot(tmp_path / "run", None, dataclasses.replace(QUIET, max_steps=3)).run()
    Trainer.from_snapshot(tmp_path / "run", None, QUIET).run()
    assert totals == [(2, 0), (3, 2), (sum(s.steps for s in micro_config().stages), 3)]


def test_n_steps_then_resume_then_n_steps_equals_2n_steps_bit_for_bit(tmp_path, blob_folder):
    config = micro_config(StageConfig("r16", 16, 6, 2, 2e-4, 2e-3, nerf_noise_steps=4), snapshot_every=100)
    straight = Trainer(config, tmp_path / "a", blob_folder, QUIET)
    straight.run()
    first = Trainer(config, tmp_path / "b", blob_folder, TrainOptions(progress=False, max_steps=3))
    assert first.run().global_step == 3
    resumed = Trainer.from_snapshot(tmp_path / "b", None, QUIET)
    assert resumed.state.global_step == 3
    resumed.run()
    for name in ("G", "G_ema", "D"):
        assert same(weights(getattr(straight, name)), weights(getattr(resumed, name))), name
    for name in ("G", "D"):
        a, b = straight.optimizers[name].state_dict(), resumed.optimizers[name].state_dict()
        assert all(same(a["state"][i], b["state"][i]) for i in a["state"]), name
    assert torch.equal(straight.random.g.get_state(), resumed.random.g.get_state())


def test_data_loading_workers_do_not_change_the_run(tmp_path, blob_folder):
    """`--workers auto` uses worker processes beside a GPU: the batches, hence the run, stay the same."""
    config = micro_config(snapshot_every=100, preview_every=100)
    runs = []
    for workers in (0, 2):
        options = dataclasses.replace(QUIET, workers=workers, max_steps=3)
        trainer = Trainer(config, tmp_path / f"w{workers}", blob_folder, options)
        trainer.run()
        runs.append(trainer)
    for name in ("G", "D"):
        assert same(weights(getattr(runs[0], name)), weights(getattr(runs[1], name))), name


def test_the_next_stage_starts_from_the_best_snapshot(tmp_path, blob_folder, monkeypatch):
    scores = iter([3.0, 1.0, 2.0, 5.0, 5.0, 5.0])  # the best of stage r16 is its step 2, not the last
    monkeypatch.setattr(trainer_module, "snapshot_score", lambda *args, **kwargs: next(scores))
    stages = (
        StageConfig("r16", 16, 3, 2, 2e-4, 2e-3, start_from="best"),
        StageConfig("r32", 32, 2, 2, 2e-4, 2e-3),
    )
    config = micro_config(*stages, snapshot_every=1)
    state = Trainer(config, tmp_path / "run", blob_folder, TrainOptions(progress=False, max_steps=3)).run()
    # A limit at a stage's end stops there: one snapshot of step 3, of the stage that ended (the hand-off
    # used to write a second one, of the next stage, under the same name).
    assert (state.stage, state.stage_step) == (0, 3)
    assert [r["reason"] for r in state.history if r["step"] == 3] == ["end of stage r16"]
    best = min(state.history, key=lambda r: r["swd"])
    assert best["step"] == 2
    handed = Trainer.from_snapshot(tmp_path / "run", None, TrainOptions(progress=False, max_steps=4))
    assert handed.run().stage_started_from == f"step-{best['step']:09d}"
    source = load_snapshot(tmp_path / "run" / "snapshots" / f"step-{best['step']:09d}")
    assert same(source.G_ema, weights(handed.G_ema))  # the EMA starts at the stage's step 1 (ema_start)
    final = Trainer.from_snapshot(tmp_path / "run", None, QUIET).run()
    assert final.stage == 1 and final.stage_step == 2 and final.global_step == 5


def test_finetuning_with_a_frozen_nerf_keeps_it_bit_identical(tmp_path, blob_folder):
    base = Trainer(micro_config(), tmp_path / "base", blob_folder, QUIET)
    base.run()
    stage = StageConfig(
        "ft", 16, 3, 2, 1e-4, 5e-4, aux=False, diffaug=True, freeze_nerf=True, nerf_noise_steps=0
    )
    tuned = Trainer(micro_config(stage), tmp_path / "ft", blob_folder, QUIET)
    assert "snapshot" in tuned.warm_start(tmp_path / "base")
    nerf_ema = [weights(m) for m in nerf_modules(tuned.G_ema)]
    decoder = weights(tuned.G.decoder)
    tuned.run()
    for module_g, module_ema, expected in zip(
        nerf_modules(tuned.G), nerf_modules(tuned.G_ema), nerf_ema, strict=True
    ):
        assert same(weights(module_g), expected) and same(weights(module_ema), expected)
    assert not same(decoder, weights(tuned.G.decoder))


def test_non_finite_losses_stop_the_run_with_a_snapshot(tmp_path, blob_folder):
    trainer = Trainer(micro_config(max_bad_steps=2), tmp_path / "run", blob_folder, QUIET)
    with torch.no_grad():
        trainer.D.main.out_linear.weight.fill_(float("nan"))
    g0 = weights(trainer.G)
    with pytest.raises(TrainingStopped, match="2 steps in a row"):
        trainer.run()
    assert trainer.state.skipped_steps >= 2 and same(g0, weights(trainer.G))
    assert [p.name for p in list_snapshots(tmp_path / "run" / "snapshots")] == ["step-000000002"]


def test_sigterm_finishes_the_step_and_stops_with_a_snapshot(tmp_path, blob_folder, monkeypatch):
    trainer = Trainer(micro_config(snapshot_every=100), tmp_path / "run", blob_folder, QUIET)
    iteration = trainer._iteration

    def signalled_second_step(stage, reals):
        if trainer.state.global_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return iteration(stage, reals)

    monkeypatch.setattr(trainer, "_iteration", signalled_second_step)
    before = signal.getsignal(signal.SIGTERM)
    assert trainer.run().global_step == 2  # of 4: the step under way finished, then the run stopped
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["reason"] == "stopped by signal" and records[-1]["step"] == 2
    assert load_snapshot(tmp_path / "run").state.global_step == 2
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back


def test_a_resumed_run_cannot_be_warm_started(tmp_path, blob_folder):
    trainer = Trainer(
        micro_config(), tmp_path / "run", blob_folder, TrainOptions(progress=False, max_steps=1)
    )
    trainer.run()
    resumed = Trainer.from_snapshot(tmp_path / "run", None, QUIET)
    with pytest.raises(Exception, match="cannot be warm-started"):
        resumed.warm_start(tmp_path / "run")
    assert copy.deepcopy(resumed.state).global_step == 1


def test_a_new_run_refuses_a_folder_that_holds_one(tmp_path, blob_folder):
    Trainer(micro_config(), tmp_path / "run", blob_folder, TrainOptions(progress=False, max_steps=1)).run()
    before = [p.name for p in list_snapshots(tmp_path / "run" / "snapshots")]
    with pytest.raises(ConfigError, match="already holds a run; continue it with cips3d train --resume"):
        Trainer(micro_config(), tmp_path / "run", blob_folder, QUIET)
    assert [p.name for p in list_snapshots(tmp_path / "run" / "snapshots")] == before
    assert Trainer.from_snapshot(tmp_path / "run", None, QUIET).state.global_step == 1  # a resume may
    with pytest.raises(
        ConfigError, match="lies inside the run folder .*run, whose logs and files it would mix"
    ):
        Trainer(micro_config(), tmp_path / "run" / "logs", blob_folder, QUIET)  # was accepted


def test_a_resume_that_takes_no_step_rewrites_nothing_and_the_log_follows_the_snapshot(tmp_path, blob_folder):
    run = tmp_path / "run"
    Trainer(micro_config(snapshot_every=1), run, blob_folder, dataclasses.replace(QUIET, max_steps=2)).run()
    log = run / "metrics.jsonl"
    lines = log.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    newest = list_snapshots(run / "snapshots")[-1]
    written = (newest / "state.json").stat().st_mtime_ns
    log.write_text(lines[0] + "\n")  # killed between step 2's snapshot and its line
    resumed = Trainer.from_snapshot(run, None, QUIET)
    resumed.request_stop()  # stops before its first step, as a --minutes limit that ran out at once
    state = resumed.run()
    assert state.global_step == 2 and [r["step"] for r in state.history] == [1, 2]  # was [1, 2, 2]
    assert (newest / "state.json").stat().st_mtime_ns == written  # not written a second time
    assert log.read_text().splitlines() == lines  # the lost line is back, none twice


def test_a_run_folder_in_use_by_another_training_process_is_refused_before_anything_is_written(
    tmp_path, blob_folder
):
    run = tmp_path / "run"
    Trainer(micro_config(), run, blob_folder, dataclasses.replace(QUIET, max_steps=1)).run()
    record = (run / "run.json").read_text()
    resumed = Trainer.from_snapshot(run, None, QUIET)
    with run_lock(run), pytest.raises(UserError, match="is being trained by another process"):
        resumed.run()  # two runs in one folder deleted each other's temporary snapshots
    assert (run / "run.json").read_text() == record and resumed.state.global_step == 1
    assert [p.name for p in list_snapshots(run / "snapshots")] == ["step-000000001"]


def test_a_run_whose_run_json_is_gone_still_refuses_other_images(tmp_path, blob_folder):
    run = tmp_path / "run"
    Trainer(micro_config(), run, blob_folder, dataclasses.replace(QUIET, max_steps=1)).run()
    (run / "run.json").unlink()  # as its "cannot be read" error advises for a damaged one
    write_blobs(tmp_path / "other", count=20, seed=5)
    resumed = Trainer.from_snapshot(run, tmp_path / "other", QUIET)
    with pytest.raises(UserError, match="are not the ones .* was trained on \\(other files or sizes\\)"):
        resumed.run()  # trained on the other images before: the check lived in run.json alone
    assert (
        Trainer.from_snapshot(run, blob_folder, dataclasses.replace(QUIET, max_steps=2)).run().global_step
        == 2
    )


def test_a_metrics_log_that_cannot_be_appended_to_does_not_stop_the_run(
    tmp_path, blob_folder, monkeypatch, capsys
):
    def refused(path, record):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(trainer_module, "_append_jsonl", refused)
    state = Trainer(micro_config(snapshot_every=1), tmp_path / "run", blob_folder, QUIET).run()
    assert (
        state.global_step == 4 and load_snapshot(tmp_path / "run").state.global_step == 4
    )  # was: stopped at 1
    said = capsys.readouterr().out
    assert (
        "the snapshot step-000000001 is complete, but its line in metrics.jsonl could not be written" in said
    )


def test_a_start_of_another_architecture_names_both(tmp_path, blob_folder):
    Trainer(micro_config(), tmp_path / "run", blob_folder, dataclasses.replace(QUIET, max_steps=1)).run()
    ffhq = train_preset("ffhq-finetune")
    with pytest.raises(
        CheckpointError, match="holds the tiny generator, this run's preset the ffhq generator"
    ):
        warm_start(tmp_path / "run", ffhq, None, None, None)  # said "another generator architecture" only
    save_generator(Generator3D(generator_preset("tiny")), tmp_path / "model")
    with pytest.raises(CheckpointError, match="model holds the tiny generator, this run's preset the ffhq"):
        warm_start(tmp_path / "model", ffhq, None, None, None)
    # one of our files given by name: its model folder, or (a snapshot's file) the folder to give instead
    with pytest.raises(CheckpointError, match="model holds the tiny generator, this run's preset the ffhq"):
        warm_start(tmp_path / "model" / "model.safetensors", ffhq, None, None, None)
    (snap,) = list_snapshots(tmp_path / "run" / "snapshots")
    with pytest.raises(CheckpointError, match=f"G.safetensors is one file of the training snapshot {snap}"):
        warm_start(snap / "G.safetensors", ffhq, None, None, None)  # was: "official checkpoint ..."


def test_warm_start_from_official_files(tmp_path, blob_folder):
    """An official run folder (generator.pth, G_ema.pth, discriminator.pth) seeds G, G_ema and D."""
    source = Trainer(micro_config(seed=7), tmp_path / "src", blob_folder, QUIET)
    official = tmp_path / "official"
    official.mkdir()
    torch.save(official_state_dict(source.G), official / "generator.pth")
    torch.save(official_state_dict(source.G_ema), official / "G_ema.pth")
    torch.save(to_official_d(source.D.state_dict(), source.D.config), official / "discriminator.pth")
    target = Trainer(micro_config(), tmp_path / "dst", blob_folder, QUIET)
    assert "discriminator.pth" in target.warm_start(official)
    for name in ("G", "D"):
        theirs, ours = weights(getattr(source, name)), weights(getattr(target, name))
        assert all(torch.equal(theirs[k], ours[k]) for k in theirs if "truncation" not in k), name
    torch.save(official_state_dict(source.G_ema), tmp_path / "single.pth")
    assert "official generator file" in target.warm_start(tmp_path / "single.pth")
    tiny_ffhq = Trainer(micro_config(), tmp_path / "x", blob_folder, QUIET)
    tiny_ffhq.config = dataclasses.replace(tiny_ffhq.config, generator=generator_preset("ffhq"))
    with pytest.raises(CheckpointError):
        tiny_ffhq.warm_start(tmp_path / "single.pth")


def test_tf32_option_wraps_every_step_of_the_run_and_the_switch_is_left_as_found(
    tmp_path, blob_folder, monitor_tf32
):
    options = dataclasses.replace(QUIET, tf32=True, max_steps=2)
    Trainer(micro_config(), tmp_path / "run", blob_folder, options).run()
    assert monitor_tf32.blocks == [(True, torch.device("cpu"))]
    assert monitor_tf32.steps_inside == 2 and monitor_tf32.steps_outside == 0 and not monitor_tf32.inside


@pytest.fixture
def monitor_tf32(monkeypatch):
    """Replaces the trainer's TF32 switch (a no-op on CPUs) by a recorder, and counts D steps in and
    out of its block."""
    record = types.SimpleNamespace(blocks=[], inside=False, steps_inside=0, steps_outside=0)

    @contextlib.contextmanager
    def recording_switch(enabled, device):
        record.blocks.append((enabled, torch.device(device)))
        record.inside = True
        try:
            yield
        finally:
            record.inside = False

    original_d_step = trainer_module.d_step

    def counting_d_step(*args, **kwargs):
        if record.inside:
            record.steps_inside += 1
        else:
            record.steps_outside += 1
        return original_d_step(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "tf32_matmuls", recording_switch)
    monkeypatch.setattr(trainer_module, "d_step", counting_d_step)
    return record


def test_fid_scores_every_snapshot_as_cips3d_metrics_would(tmp_path, blob_folder, monkeypatch):
    """--fid: each snapshot's record has the FID that `evaluate` gives its G_ema (the run's renderer
    and camera prior), and TensorBoard gets eval/fid. The FID network is loaded once per run."""
    loads = count_fid_network_loads(monkeypatch)
    config = micro_config()
    options = TrainOptions(progress=False, max_steps=4, fid_images=4)
    trainer = Trainer(config, tmp_path / "run", blob_folder, options)
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) >= 2 and all(r["fid"] > 0 for r in records)
    assert len(loads) == 1
    stage = config.stages[0]
    render = trainer._eval_render(stage)
    direct = evaluate(trainer.G_ema, blob_folder, ["fid"], 4, stage.img_size, render=render, pose=config.pose)
    direct = direct["metrics"]["fid"]
    assert records[-1]["fid"] == pytest.approx(direct, rel=1e-9)


def test_images_that_change_between_stages_stop_the_run(tmp_path, blob_folder, monkeypatch):
    """Each stage reads the data again at its size; other images then (a preview written into the data
    folder, a file deleted) would silently change the run, so it stops and says why."""
    data = tmp_path / "data"
    shutil.copytree(blob_folder, data)
    stages = (StageConfig("r16", 16, 2, 2, 2e-4, 2e-3), StageConfig("r32", 32, 2, 2, 2e-4, 2e-3))
    begin = Trainer._begin_stage

    def begin_and_delete(self, stage):
        if stage.name == "r32":
            (data / "000.png").unlink()
        begin(self, stage)

    monkeypatch.setattr(Trainer, "_begin_stage", begin_and_delete)
    trainer = Trainer(
        micro_config(*stages), tmp_path / "run", data, TrainOptions(progress=False, max_steps=3)
    )
    with pytest.raises(UserError, match=f"the images in {data} changed during the run"):
        trainer.run()


def test_previews_render_with_the_runs_rays_and_mean_camera(tmp_path, blob_folder, monkeypatch):
    """A run with its own field of view, ray bounds and mean pose previews with them (previews once used
    the defaults, so they showed a camera the run never trained from)."""
    config = micro_config()
    pose = dataclasses.replace(config.pose, yaw_mean=1.3, pitch_mean=1.4, radius=1.5)
    config = dataclasses.replace(config, fov=20.0, ray_start=1.3, ray_end=1.7, num_steps=6, pose=pose)
    trainer = Trainer(config, tmp_path / "run", blob_folder, QUIET)
    seen, synthesis = [], Generator3D.synthesis

    def recording(self, styles, camera, render=None, **kwargs):
        seen.append((render, camera))
        return synthesis(self, styles, camera, render, **kwargs)

    monkeypatch.setattr(Generator3D, "synthesis", recording)
    trainer._preview(config.stages[0], SilentMonitor())
    assert len(seen) == 7  # G, G_ema, truncated, two tilted, the mirror pair
    for render, camera in seen:
        assert (render.fov, render.ray_start, render.ray_end, render.num_steps) == (20.0, 1.3, 1.7, 6)
        assert render.deterministic
        assert torch.allclose(camera.origin.norm(dim=-1), torch.tensor(1.5))
    front = Camera.from_angles(1.3, 1.4, 1.5, batch=1)
    assert torch.allclose(seen[0][1].origin[:1], front.origin, atol=1e-6)
    tilted = Camera.from_angles(1.3 + 0.5, 1.4, 1.5, batch=1)
    assert torch.allclose(seen[3][1].origin[:1], tilted.origin, atol=1e-6)
