"""The run monitor refuses a log folder it cannot write in one sentence, before TensorBoard's thread fails."""

from __future__ import annotations

import pytest
import torch

from cips3d.errors import UserError
from cips3d.training import monitor as monitor_module
from cips3d.training.monitor import Monitor


def test_an_unwritable_log_folder_is_one_sentence_before_any_event_file(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")  # what a read-only folder gives a non-root user

    monkeypatch.setattr(monitor_module.tempfile, "TemporaryFile", refused)
    logs = tmp_path / "run" / "logs"
    with pytest.raises(
        UserError, match=r"^cannot write the TensorBoard logs in .*logs \(Permission denied\)\.$"
    ):
        Monitor(logs, 4, 0, enabled=False)  # was half a traceback from a thread, then a bytes path
    assert logs.is_dir() and not list(logs.iterdir())


def test_a_writable_log_folder_gets_its_event_file(tmp_path):
    monitor = Monitor(tmp_path / "logs", 4, 0, enabled=False)
    monitor.close()
    assert [p.name.startswith("events.out.tfevents.") for p in (tmp_path / "logs").iterdir()] == [True]


def test_the_bar_shows_the_first_steps_losses_and_images_in_plain_counts(tmp_path):
    monitor = Monitor(tmp_path / "logs", 20, 0, enabled=False)
    monitor.step(1, 8, "r32", {"d_loss": 1.25, "g_loss": 0.5}, log=False)  # log_every 10: not logged
    shown = set(monitor.bar.postfix.split(", "))  # nothing was shown before step 10
    assert shown == {"stage=r32", "images=8", "d_loss=1.250", "g_loss=0.500"}
    monitor.step(2, 12_345, "r32", {"d_loss": 1.0}, log=True)
    assert "images=12.3k" in monitor.bar.postfix  # was kimg=12.3, and kimg=0.0 through a short run
    monitor.close()


def test_a_bar_written_into_a_log_file_updates_every_half_minute(tmp_path, monkeypatch):
    for tty, seconds in ((True, monitor_module.BAR_SECONDS), (False, monitor_module.LOG_BAR_SECONDS)):
        monkeypatch.setattr(monitor_module.sys.stderr, "isatty", lambda tty=tty: tty)
        monitor = Monitor(tmp_path / f"logs{tty}", 4, 0, enabled=True)
        assert monitor.bar.mininterval == seconds  # a job's log got ten carriage-return lines a second
        monitor.close()


def test_logged_steps_record_the_peak_memory(tmp_path):
    """TensorBoard gets the run's peak memory (resident size on a CPU) beside its losses: what says
    whether a larger batch or size would fit."""
    monitor = Monitor(tmp_path / "logs", 4, 0, enabled=False, device=torch.device("cpu"))
    logged = {}
    monitor.writer.add_scalar = lambda name, value, step: logged.setdefault(name, (value, step))
    monitor.step(1, 8, "r32", {"d_loss": 1.0}, log=False)
    assert "train/peak_memory_gb" not in logged  # only on logged steps
    monitor.step(10, 80, "r32", {"d_loss": 1.0}, log=True)
    value, step = logged["train/peak_memory_gb"]
    assert step == 10 and 0.05 < value < 1000  # this process holds Python and torch: tens of MB at least
    assert value == pytest.approx(monitor_module.peak_memory_gb(torch.device("cpu")), rel=0.5)
    monitor.close()
