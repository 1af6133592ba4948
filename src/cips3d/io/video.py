"""Writing frames as video: mp4 (H.264 through PyAV) or GIF (Pillow), chosen by the file suffix."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from cips3d.config import is_real_number, is_whole_number
from cips3d.errors import ConfigError, UserError, first_line
from cips3d.io.files import atomic_write, path_of
from cips3d.io.images import PNG_RECORD_KEY, array_kind, is_uint8_array

VIDEO_SUFFIXES = (".mp4", ".gif")


def check_video_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix of `path`, one of VIDEO_SUFFIXES, or a UserError."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"video files must end in {' or '.join(VIDEO_SUFFIXES)}, got {Path(path).name!r}.")
    return suffix


def check_video_target(path: str | os.PathLike, width: int, height: int) -> None:
    """Refuse, in one sentence, what the writer cannot do (before any frame is rendered)."""
    if check_video_suffix(path) == ".mp4" and (width % 2 or height % 2):
        raise UserError(f"mp4 (yuv420p) needs an even width and height, got {width}x{height}; choose an even "
                        "size or GIF.")  # fmt: skip


def mp4_available() -> bool:
    """Whether PyAV is installed with an H.264 encoder."""
    try:
        import av  # noqa: PLC0415 (an optional compiled dependency)

        av.codec.Codec("libx264", "w")
    except (ImportError, ValueError):
        return False
    return True


def _write_mp4(frames: Iterable[np.ndarray], path: str, fps: float, crf: int, comment: str | None) -> int:
    import av  # noqa: PLC0415 (a compiled dependency, loaded only when writing mp4)

    count = 0
    with av.open(path, mode="w", format="mp4") as container:
        if comment is not None:
            container.metadata["comment"] = comment
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count


def gif_delay_ms(fps: float) -> int:
    """The frame delay a GIF stores for `fps`: whole hundredths of a second (the format's unit; PIL cut
    33 ms to 30) nearest to 1 / fps, and at least 20 ms, since browsers play shorter delays at 100 ms.
    So a GIF plays at 100 / n frames per second: 50, 33.3, 25, 20, ..."""
    return 10 * max(2, round(100 / fps))


def _write_gif(frames: Iterable[np.ndarray], path: str, fps: float, comment: str | None) -> int:
    images = [Image.fromarray(f) for f in frames]
    if images:
        options = {"duration": gif_delay_ms(fps), "loop": 0} | ({"comment": comment} if comment else {})
        images[0].save(path, format="GIF", save_all=True, append_images=images[1:], **options)
    return len(images)


def _comment(record: Mapping[str, object]) -> str:
    """The video's comment holding `record` (read back by `read_video_record`), marked as ours."""
    return json.dumps({PNG_RECORD_KEY: record}, sort_keys=True)


def video_header(path: str | os.PathLike) -> tuple[int, int, int]:
    """(frames, width, height) of the mp4 or GIF at `path`, from its header (no frame is decoded; a GIF
    counts a run of identical frames once, see `write_video`). A missing, undecodable or non-video file
    is a `UserError` naming it (PyAV's own errors came through, and a PNG gave 0 frames)."""
    path = path_of(path, "the video")
    check_video_suffix(path)
    if not path.is_file():
        raise UserError(
            f"{path} is a folder, not a video." if path.is_dir() else f"there is no video file at {path}."
        )
    try:
        return raw_video_header(path)
    except (OSError, ValueError, IndexError) as error:  # PIL's and PyAV's errors; IndexError: no video stream
        raise UserError(f"could not read the video {path} ({first_line(error)}).") from None


def raw_video_header(path: Path) -> tuple[int, int, int]:
    """`video_header` without its checks: the reader's own error for a damaged file (`cips3d info`
    words those itself)."""
    if path.suffix.lower() == ".gif":
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1), image.width, image.height
    import av  # noqa: PLC0415 - a compiled dependency, loaded only when reading mp4

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames, stream.codec_context.width, stream.codec_context.height


def read_video_record(path: str | os.PathLike) -> dict | None:
    """The record `write_video(record=...)` put into the comment of the mp4 or GIF at `path`; None for
    any other file (no record, another format or comment, unreadable)."""
    try:
        if Path(path).suffix.lower() == ".gif":
            with Image.open(path) as image:
                comment = image.info.get("comment")
        else:
            import av  # noqa: PLC0415 - a compiled dependency, loaded only when reading mp4

            with av.open(str(path)) as container:
                comment = container.metadata.get("comment")
        held = json.loads(comment) if isinstance(comment, str | bytes) else None
    except Exception:  # noqa: BLE001 - PIL, PyAV and json raise many kinds; the answer is the same: none
        return None
    record = held.get(PNG_RECORD_KEY) if isinstance(held, dict) else None
    return record if isinstance(record, dict) else None


