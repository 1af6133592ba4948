"""The Triton kernel options (field_kernel, inr_kernel): refused with one sentence where they cannot run."""

from __future__ import annotations

import pytest
import torch

from cips3d import ConfigError, Generator3D, generator_preset
from cips3d.config import RenderConfig
from tests.cli.helpers import run
from tests.kernels.helpers import needs_triton

KERNELS = ["field_kernel", "inr_kernel"]


@needs_triton
@pytest.mark.parametrize("option", KERNELS)
def test_off_a_gpu_and_outside_the_interpreter_each_kernel_is_refused(option):
    G = Generator3D(generator_preset("tiny"), generator=torch.Generator().manual_seed(0)).eval()
    z_nerf, z_inr = G.sample_latents(1, torch.Generator().manual_seed(0))
    with torch.no_grad(), pytest.raises(ConfigError, match="needs a CUDA GPU"):
        G(z_nerf, z_inr, render=RenderConfig(img_size=4, **{option: "triton"}))


@pytest.mark.parametrize("option", KERNELS)
def test_an_unknown_kernel_name_is_a_config_error(option):
    with pytest.raises(ConfigError, match=f"{option} must be torch or triton"):
        RenderConfig(**{option: "cuda"})


@pytest.mark.parametrize("flag", ["--field-kernel", "--inr-kernel"])
@pytest.mark.parametrize("command", ["sample", "video"])
def test_the_cli_refuses_each_kernel_without_a_gpu(capsys, tmp_path, flag, command):
    target = ["--outdir", str(tmp_path)] if command == "sample" else ["--out", str(tmp_path / "v.gif")]
    seeds = ["--seeds", "0"] if command == "sample" else ["--seed", "0", "--frames", "2"]
    options = ["--preset", "tiny", *seeds, "--size", "8", "--device", "cpu", flag, "triton", *target]
    code, _, err = run(capsys, command, *options)
    assert code == 2 and f"{flag} triton needs a CUDA GPU" in err
    assert not list(tmp_path.iterdir())
