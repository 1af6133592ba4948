"""The benchmark script's bookkeeping (ratios to the floor, the official timings and our reference)."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench"] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)


def case(path: str, seconds: float, kind="infer", size=64, batch=4, name="infer 64px b4"):
    c = bench.Case(name, kind, size, batch, path, run=lambda: None)
    c.times = [seconds * 1.5, seconds * 2, seconds]  # median 1.5 x, best 1 x
    return c


def test_summary_ratios():
    rows = bench.summarise([case("ours", 1.0), case("reference", 1.5)])
    ours = rows[0]
    assert ours["seconds"] == 1.5 and ours["best_s"] == 1.0 and ours["images_per_s"] == 4.0
    assert ours["speedup_vs_reference"] == 1.5
    assert ours["x_floor"] == round(1.0 / (0.111 * 4), 2)
    assert ours["gflops"] == round(4 * 64 * 64 * bench.FLOP_PER_PIXEL / 1e9, 1)
    assert ours["speedup_vs_official"] == round(1.516 / 1.0, 2)  # perf_anchor min_s: 64 px batch 4
    g_only = bench.summarise([case("G only", 0.5, kind="train", size=32, name="train-G 32px b4")])[0]
    assert g_only["speedup_vs_official"] == round(1.057 / 0.5, 2)  # the anchor's best training run
    assert g_only["x_floor"] == round(0.5 / 0.33, 2)
    full = bench.summarise([case("full", 3.0, kind="train", size=32, name="train 32px b4")])[0]
    assert full["speedup_vs_official"] is None  # the official anchor timed G alone: not comparable
    assert "| case | path |" in bench.table(rows)
