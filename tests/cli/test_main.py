"""`cips3d.cli.main`: an allocation the machine cannot make is one sentence, not a traceback; our warnings
are one line."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import pytest
import torch

from cips3d.cli.main import _format_warning, main, out_of_memory_message
from cips3d.data.images import SkippedImagesWarning
from tests.cli.helpers import run


def test_a_real_failed_allocation_reads_as_out_of_memory_with_its_size():
    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**60, dtype=torch.uint8)  # an exbibyte: past any address space
    message = out_of_memory_message(caught.value)
    assert message == (
        "out of memory: the machine could not hold what was asked (1,073,741,824.0 GiB at once); "
        "ask for a smaller size or batch."
    )


def test_cuda_out_of_memory_and_other_errors():
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)")
    assert out_of_memory_message(cuda) == (
        "out of memory: the GPU could not hold what was asked (20.0 GiB at once); "
        "ask for a smaller size or batch."
    )
    assert out_of_memory_message(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    assert out_of_memory_message(MemoryError()) == (  # Python's own, from a list of a billion frames
        "out of memory: the machine could not hold what was asked; ask for a smaller size or batch."
    )


def test_the_command_line_says_it_in_one_sentence(tmp_path, capsys, monkeypatch):
    # What PyTorch's CPU allocator raises for a grid of petabytes (mesh --resolution 100000, before the
    # resolution had a bound).
    def petabytes(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 4000000000000000 bytes. Error code 12")  # fmt: skip

    monkeypatch.setattr("cips3d.cli.mesh.density_grid", petabytes)
    code, _, err = run(capsys, "mesh", "--preset", "tiny", "--seeds", "0", "--resolution", "8",
                       "--outdir", str(tmp_path / "o"), "--quiet")  # fmt: skip
    assert code == 2 and "out of memory" in err and err.count("\n") == 1, err


def test_cips3d_warnings_read_as_one_line_while_a_command_runs(tmp_path, capsys):
    own = _format_warning("skipped 1 of 2 images", SkippedImagesWarning, "/src/images.py", 9, "warn(...)")
    assert own == "cips3d: warning: skipped 1 of 2 images\n"
    other = _format_warning("deprecated", UserWarning, "/lib/torch/x.py", 7)
    assert "/lib/torch/x.py:7" in other and not other.startswith("cips3d")
    before = warnings.formatwarning
    run(capsys, "sample2d", "--checkpoint", str(tmp_path / "none"), "--outdir", str(tmp_path))
    assert warnings.formatwarning is before  # restored when the command ends


@pytest.mark.parametrize("device", ["meta", "xla", "gpu"])
def test_devices_pytorch_knows_but_cips3d_cannot_render_on_are_one_sentence(tmp_path, capsys, device):
    code, _, err = run(capsys, "sample", "--preset", "tiny", "--device", device, "--outdir", str(tmp_path))
    assert code == 2 and f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto" in err


def test_a_numbered_cpu_is_refused_rather_than_read_as_the_cpu(tmp_path, capsys):
    code, _, err = run(capsys, "sample", "--preset", "tiny", "--device", "cpu:5", "--outdir", str(tmp_path))
    assert code == 2 and err.endswith("device 'cpu:5': cpu has no numbered devices; use cpu.\n"), err


@pytest.mark.parametrize(
    "argv, said",
    [
        (["sample", "--psi", "nan"], "cips3d sample: error: argument --psi: 'nan' is not a finite number."),
        (["sample", "--psi"], "cips3d sample: error: argument --psi: expected one argument."),
        (["sample", "--nope", "x"], "cips3d sample: error: unrecognized arguments: --nope x."),
        (
            ["dataset", "synth", "o.zip", "--bogus"],
            "cips3d dataset synth: error: unrecognized arguments: --bogus.",
        ),
        ([], "cips3d: error: give a command; the commands are demo, sample, train,"),
    ],
    ids=["bad-value", "missing-value", "unknown-flag", "two-word-command", "no-command"],
)
def test_command_line_mistakes_are_one_sentence_naming_the_command_not_the_usage_block(capsys, argv, said):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith(said) and err.count("\n") == 1, err
    assert "usage:" not in err and err.endswith("--help`.\n")  # where to look instead


@pytest.mark.parametrize("command", ["sample", "sample2d", "video", "multiview", "mesh", "blend", "metrics"])
@pytest.mark.parametrize("psi", ["1.5", "-0.1"])
def test_every_command_refuses_a_truncation_outside_0_to_1_in_one_sentence(capsys, command, psi):
    with pytest.raises(SystemExit) as stopped:  # one rule (cli.common.truncation), not seven copies
        main([command, "--psi", psi])
    err = capsys.readouterr().err
    said = f"cips3d {command}: error: argument --psi: '{psi}' is not between 0 and 1."
    assert stopped.value.code == 2 and err == f"{said} See `cips3d {command} --help`.\n"


def test_an_unknown_command_lists_the_public_ones_only(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["bogus"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "unknown command 'bogus'; the commands are demo, sample" in err
    assert "dataset-synth" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "--preset", "tiny", "--init-seed", str(2**70)],  # a traceback from torch before
        ["invert", "--preset", "tiny", "--image", "x.png", "--seed", "-5"],  # wrapped round before
        ["train2d", "--data", "x", "--outdir", "r", "--max-steps", "1", "--seed", str(2**64)],
        ["dataset", "synth", "d.zip", "--seed", str(2**63)],
    ],
    ids=["init-seed", "negative", "train2d", "dataset"],
)
def test_every_seed_option_is_checked_in_one_sentence(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "must be from 0 to 2^63 - 1" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, flag",
    [
        (
            ["sample", "--preset", "tiny", "--appearance-seeds", "9", "--mix-layers", "512,,1024"],
            "--mix-layers",
        ),
        (["mesh", "--preset", "tiny", "--format", "ply,"], "--format"),
        (["video", "--preset", "tiny", "--panels", "image,,depth"], "--panels"),
        (["blend", "--source", "S", "--target", "T", "--gammas", "0,,1"], "--gammas"),
        (["metrics", "--preset", "tiny", "--data", "D", "--metrics", "swd,"], "--metrics"),
    ],
    ids=["mix-layers", "mesh-format", "panels", "gammas", "metrics"],
)
def test_an_empty_item_in_a_comma_list_is_one_sentence(tmp_path, capsys, argv, flag):
    code, _, err = run(capsys, *argv, "--outdir" if argv[0] != "metrics" else "--out", str(tmp_path / "o"))
    assert (
        code == 2 and f"{flag} " in err and "has an empty item; separate the items with single commas" in err
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["sample", "blend", "invert"])
def test_camera_angles_past_any_view_are_refused_by_their_flag(capsys, command):
    with pytest.raises(SystemExit) as stopped:
        run(capsys, command, "--yaw", "1e39")  # beyond float32: it overflowed in a traceback
    assert (
        stopped.value.code == 2
        and "--yaw: '1e39' radians is more than 1000 either way" in capsys.readouterr().err
    )


@pytest.mark.parametrize("command", ["sample", "blend", "invert"])
@pytest.mark.parametrize("value", ["4", "-0.1"])
def test_pitches_past_a_pole_are_refused_by_their_flag(capsys, command, value):
    """The renderer clamps a pitch past a pole to the pole (as the official code does): --pitch 4 rendered
    what pi renders, without a word."""
    with pytest.raises(SystemExit) as stopped:
        run(capsys, command, "--pitch", value)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and f"--pitch: '{value}' is not a pitch: pitch runs from 0" in err


def test_multiview_pitches_past_a_pole_are_one_sentence(capsys, tmp_path):
    code, _, err = run(
        capsys, "multiview", "--preset", "tiny", "--pitches", "1.2,3.5", "--outdir", str(tmp_path / "o")
    )
    assert code == 2 and "--pitches takes pitches from 0 (the camera straight above)" in err
    assert not (tmp_path / "o").exists()


def test_multiview_angles_past_any_view_are_one_sentence(capsys, tmp_path):
    code, _, err = run(
        capsys, "multiview", "--preset", "tiny", "--yaws", "1,1e38", "--outdir", str(tmp_path / "o")
    )
    assert code == 2 and "--yaws takes finite radians of at most 1000 either way" in err


@pytest.mark.parametrize(
    "argv, name",
    [
        (["sample", "--preset", "tiny", "--checkpoint", ""], "--checkpoint"),  # was: a random-init model
        (["sample", "--preset", "tiny", "--outdir", ""], "--outdir"),  # was: the current folder
        (["video", "--preset", "tiny", "--styles", ""], "--styles"),  # was: read as not given
        (["metrics", "--checkpoint", "m", "--data", "d", "--metrics", ""], "--metrics"),
        (["blend", "--source", "S", "--target", "T", "--layers", ""], "--layers"),
        (["dataset", "", "out.zip", "--resolution", "16"], "SOURCE"),
        (["info", ""], "PATH"),
    ],
    ids=["checkpoint", "outdir", "styles", "metrics", "layers", "positional", "info"],
)
def test_an_empty_value_is_one_sentence_naming_its_argument(tmp_path, capsys, monkeypatch, argv, name):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.endswith(f"error: {name} is empty; give a value (or leave it out).\n"), err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "argv",
    [
        ["mesh", "--preset", "tiny", "--chunk", "99999999999999999999999"],
        ["sample", "--preset", "tiny", "--num-steps", "99999999999999999999999"],
    ],
    ids=["chunk", "num-steps"],
)
def test_a_count_past_any_use_is_refused_before_it_overflows(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--outdir", str(tmp_path / "o")])
    assert stopped.value.code == 2
    assert "'99999999999999999999999' is more than 2,147,483,647, past any use" in capsys.readouterr().err


LIMIT = "is more than 1,000,000, a video's limit (9 hours at 30 fps)"


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["video", "--preset", "tiny", "--seeds", "0,1", "--frames"], "--frames"),
        (
            ["video", "--preset", "tiny", "--seeds", "0,1", "--interpolate", "--steps-between"],
            "--steps-between",
        ),
        (["blend", "--source", "a", "--target", "b", "--sweep-frames"], "--sweep-frames"),
        (["blend", "--source", "a", "--target", "b", "--video", "yaw", "--frames"], "--frames"),
        (["invert", "--preset", "tiny", "--image", "a.png", "--video", "--frames"], "--frames"),
        (["sample2d", "--checkpoint", "m", "--pan"], "--pan"),
        (["sample2d", "--checkpoint", "m", "--seeds", "0,1", "--interpolate"], "--interpolate"),
    ],
    ids=["video", "walk", "blend-sweep", "blend-video", "invert", "pan", "walk2d"],
)
def test_a_video_longer_than_the_limit_is_refused_before_its_frames_are_listed(tmp_path, capsys, argv, flag):
    # blend --sweep-frames 2147483647 built a list of that many gammas first, then ran out of memory;
    # video --steps-between 10000000 took 1.5 GB before naming an internal "num_frames".
    for count in ("1000001", "2147483647", "99999999999999999999999"):
        with pytest.raises(SystemExit) as stopped:
            main([*argv, count, "--outdir", str(tmp_path / "o")])
        assert stopped.value.code == 2
        assert f"argument {flag}: '{count}' {LIMIT}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "0", "--outdir", str(tmp_path / "o")])
    assert f"argument {flag}: '0' must be at least" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["video", "--preset", "tiny", "--trajectory", "circle_near_far", "--frames", "1000000"],
         "--frames 1,000,000 makes 2,000,000 frames along --trajectory circle_near_far, more than 1,000,000"),
        (["blend", "--source", "a", "--target", "b", "--video", "translate_circle_near_far", "--frames",
          "600000"], "--frames 600,000 makes 1,200,056 frames along --video translate_circle_near_far"),
        (["sample2d", "--checkpoint", "m", "--seeds", "0-9", "--interpolate", "200000"],
         "--interpolate 200,000 across 10 seeds makes 1,800,001 frames, more than 1,000,000"),
    ],
    ids=["near-far", "blend-translate", "walk2d"],
)  # fmt: skip
def test_a_trajectory_of_several_turns_is_held_to_the_limit_too(tmp_path, capsys, argv, words):
    """--frames is a turn's frames: a near/far trajectory of 1,000,000 a turn started rendering 2,000,000."""
    code, _, err = run(capsys, *argv, "--outdir", str(tmp_path / "o"))
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_a_walk_of_more_frames_than_the_limit_is_one_sentence_before_anything_renders(tmp_path, capsys):
    video = ["video", "--preset", "tiny", "--seeds", "0-9", "--interpolate", "--steps-between", "200000"]
    code, _, err = run(capsys, *video, "--outdir", str(tmp_path / "o"))
    assert code == 2 and err.endswith(
        "error: --steps-between 200,000 across 10 seeds makes 1,800,001 frames, more than 1,000,000, a "
        "video's limit (9 hours at 30 fps).\n"
    )
    assert not (tmp_path / "o").exists()