MIN_FPS, MAX_FPS = 0.1, 240.0  # a GIF stores each frame's duration in 16 bits of 10 ms; players cap rates
MAX_CRF = 51  # H.264 (libx264) quality: 0 lossless to 51 worst
DEFAULT_FPS = 30.0  # every command's videos unless --fps says otherwise


def write_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float = 30.0,
    crf: int = 18,
    record: Mapping[str, object] | None = None,
) -> int:
    """Write uint8 [H, W, 3] frames to `path` (.mp4 or .gif), atomically; returns the frame count.

    Frames are consumed one at a time for mp4 (memory stays bounded); a GIF keeps them all, and stores a
    run of identical frames as one frame shown that much longer (Pillow's encoding: the playback time is
    the same, but `video_header` counts fewer frames). `record` (JSON-able: how the video was made) goes
    into the file's comment, for `read_video_record`.
    """
    path = path_of(path, "the video path")  # an int: pathlib's TypeError
    if not (is_real_number(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise UserError(f"the frame rate must be from {MIN_FPS} to {MAX_FPS} frames per second, got {fps}.")
    if not (is_whole_number(crf) and 0 <= crf <= MAX_CRF):  # -5 overflowed inside PyAV
        raise UserError(f"crf (H.264 quality) must be a whole number from 0 to {MAX_CRF}, got {crf!r}.")
    suffix = check_video_suffix(path)  # said before an empty frame list is
    first, frames = _first_frame(frames, path)
    check_video_target(path, first.shape[1], first.shape[0])  # an odd mp4 side failed inside PyAV
    frames = _all_sized_like(first, itertools.chain([first], frames))
    count = 0

    def write(tmp: str) -> None:
        nonlocal count
        comment = None if record is None else _comment(record)
        mp4 = suffix == ".mp4"
        count = _write_mp4(frames, tmp, fps, crf, comment) if mp4 else _write_gif(frames, tmp, fps, comment)

    atomic_write(path, write)
    return count


def _first_frame(frames: Iterable[np.ndarray], path: Path) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """(the first frame, an iterator over the rest), or a ConfigError for no frames or frames that are
    not uint8 [H, W, 3] arrays (a float frame failed inside PIL or PyAV)."""
    try:
        frames = iter(frames)
    except TypeError:
        raise ConfigError(f"frames must be an iterable of frames, got {type(frames).__name__}.") from None
    first = next(frames, None)
    if first is None:  # a GIF of no frames was a 0-byte file nothing could open
        raise ConfigError(f"no frames to write to {path.name}.")
    if not is_uint8_array(first, 3, (3,)):
        raise ConfigError(f"video frames must be uint8 [H, W, 3] arrays, got {array_kind(first)}.")
    return first, frames


def _all_sized_like(first: np.ndarray, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        if not is_uint8_array(frame, 3, (3,)):  # only the first was checked: a float frame 2 failed in PyAV
            raise ConfigError(
                f"video frames must be uint8 [H, W, 3] arrays; frame {i} is {array_kind(frame)}."
            )
        if frame.shape != first.shape:
            raise ConfigError(f"every frame of a video must be {list(first.shape)} like the first; frame {i} "
                              f"is {list(frame.shape)}.")  # fmt: skip
        yield frame


def write_mp4_or_gif(
    frames: Iterable[np.ndarray],
    stem: str | os.PathLike,
    fps: float = 30.0,
    record: Mapping[str, object] | None = None,
) -> Path:
    """Write the frames to `stem`.mp4 when PyAV can encode H.264 and the frames have an even width and
    height (yuv420p), else to `stem`.gif (the suffix added to the whole stem, dots and all); returns the
    path written. The first frame decides. `record`: as `write_video`'s."""
    first, frames = _first_frame(frames, Path(stem))
    height, width = first.shape[:2]
    mp4 = mp4_available() and width % 2 == 0 and height % 2 == 0
    path = Path(f"{os.fspath(stem)}{'.mp4' if mp4 else '.gif'}")  # not with_suffix: "walk_psi0.7" keeps its 7
    write_video(itertools.chain([first], frames), path, fps=fps, record=record)
    return path


def read_video_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """Decode every frame of a video as uint8 [H, W, 3] (for tests and tools); a missing or
    undecodable file is a `UserError` naming it."""
    path = path_of(path, "the video")
    if not path.is_file():
        raise UserError(f"there is no video file at {path}.")
    try:
        return _gif_frames(path) if path.suffix.lower() == ".gif" else _av_frames(path)
    except (OSError, ValueError) as error:  # PIL's and PyAV's decoding errors derive from these
        raise UserError(f"could not decode the video {path} ({first_line(error)}).") from None


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        frames = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
        return frames


def _av_frames(path: Path) -> list[np.ndarray]:
    import av  # noqa: PLC0415 - imported only where a video is read

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
