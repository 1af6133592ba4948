"""Library errors quoted inside our one-sentence messages: their first line, their first sentence."""

from __future__ import annotations

from cips3d.errors import error_gist, first_line, first_sentence


def test_first_line_and_gist_keep_what_says_why():
    verbose = RuntimeError(
        "PytorchStreamReader failed reading zip archive: not a ZIP archive. This is an internal miniz "
        "error. If you are seeing this error, there is a high likelihood that your checkpoint is corrupted."
    )
    assert (
        error_gist(verbose)
        == "RuntimeError: PytorchStreamReader failed reading zip archive: not a ZIP archive"
    )
    assert (
        error_gist(ValueError("expected 3.5 or e.g. 2, got 1."))
        == "ValueError: expected 3.5 or e.g. 2, got 1"
    )
    assert error_gist(KeyError("state")) == "KeyError: 'state'"
    assert error_gist(ValueError("")) == "ValueError" == first_line(ValueError(" "))
    assert error_gist(OSError("x" * 500), limit=20) == "OSError: xxxxxxxxxxx"
    assert first_line(ValueError("one\ntwo"), limit=2) == "on"
    assert first_sentence(verbose) == error_gist(verbose).removeprefix("RuntimeError: ")
