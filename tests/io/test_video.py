"""Video writer: mp4 and GIF round trips, frame counts, one-sentence refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cips3d.errors import ConfigError, UserError
from cips3d.io.video import (
    check_video_target,
    read_video_frames,
    read_video_record,
    video_header,
    write_mp4_or_gif,
    write_video,
)


def frames(n=5, h=16, w=24):
    """Smooth moving colour ramps (what H.264 with 4:2:0 chroma keeps well)."""
    yy, xx = np.mgrid[:h, :w]
    return [
        np.stack([(xx * 10 + 20 * i) % 256, yy * 12, np.full_like(xx, 100 + 20 * i)], -1).astype(np.uint8)
        for i in range(n)
    ]


def test_mp4_round_trip_has_the_frames_and_size(tmp_path):
    path = tmp_path / "a.mp4"
    assert write_video(iter(frames()), path, fps=10) == 5
    decoded = read_video_frames(path)
    assert len(decoded) == 5 and decoded[0].shape == (16, 24, 3)
    assert np.abs(decoded[2].astype(int) - frames()[2]).mean() < 8  # lossy but close


def test_gif_round_trip_is_close(tmp_path):
    path = tmp_path / "a.gif"
    assert write_video(frames(), path, fps=10) == 5
    decoded = read_video_frames(path)
    assert len(decoded) == 5 and decoded[0].shape == (16, 24, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_a_record_rides_in_the_videos_comment(tmp_path, suffix):
    record = {"command": "cips3d video", "seed": 7, "render": {"precision": "bf16"}}
    path = tmp_path / f"a{suffix}"
    write_video(frames(3), path, fps=10, record=record)
    assert read_video_record(path) == record and len(read_video_frames(path)) == 3
    assert video_header(path) == (3, 24, 16)  # frames, width, height, without decoding
    write_video(frames(3), path, fps=10)
    assert read_video_record(path) is None
    assert read_video_record(tmp_path / "missing.mp4") is None


def test_refusals(tmp_path):
    with pytest.raises(UserError, match="even width and height"):
        check_video_target(tmp_path / "a.mp4", 15, 16)
    check_video_target(tmp_path / "a.gif", 15, 15)
    with pytest.raises(UserError, match="must end in"):
        write_video(frames(), tmp_path / "a.avi")
    assert not list(tmp_path.iterdir())


def test_mp4_or_gif_follows_the_encoder_and_the_frame_sides(tmp_path, monkeypatch):
    from cips3d.io import video  # noqa: PLC0415

    even = [np.full((4, 6, 3), 40 * i, np.uint8) for i in range(3)]
    odd = [np.zeros((5, 6, 3), np.uint8)] * 2
    assert video.write_mp4_or_gif(iter(odd), tmp_path / "odd", fps=10).name == "odd.gif"
    path = video.write_mp4_or_gif(iter(even), tmp_path / "even", fps=10)
    assert path.name == ("even.mp4" if video.mp4_available() else "even.gif")
    assert len(read_video_frames(path)) == 3  # the frame peeked at is written too
    monkeypatch.setattr(video, "mp4_available", lambda: False)
    assert video.write_mp4_or_gif(even, tmp_path / "plain", fps=10).name == "plain.gif"
    with pytest.raises(ConfigError, match="no frames to write to none"):
        video.write_mp4_or_gif([], tmp_path / "none")
    monkeypatch.undo()
    name = video.write_mp4_or_gif(iter(even), tmp_path / "walk_psi0.7", fps=10).name  # was walk_psi0.mp4
    assert name == ("walk_psi0.7.mp4" if video.mp4_available() else "walk_psi0.7.gif")


def test_what_no_player_could_show_is_refused_before_a_file_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"no frames to write to e.gif\.$"):  # was a 0-byte GIF
        write_video(iter([]), tmp_path / "e.gif", fps=10)
    with pytest.raises(UserError, match="mp4 \\(yuv420p\\) needs an even width and height, got 9x7"):
        write_video(iter([np.zeros((7, 9, 3), np.uint8)]), tmp_path / "o.mp4", fps=10)  # was a PyAV error
    mixed = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)]
    with pytest.raises(ConfigError, match=r"like the first; frame 1 is \[8, 10, 3\]"):
        write_video(iter(mixed), tmp_path / "m.gif", fps=10)
    # were TypeErrors from Python, PIL or PyAV:
    with pytest.raises(ConfigError, match="frames must be an iterable of frames, got int"):
        write_video(5, tmp_path / "i.gif")
    with pytest.raises(
        ConfigError, match=r"video frames must be uint8 \[H, W, 3\] arrays, got float32 \[8, 8, 3\]"
    ):
        write_video([np.zeros((8, 8, 3), np.float32)], tmp_path / "f.gif")
    with pytest.raises(ConfigError, match=r"uint8 \[H, W, 3\] arrays, got Tensor"):
        write_mp4_or_gif([torch.zeros(8, 8, 3, dtype=torch.uint8)], tmp_path / "t")
    with pytest.raises(UserError, match="crf .H.264 quality. must be a whole number from 0 to 51, got -5"):
        write_video([np.zeros((8, 8, 3), np.uint8)], tmp_path / "c.mp4", crf=-5)  # was PyAV's OverflowError
    with pytest.raises(UserError, match="the frame rate must be from"):
        write_video([np.zeros((8, 8, 3), np.uint8)], tmp_path / "s.gif", fps="30")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "fps, delay", [(60, 20), (50, 20), (30, 30), (24, 40), (12.5, 80), (240, 20), (0.5, 2000)]
)
def test_a_gif_stores_the_nearest_delay_it_can_play(tmp_path, fps, delay):
    from PIL import Image  # noqa: PLC0415

    frames = [np.full((4, 4, 3), value, np.uint8) for value in (0, 128, 255)]
    write_video(frames, tmp_path / "v.gif", fps=fps)
    with Image.open(tmp_path / "v.gif") as gif:
        assert gif.n_frames == 3 and gif.info["duration"] == delay


def test_reading_a_missing_or_undecodable_video_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="there is no video file at .*nope.mp4"):  # was FileNotFoundError
        read_video_frames(tmp_path / "nope.mp4")
    for name in ("bad.mp4", "bad.gif"):
        (tmp_path / name).write_bytes(b"not a video at all")
        with pytest.raises(UserError, match=f"could not decode the video .*{name}"):  # PyAV's / PIL's errors
            read_video_frames(tmp_path / name)
    with pytest.raises(ConfigError, match="the video must be a file or folder path, got NoneType"):
        read_video_frames(None)
