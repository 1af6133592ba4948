"""The run monitor refuses a log folder it cannot write in one sentence, before TensorBoard's thread fails."""

from __future__ import annotations

import pytest

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