def test_every_help_example_keeps_its_line_breaks():
    """A backslash-newline inside a plain string joined two example lines into one (train2d's help
    printed "--max-steps 800000       --device cuda")."""
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    import cips3d.cli  # noqa: PLC0415

    for info in pkgutil.iter_modules(cips3d.cli.__path__):
        module = importlib.import_module(f"cips3d.cli.{info.name}")
        for name, text in vars(module).items():
            if name.endswith("EXAMPLES") and isinstance(text, str):
                assert max(len(line) for line in text.splitlines()) <= 110, f"{info.name}.{name}"


def test_a_fit_that_ends_where_it_began_is_not_called_worse(capsys):
    from cips3d.cli.common import fit_summary  # noqa: PLC0415

    assert fit_summary([0.15581, 0.15583], "invert") == "loss 0.1558 -> 0.1558"
    assert capsys.readouterr().err == ""  # it warned "ended worse (0.1558 -> 0.1558)", blaming --lr
    fit_summary([0.1558, 0.2], "invert")
    assert "the fit ended worse than it began (loss 0.1558 -> 0.2)" in capsys.readouterr().err


def test_metrics_says_an_out_path_it_cannot_write_before_scoring(tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "data").mkdir()

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored before the --out path was checked")

    monkeypatch.setattr("cips3d.cli.metrics.build_generator", no_scoring)
    argv = [
        "metrics",
        "--preset",
        "tiny",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "afile/x.json"),
    ]
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.endswith(f"cannot be written: {tmp_path / 'afile'} is a file, not a folder.\n")


def test_metrics_keeps_an_existing_out_file_and_never_replaces_a_device_or_pipe(
    tmp_path, capsys, monkeypatch
):
    """--out replaced any file (another model's weights), and a device node or pipe with a JSON file
    (as root, `--out /dev/null` replaced the device); an unwritable folder failed after the scoring."""
    monkeypatch.setattr("cips3d.cli.metrics.build_generator", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("scored before the --out path was checked")))  # fmt: skip
    (tmp_path / "data").mkdir()
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    argv = ["metrics", "--preset", "tiny", "--data", str(tmp_path / "data"), "--out"]
    code, _, err = run(capsys, *argv, str(weights))
    assert (
        code == 2 and "exists; give --overwrite to replace it" in err and weights.read_bytes() == b"weights"
    )
    for target in ("pipe", "dangling"):
        code, _, err = run(capsys, *argv, str(tmp_path / target), "--overwrite")
        assert code == 2 and "give the path of a file to write" in err, err
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anyway: a folder under /proc takes no file either
            locked = Path("/proc")
        code, _, err = run(capsys, *argv, str(locked / "scores.json"))
        assert code == 2 and "cannot be written" in err and "takes no new file" in err, err
    finally:
        (tmp_path / "locked").chmod(0o700)
