"""Training 2D CIPS end to end on a folder: snapshots with previews, an exact resume, clear errors."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest
import torch

from cips3d.errors import ConfigError, UserError
from cips3d.metrics.evaluate import evaluate_2d
from cips3d.training import trainer2d as trainer2d_module
from cips3d.training.run_lock import run_lock
from cips3d.training.snapshot import list_snapshots, load_snapshot
from cips3d.training.trainer2d import Train2DConfig, Trainer2D
from tests.conftest import write_blobs
from tests.training.conftest import count_fid_network_loads

CONFIG = Train2DConfig(generator="cips-tiny", patch=16, batch_size=2, d_max_channels=32, snapshot_every=2,
                       keep_snapshots=2)  # fmt: skip


def weights(trainer: Trainer2D) -> dict[str, dict[str, torch.Tensor]]:
    return {name: getattr(trainer, name).state_dict() for name in ("G", "G_ema", "D")}


def test_two_plus_two_iterations_equal_four(tmp_path, blob_folder):
    straight = Trainer2D(CONFIG, tmp_path / "straight", blob_folder, progress=False)
    straight.run(max_steps=4)
    first = Trainer2D(CONFIG, tmp_path / "split", blob_folder, progress=False)
    first.run(max_steps=2)
    second = Trainer2D(CONFIG, tmp_path / "split", blob_folder, resume=True, progress=False)
    assert second.state.global_step == 2 and second.state.data_position == 4
    last = second.run(max_steps=4)
    for name, tensors in weights(straight).items():
        assert all(torch.equal(v, weights(second)[name][k]) for k, v in tensors.items()), name
    assert torch.equal(straight.draws.get_state(), second.draws.get_state())
    assert straight.state.history == second.state.history  # the scores too
    snapshot = load_snapshot(last)
    assert snapshot.state.global_step == 4 and snapshot.state.images_seen == 8
    assert (last / "preview.png").is_file()
    assert [r["step"] for r in snapshot.state.history] == [2, 4]  # one SWD per snapshot
    assert all(r["swd"] > 0 for r in snapshot.state.history)
    assert snapshot.state.best_snapshot in ("step-000000002", "step-000000004")
    assert [p.name for p in list_snapshots(tmp_path / "split" / "snapshots")] == [
        "step-000000002", "step-000000004"
    ]  # fmt: skip


def test_training_moves_the_weights_and_the_ema_follows(tmp_path, blob_folder):
    trainer = Trainer2D(CONFIG, tmp_path / "run", blob_folder, progress=False)
    start = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    trainer.run(max_steps=3)
    moved = [k for k, v in trainer.G.state_dict().items() if not torch.equal(v, start[k])]
    assert "encoding.embedding" in moved and len(moved) > 10
    ema, live = trainer.G_ema.state_dict(), trainer.G.state_dict()
    assert all(torch.isfinite(v).all() for v in ema.values())
    assert not torch.equal(ema["first.weight"], live["first.weight"])  # an average, not a copy


def test_resuming_with_another_config_and_bad_configs_are_refused(tmp_path, blob_folder):
    Trainer2D(CONFIG, tmp_path / "run", blob_folder, progress=False).run(max_steps=1)
    other = dataclasses.replace(CONFIG, batch_size=4)
    with pytest.raises(ConfigError, match=r"other settings \(batch_size 2 in the run, 4 now\)"):
        Trainer2D(other, tmp_path / "run", blob_folder, resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a run; continue it with cips3d train2d --resume"):
        Trainer2D(CONFIG, tmp_path / "run", blob_folder, progress=False)
    with pytest.raises(ConfigError, match="over a power of two"):
        Train2DConfig(generator="cips-tiny", patch=12)
    with pytest.raises(ConfigError, match="multiple of the discriminator's minibatch-stddev group"):
        Train2DConfig(batch_size=6)
    assert Train2DConfig.from_dict(CONFIG.to_dict()) == CONFIG
    before_panoramas = {k: v for k, v in CONFIG.to_dict().items() if k not in ("panorama", "width")}
    assert Train2DConfig.from_dict(before_panoramas) == CONFIG  # snapshots written before the fields
    wide = Train2DConfig(panorama=True, width=128, patch=8)
    assert wide.generator_config().coordinates == "cylinder" and wide.discriminator().size == 8
    assert Train2DConfig(panorama=True, width=128).patch_size == 32  # whole: the height, square


def test_two_processes_stay_in_step_and_resume_exactly(tmp_path, blob_folder):
    """Two gloo ranks: their weights agree after every averaged step, 2 + resume + 2 iterations equal 4,
    and the second rank's own data and draws make the run differ from one process's."""
    from tests.training import ddp_workers  # noqa: PLC0415

    config = dataclasses.replace(CONFIG, snapshot_every=100)
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    ddp_workers.spawn(ddp_workers.train2d_body, 2, config, straight, blob_folder, 4, tmp_path / "a")
    ddp_workers.spawn(ddp_workers.train2d_body, 2, config, halves, blob_folder, 2, tmp_path / "b")
    ddp_workers.spawn(ddp_workers.train2d_body, 2, config, halves, blob_folder, 4, tmp_path / "c")
    a = [torch.load(tmp_path / "a" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    c = [torch.load(tmp_path / "c" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name in ("G", "G_ema", "D"):
        for got in (a[1], c[0], c[1]):
            assert all(torch.equal(got[name][k], a[0][name][k]) for k in a[0][name]), name
    assert a[0]["images_seen"] == 4 * 2 * 2
    assert len(load_snapshot(halves).rng["other_ranks"]) == 1
    single = Trainer2D(config, tmp_path / "single", blob_folder, progress=False)
    single.run(max_steps=4)
    assert not all(torch.equal(a[0]["D"][k], v) for k, v in single.D.state_dict().items())


def test_fid_scores_each_snapshot_as_cips3d_metrics_would(tmp_path, blob_folder, monkeypatch):
    """--fid: each snapshot's record has the FID `evaluate_2d` gives its G_ema; the network is loaded once."""
    loads = count_fid_network_loads(monkeypatch)
    trainer = Trainer2D(CONFIG, tmp_path / "run", blob_folder, progress=False, fid_images=4)
    trainer.run(max_steps=1)
    trainer.run(max_steps=2)
    assert len(trainer.state.history) == 2 and len(loads) == 1
    record = trainer.state.history[-1]
    direct = evaluate_2d(trainer.G_ema, blob_folder, ["fid"], 4)["metrics"]["fid"]
    assert record["fid"] > 0 and record["fid"] == pytest.approx(direct, rel=1e-9)
    assert load_snapshot(tmp_path / "run").state.history[-1]["fid"] == record["fid"]


