"""The benchmark script's bookkeeping (ratios to the floor, the official timings and our reference), and
its GPU cases run small on a CPU."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from cips3d.fast import cuda_matmuls_use_tf32, cudnn_convolutions_use_tf32
from cips3d.models.discriminator import Discriminator, discriminator_preset
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))  # as when the script runs: gpu_cases.py beside it
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
    machine = bench.summarise([case("ours", 1.0)], matmul_gflops=200.0)[0]
    assert machine["x_machine_floor"] == round(200.0 / (4 * 64 * 64 * bench.FLOP_PER_PIXEL / 1e9), 2)
    assert "x_machine_floor" not in ours  # only where this machine's product speed was measured
    # bf16 rows: the INR's work at the bf16 product speed, the field's at the float32 one
    bf16 = bench.summarise([case("ours-bf16", 1.0)], matmul_gflops=200.0, bf16_gflops=1600.0)[0]
    floor_s = 4 * 64 * 64 * (8.96e6 / 1600.0 + 1.30e6 / 200.0) / 1e9
    assert bf16["x_machine_floor"] == round(1.0 / floor_s, 2)
    compiled = bench.summarise([case("ours-bf16-compiled", 1.0)], matmul_gflops=200.0, bf16_gflops=1600.0)[0]
    assert compiled["x_machine_floor"] == bf16["x_machine_floor"] and compiled["x_floor"] == bf16["x_floor"]
    described = bench.machine(torch.device("cpu"))
    with open("/proc/cpuinfo") as file:
        cpuinfo = file.read()
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE).group(1).split()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    assert described["matrix_units"] == [flag for flag in wanted if flag in flags]
    assert described["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    tests = {"none": {"seconds": 0.005}, "bf16": {"seconds": 1.0}}
    routes = {"matmul_route": "default (MKL)", "self_test": tests}
    assert bench.matmul_gflops(routes) == 2 * 2048 * 512 * 512 / 0.005 / 1e9
    full = bench.summarise([case("full", 3.0, kind="train", size=32, name="train 32px b4")])[0]
    assert full["speedup_vs_official"] is None  # the official anchor timed G alone: not comparable
    assert "| case | path |" in bench.table(rows)


def test_gpu_cases_run_and_report_fractions_of_the_measured_peak(tiny_G):
    """The GPU part of the benchmark, run small on a CPU: every case renders, the reference agrees
    with the float32 path, and the derived columns follow from the measured peaks."""
    import gpu_cases  # noqa: PLC0415 - importable once bench.py was loaded

    device = torch.device("cpu")
    cases = gpu_cases.frame_cases(bench.Case, tiny_G, size=8, chunk_rows=32, frames=3)
    cases += gpu_cases.batched_cases(bench.Case, tiny_G, size=8, batch=2, chunk_rows=32)
    bench.measure(cases, repeats=2, device=device, log=lambda message: None)
    rows = bench.summarise(cases, cpu=False)
    peaks = gpu_cases.matmul_peaks(device, n=64, repeats=2)
    gpu_cases.add_gpu_columns(rows, peaks)
    assert {(r["case"], r["path"]) for r in rows} == {
        ("frame 8px b1", "float32"), ("frame 8px b1", "fast"), ("frame 8px b1", "fast-graph"),
        ("infer 8px b2", "float32"), ("infer 8px b2", "fast"), ("infer 8px b2", "reference"),
    }  # fmt: skip
    for r in rows:
        peak = peaks["bf16" if r["path"].startswith("fast") else "float32"]
        assert r["fraction_of_peak"] == float(f"{r['gflops'] / 1e3 / peak:.3g}")
        assert r["x_floor"] is None and r["speedup_vs_official"] is None  # CPU figures: not for a GPU run
    assert set(peaks) == {"bf16", "tf32", "float32"} and all(v > 0 for v in peaks.values())
    frames = [case.run() for case in cases[:3]]  # the three frame paths agree on a CPU (no TF32 units)
    assert (frames[0] - frames[2]).abs().max() < 0.05
    float32, _, reference = (case.run() for case in cases[3:])
    assert float32.shape == reference.shape == (2, 3, 8, 8)
    assert "fraction_of_peak" in bench.table(rows)
    errors = gpu_cases.setting_errors(tiny_G, gpu_cases.FAST, size=8)  # bf16 INR: rounding on a CPU too
    assert errors["img_size"] == 8 and 0 < errors["max_abs_error"] < 0.05
    assert 0 < errors["mean_abs_error"] <= errors["max_abs_error"] and errors["depth_max_abs_error"] == 0


def test_fused_kernel_cases_are_left_out_where_the_kernel_cannot_run(tiny_G):
    import gpu_cases  # noqa: PLC0415 - importable once bench.py was loaded

    error = gpu_cases.fused_kernel_error(tiny_G, size=8)  # a CPU, outside Triton's interpreter
    assert error["unavailable"].startswith("ConfigError")
    all_error = gpu_cases.fused_kernel_error(tiny_G, size=8, options=gpu_cases.FUSED_ALL)
    assert all_error["unavailable"].startswith("ConfigError")
    kernels = tuple(gpu_cases.KERNEL_SETTINGS)
    cases = gpu_cases.batched_cases(bench.Case, tiny_G, size=8, batch=2, chunk_rows=32, kernels=kernels)
    assert [c.path for c in cases] == ["float32", "fast", "reference", "fused", "fused-seeds", "fused-all"]
    for path in ("fused-graph", "fused-all-graph"):
        assert path in gpu_cases.FRAME_PATHS and path not in gpu_cases.PLAIN_FRAME_PATHS


def test_training_cases_add_a_tf32_iteration_only_when_asked(tiny_G, monkeypatch):
    G = copy.deepcopy(tiny_G)  # the cases train it: the shared model must stay as other tests expect it
    D = Discriminator(discriminator_preset("tiny"), torch.Generator().manual_seed(0))
    plain = bench.training_cases(G, D, [16], torch.device("cpu"))
    assert [c.path for c in plain] == ["full", "partial", "G only"]
    assert [c.runs_per_repeat for c in plain] == [1, 1, 4]  # the G step: about the anchor's 10 samples
    calls = []
    counted = bench.Case(
        "train-G 32px b4", "train", 32, 4, "G only", lambda: calls.append(1), runs_per_repeat=4
    )
    bench.measure([counted], repeats=3, device=torch.device("cpu"), log=lambda message: None)
    assert len(counted.times) == 12 and len(calls) == 13  # and one warm-up call
    cases = bench.training_cases(G, D, [16], torch.device("cpu"), tf32=True)
    assert [c.path for c in cases] == ["full", "full-tf32", "full-ieee-conv", "partial", "G only"]
    before = [p.detach().clone() for p in D.parameters()]
    cases[1].run()  # a whole D + G iteration inside the TF32 block (a no-op switch on a CPU)
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters(), strict=True))
    assert not cuda_matmuls_use_tf32()
    seen, d_step = [], bench.d_step
    monkeypatch.setattr(bench, "d_step", lambda *a: (seen.append(cudnn_convolutions_use_tf32()), d_step(*a)))
    cases[2].run()  # the D step inside the IEEE-convolution block, PyTorch's default after it
    assert seen == [False] and cudnn_convolutions_use_tf32()


def test_the_viewer_latency_script_times_every_frame_and_writes_json(tmp_path):
    import viewer_latency  # noqa: PLC0415 - beside bench.py, whose folder is on sys.path

    out = tmp_path / "v.json"
    result = viewer_latency.main(["--preset", "tiny", "--size", "8", "--frames", "3", "--out", str(out)])
    assert len(result["frames"]) == 3 and json.loads(out.read_text())["summary"] == result["summary"]
    s = result["summary"]
    assert 0 < s["render_ms_median"] <= s["round_trip_ms_median"] and s["frames_per_second"] > 0
    assert s["encode_ms_median"] >= 0 and result["setting"] == "float32, jpeg"
    assert s["throughput_fps"] > 0
    two = viewer_latency.main(["--preset", "tiny", "--size", "8", "--frames", "4", "--in-flight", "2",
                               "--out", str(out)])  # fmt: skip
    assert len(two["frames"]) == 4 and two["setting"] == "float32, jpeg, 2 in flight"
    queries = viewer_latency.orbit_queries(4, seed=2, image_format="png")
    assert len(set(queries)) == 4 and all(
        q.startswith("seed=2&") and q.endswith("format=png") for q in queries
    )


@pytest.mark.parametrize("workload", ["frame", "batched", "train"])
def test_the_profiler_names_the_operators_of_each_workload(tmp_path, workload):
    import profile_gpu  # noqa: PLC0415 - beside bench.py

    argv = ["--device", "cpu", "--preset", "tiny", "--workload", workload, "--size", "8", "--batch", "2",
            "--runs", "1", "--settings", "float32", "--out-dir", str(tmp_path)]  # fmt: skip
    summary = profile_gpu.main(argv)
    run = summary["float32"]
    assert run["clock"] == "cpu" and run["ms_per_run"] > 0
    assert "aten::mm" in run["by_kernel"]  # the INR's products (on a CPU per image: models.inr_blocked)
    if workload == "train":
        assert "aten::convolution_backward" in run["by_kernel"]  # the discriminator's backward
    assert json.loads((tmp_path / f"profile-{workload}.json").read_text()) == summary
    top = next(iter(run["by_kernel"]))  # the table lists the costliest first (long names cut short)
    assert top[:20] in (tmp_path / f"profile-{workload}-float32.txt").read_text()


def test_the_field_kernel_sweep_times_and_checks_each_launch(tmp_path):
    """In Triton's interpreter (set before Python starts, so in a fresh process), a few points."""
    out = tmp_path / "sweep.json"
    command = [sys.executable, str(REPO / "benchmarks" / "field_kernel_sweep.py"), "--device", "cpu",
               "--points", "48", "--blocks", "16,32", "--warps", "4", "--fast-sine", "0", "--repeats", "1",
               "--out", str(out)]  # fmt: skip
    env = os.environ | {"TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO / "src")}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    paths = [row["path"] for row in result["rows"]]
    assert paths.count("triton-tf32") == 2 and {"torch-ieee", "torch-tf32", "triton-ieee"} <= set(paths)
    assert all(row["ms"] > 0 and row["rel_error"] < 1e-5 for row in result["rows"])  # interpreter: IEEE
    assert result["best"]["path"] == "triton-tf32" and result["points"] == 48
