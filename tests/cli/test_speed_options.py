"""--fast and the other speed options of the rendering commands (`cli.speed.speed_options`)."""

from __future__ import annotations

import argparse

import pytest
import torch
from tqdm import tqdm

from cips3d.cli import common, speed
from cips3d.cli.speed import SPEED_DEFAULTS, fastest_setting, speed_options


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    speed.add_precision_argument(parser)
    return parser.parse_args(argv)


def test_without_fast_the_options_are_what_was_typed():
    assert speed_options(parsed()) == SPEED_DEFAULTS
    typed = speed_options(parsed("--precision", "tf32", "--inr-kernel", "triton"))
    assert typed == SPEED_DEFAULTS | {"precision": "tf32", "inr_kernel": "triton"}


def test_fast_on_a_gpu_is_bf16_tf32_and_both_kernels(monkeypatch):
    monkeypatch.setattr(speed.importlib.util, "find_spec", lambda name: object())
    assert fastest_setting(torch.device("cuda")) == {
        "precision": "bf16", "field_precision": "tf32", "field_kernel": "triton", "inr_kernel": "triton"
    }  # fmt: skip
    monkeypatch.setattr(speed.importlib.util, "find_spec", lambda name: None)  # no triton installed
    assert fastest_setting(torch.device("cuda"))["field_kernel"] == "torch"


def test_fast_on_a_cpu_asks_for_bf16_only_where_it_is_fast(monkeypatch):
    monkeypatch.setattr(speed, "bf16_fast", lambda device: False)
    assert fastest_setting(torch.device("cpu")) == {}
    assert speed_options(parsed("--fast")) == SPEED_DEFAULTS
    monkeypatch.setattr(speed, "bf16_fast", lambda device: True)
    assert speed_options(parsed("--fast")) == SPEED_DEFAULTS | {"precision": "bf16"}


def test_options_typed_beside_fast_win(monkeypatch):
    monkeypatch.setattr(speed, "usable_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(speed.importlib.util, "find_spec", lambda name: object())
    options = speed_options(parsed("--fast", "--precision", "tf32", "--field-kernel", "torch"))
    assert options == dict(
        precision="tf32", field_precision="tf32", field_kernel="torch", inr_kernel="triton"
    )


def test_compile_says_its_first_render_takes_a_while(tmp_path, capsys, monkeypatch):
    """--compile showed a bar at 0 for half a minute on a CPU with no word of compiling."""
    from cips3d.cli.main import main  # noqa: PLC0415

    compiled = []
    monkeypatch.setattr(speed, "compile_generator", compiled.append)  # the compiling itself is tested apart
    argv = ["sample", "--preset", "tiny", "--size", "8", "--seeds", "0", "--quiet", "--outdir", str(tmp_path)]
    assert main([*argv, "--compile"]) == 0 and len(compiled) == 1
    assert "note: --compile compiles the field and decoder at the first render" in capsys.readouterr().err


def test_fast_says_what_it_chose(capsys, monkeypatch):
    """--fast was silent: only comparing images told whether it had changed anything."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(speed, "bf16_fast", lambda device: True)
    speed.note_fast_setting(parsed("--fast"), cpu)
    assert capsys.readouterr().err == "cips3d: note: --fast renders with --precision bf16.\n"
    speed.note_fast_setting(parsed("--fast", "--precision", "float32"), cpu)
    assert (
        "--fast changes nothing: the speed options given set everything it would" in capsys.readouterr().err
    )
    monkeypatch.setattr(speed, "bf16_fast", lambda device: False)
    speed.note_fast_setting(parsed("--fast"), cpu)
    assert "--fast changes nothing on cpu: it knows faster settings for" in capsys.readouterr().err
    speed.note_fast_setting(parsed(), cpu)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(speed.importlib.util, "find_spec", lambda name: None)  # CUDA without triton
    speed.note_fast_setting(parsed("--fast"), torch.device("cuda"))
    err = capsys.readouterr().err
    assert "--precision bf16, --field-precision tf32 (not the Triton kernels: the triton" in err


def test_chunk_rows_take_auto_in_any_case_and_say_so_when_refused():
    assert speed.chunk_rows("AUTO") == "auto" and speed.chunk_rows("7") == 7
    with pytest.raises(
        argparse.ArgumentTypeError, match="'x' is not an integer; give a number of rows or auto"
    ):
        speed.chunk_rows("x")


def test_ray_progress_ends_exactly_on_whole_units():
    """Fractions of an image added up: a 200 px image ended at 0.99999 or past 1 (a negative time left)."""
    bar = tqdm(total=2, disable=True)
    progress = speed.RayProgress(bar, 200 * 200)
    naive = 0.0
    for chunk in [4096] * 19 + [2 * 200 * 200 - 19 * 4096]:
        progress(chunk)
        naive += chunk / (200 * 200)
    assert bar.n == 2 and naive != 2  # the float sum misses


def test_the_matmul_self_test_runs_once_per_command(tmp_path, monkeypatch):
    """--fast ran the start-up self-test three times (75 ms each on a CPU)."""
    from cips3d.cli.main import main  # noqa: PLC0415

    calls = []
    monkeypatch.setattr(common, "configure_fast_paths", calls.append)
    argv = ["sample", "--preset", "tiny", "--size", "8", "--seeds", "0", "--quiet", "--outdir", str(tmp_path)]
    assert main([*argv, "--fast"]) == 0 and len(calls) == 1