def test_the_discriminator_width_cap_follows_the_preset_unless_given():
    assert Train2DConfig(generator="cips-tiny").discriminator().max_channels == 64
    assert Train2DConfig(generator="cips-256", patch=64).discriminator().max_channels == 512
    assert Train2DConfig(generator="cips-tiny", d_max_channels=32).discriminator().max_channels == 32


def test_ctrl_c_finishes_the_iteration_and_writes_its_snapshot(tmp_path, blob_folder, monkeypatch):
    """Ctrl-C during iteration 3 lets it finish (weights, optimisers and counters stay one state) and
    writes its snapshot; the run then ends as stopped, and resumes like any other."""
    trainer = Trainer2D(CONFIG, tmp_path / "run", blob_folder, progress=False)
    step = trainer.step

    def interrupted_third_step(reals):
        if trainer.state.global_step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return step(reals)

    monkeypatch.setattr(trainer, "step", interrupted_third_step)
    path = trainer.run(max_steps=6)
    assert trainer.stopped_by_signal and path.name == "step-000000003"
    assert load_snapshot(path).state.global_step == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again after it
    resumed = Trainer2D(CONFIG, tmp_path / "run", blob_folder, resume=True, progress=False)
    assert resumed.run(max_steps=4).name == "step-000000004" and not resumed.stopped_by_signal


