#!/usr/bin/env bash
# What a session lent a GPU runs on it (the device tool's `run`, on the bare machine's python3 with
# PyTorch): the CUDA checks, then the GPU benchmark. Results go to $OUT (the device tool brings that
# folder back), or to benchmarks/ when OUT is unset.
#
#   bash benchmarks/gpu_session.sh            # CUDA checks + benchmark (about 5 minutes on an H100)
#   bash benchmarks/gpu_session.sh --compile  # also the torch.compile'd paths (compiling takes minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir=${OUT:-benchmarks}
python=${PYTHON:-python3}
export PYTHONPATH=src PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out_dir/gpu-info.txt"
"$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out_dir/gpu-info.txt"
"$python" -m pytest -q -m cuda tests/test_cuda.py 2>&1 | tee "$out_dir/cuda-tests.log"
tests=${PIPESTATUS[0]}
"$python" benchmarks/bench.py --device cuda "$@" --out "$out_dir/results-cuda.json" 2>&1 | tee "$out_dir/bench-cuda.log"
bench=${PIPESTATUS[0]}
# `cips3d view` end to end (render, encode, HTTP) at 512 px, fast setting with the CUDA graph
"$python" benchmarks/viewer_latency.py --device cuda --preset ffhq --size 512 --fast --frames 60 \
    --out "$out_dir/viewer-latency-cuda.json" 2>&1 | tee "$out_dir/viewer-cuda.log"
echo "cuda tests exit $tests, benchmark exit $bench"
exit $(( tests || bench ))
