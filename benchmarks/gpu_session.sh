#!/usr/bin/env bash
# What a session lent a GPU runs on it (the device tool's `run`, on the bare machine's python3 with
# PyTorch), most important first, each stage under its own time cap so that one slow stage cannot take
# the others' results with it: the GPU benchmark, profiles of a frame, a batched render and a training
# iteration, `cips3d view` end to end, the CUDA checks (and, with SWEEP=1, the fused field kernel's
# launch sweep). Results go to $OUT (the device tool brings that folder back: at most 8 files), or to
# benchmarks/gpu-session/ when OUT is unset.
#
#   bash benchmarks/gpu_session.sh            # about 8 minutes on an H100 (each stage capped; 570 s in all,
#                                             # under the device tool's 600 s a call)
#   bash benchmarks/gpu_session.sh --compile  # also the torch.compile'd paths (compiling takes minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir=${OUT:-benchmarks/gpu-session}
mkdir -p "$out_dir"
python=${PYTHON:-python3}
export PYTHONPATH=src PYTHONUNBUFFERED=1
log="$out_dir/session.log"

stage() {  # stage SECONDS NAME COMMAND...: run under a time cap, output to the log; remember failures
    local cap=$1 name=$2
    shift 2
    echo "== $name (cap ${cap}s) $(date +%T)" | tee -a "$log"
    timeout "$cap" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "== $name exit $rc" | tee -a "$log"
    [[ $rc == 0 ]] || failed+=("$name:$rc")
}
failed=()

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$log"
"$python" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__,
torch.cuda.get_device_name())" | tee -a "$log"
stage 150 bench "$python" benchmarks/bench.py --device cuda "$@" --out "$out_dir/results-cuda.json"
# Where the time goes: a 512 px frame, a batched 256 px render, a 128 px training iteration
profiles=${TMPDIR:-/tmp}/profiles
stage 45 profile-frame "$python" benchmarks/profile_gpu.py --device cuda --workload frame --size 512 \
    --settings fast,fused-all --out-dir "$profiles"
stage 45 profile-batched "$python" benchmarks/profile_gpu.py --device cuda --workload batched --size 256 \
    --batch 16 --settings fast,fused-all --out-dir "$profiles"
stage 60 profile-train "$python" benchmarks/profile_gpu.py --device cuda --workload train --size 128 \
    --batch 4 --out-dir "$profiles"
tar -C "$profiles" -czf "$out_dir/profiles.tgz" . 2>/dev/null  # one file: the device tool brings back 8
# `cips3d view` end to end (render, encode, HTTP) at 512 px, fast setting with both kernels and the graph
stage 40 viewer "$python" benchmarks/viewer_latency.py --device cuda --preset ffhq --size 512 --fast --frames 60 \
    --field-kernel triton --inr-kernel triton --out "$out_dir/viewer-latency-cuda.json"
# the same with two requests open (render overlapping the last frame's encoding and transfer): whether the
# page should pipeline its requests
stage 40 viewer-2 "$python" benchmarks/viewer_latency.py --device cuda --preset ffhq --size 512 --fast --frames 60 \
    --field-kernel triton --inr-kernel triton --in-flight 2 --out "$out_dir/viewer-latency-cuda-2.json"
stage 190 cuda-tests "$python" -m pytest -q -m cuda tests/test_cuda.py
if [[ -n "${SWEEP:-}" ]]; then  # the fused field kernel's launch settings (Triton compiles each: ~20 s)
    stage 120 field-sweep "$python" benchmarks/field_kernel_sweep.py --device cuda --blocks 128,256 --warps 4,8 \
        --fast-sine 1 --out "$out_dir/field-sweep.json"
fi
echo "failed stages: ${failed[*]:-none}" | tee -a "$log"
exit $(( ${#failed[@]} > 0 ))