def test_a_second_ctrl_c_aborts_without_a_half_written_snapshot(tmp_path, blob_folder, monkeypatch):
    trainer = Trainer2D(CONFIG, tmp_path / "run", blob_folder, progress=False)
    step, write = trainer.step, trainer2d_module.write_snapshot

    def interrupted_third_step(reals):
        if trainer.state.global_step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return step(reals)

    def write_while_interrupted(*args, **kwargs):
        if trainer.state.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return write(*args, **kwargs)

    monkeypatch.setattr(trainer, "step", interrupted_third_step)
    monkeypatch.setattr(trainer2d_module, "write_snapshot", write_while_interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(max_steps=6)
    snapshots = tmp_path / "run" / "snapshots"
    assert [p.name for p in list_snapshots(snapshots)] == ["step-000000002"]  # the interval one, whole
    assert load_snapshot(snapshots).state.global_step == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_folder_in_use_is_refused_and_a_resume_with_no_step_left_rewrites_nothing(tmp_path, blob_folder):
    run = tmp_path / "run"
    Trainer2D(CONFIG, run, blob_folder, progress=False).run(max_steps=1)
    snapshot = list_snapshots(run / "snapshots")[-1]
    written = (snapshot / "state.json").stat().st_mtime_ns
    with run_lock(run), pytest.raises(UserError, match="is being trained by another process"):
        Trainer2D(CONFIG, run, blob_folder, resume=True, progress=False).run(max_steps=2)
    assert Trainer2D(CONFIG, run, blob_folder, resume=True, progress=False).run(max_steps=1) == snapshot
    assert (snapshot / "state.json").stat().st_mtime_ns == written and len(
        list_snapshots(run / "snapshots")
    ) == 1


def test_a_2d_run_whose_run_json_is_gone_still_refuses_other_images(tmp_path, blob_folder):
    run = tmp_path / "run"
    Trainer2D(CONFIG, run, blob_folder, progress=False).run(max_steps=1)
    (run / "run.json").unlink()
    write_blobs(tmp_path / "other", count=20, seed=5)
    with pytest.raises(UserError, match="are not the ones .* was trained on"):
        Trainer2D(CONFIG, run, tmp_path / "other", resume=True, progress=False)


def test_a_resume_on_more_processes_gives_each_rank_its_own_draws(tmp_path, blob_folder):
    """A one-process run resumed on two: rank 0 goes on with the run's draws, rank 1 with its own seed's
    (every rank once took rank 0's, so both drew the same latents, noise and patches), and a note says
    the step now takes twice the images."""
    from cips3d.training.distributed import World  # noqa: PLC0415

    run = tmp_path / "run"
    Trainer2D(CONFIG, run, blob_folder, progress=False).run(max_steps=2)
    saved = load_snapshot(run).rng["generators"]["draws"]
    ranks = [Trainer2D(CONFIG, run, blob_folder, resume=True, progress=False, world=World(rank, 2))
             for rank in (0, 1)]  # fmt: skip
    assert torch.equal(ranks[0].draws.get_state(), saved)
    assert not torch.equal(ranks[1].draws.get_state(), saved)
    assert not torch.equal(ranks[0].draws.get_state(), ranks[1].draws.get_state())
    assert "trained by 1 process and continues on 2" in ranks[1].resume_note
    same = Trainer2D(CONFIG, run, blob_folder, resume=True, progress=False)
    assert same.resume_note is None and torch.equal(same.draws.get_state(), saved)


def test_non_finite_losses_leave_the_weights_alone_and_stop_the_run_after_ten_in_a_row(
    tmp_path, blob_folder, monkeypatch
):
    """An update whose loss is NaN is skipped (it once went into Adam, and every weight was NaN after it);
    ten in a row stop the run with a snapshot of the last good state."""
    from cips3d.training import steps2d  # noqa: PLC0415
    from cips3d.training.trainer import TrainingStopped  # noqa: PLC0415

    trainer = Trainer2D(CONFIG, tmp_path / "run", blob_folder, progress=False)
    before = weights(trainer)
    for name in ("d_logistic_loss", "g_nonsaturating_loss"):
        real = getattr(steps2d, name)
        monkeypatch.setattr(steps2d, name, lambda *a, real=real: real(*a) * float("nan"))
    with pytest.raises(TrainingStopped, match="^10 steps in a row had non-finite losses"):
        trainer.run(max_steps=50)
    assert trainer.state.global_step == 10 and trainer.state.skipped_steps == 20  # D and G updates
    for name in ("G", "D"):
        assert all(torch.equal(v, before[name][k]) for k, v in weights(trainer)[name].items()), name
    assert load_snapshot(tmp_path / "run").state.global_step == 10
