"""Colour profiles: a photo in a wide-gamut profile is read in sRGB, as viewers show it."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from cips3d.data.images import decode_rgb

D50 = (0.9642, 1.0, 0.8249)  # the profile connection space's white
# Adobe RGB (1998)'s primaries, adapted to D50 as ICC profiles store them: a gamut wider than sRGB's.
WIDE = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))


def matrix_profile(primaries=WIDE, gamma: float = 2.2, name: str = "wide test RGB") -> bytes:
    """A minimal ICC v2 display profile (matrix and gamma curves), written out byte by byte: offline
    tests have no profile files to read."""

    def fixed(values) -> bytes:  # s15Fixed16Number
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    def xyz(values) -> bytes:
        return b"XYZ \0\0\0\0" + fixed(values)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    text = name.encode("ascii") + b"\0"
    desc = (
        b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + struct.pack(">IIHB", 0, 0, 0, 0) + bytes(67)
    )
    red, green, blue = primaries
    tags = [(b"desc", desc), (b"wtpt", xyz(D50)), (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)),
            (b"bXYZ", xyz(blue)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]  # fmt: skip
    start, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for signature, body in tags:
        data += bytes(-(start + len(data)) % 4)  # tags start on 4-byte boundaries
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    header = (struct.pack(">I", 128 + len(body)) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0) + fixed(D50) + bytes(48))  # fmt: skip
    assert len(header) == 128
    return header + body


SRGB_PRIMARIES = ((0.4360, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7139))
COLOURS = np.array([[[100, 200, 100], [200, 30, 30], [128, 128, 128], [255, 255, 255]]], np.uint8)


def encoded(icc: bytes | None, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(COLOURS).save(buffer, fmt, **({"icc_profile": icc} if icc else {}))
    return buffer.getvalue()


def test_a_wide_gamut_photo_is_read_in_srgb():
    """Its saturated colours come out more saturated (read as sRGB they looked washed out); grey stays
    grey and white white."""
    wide = decode_rgb(encoded(matrix_profile())).astype(int)
    green, red, grey, white = wide[0]
    assert green[1] - green[0] > 100 + 40 and red[0] - red[1] > 170 + 20  # further apart than stored
    assert np.ptp(grey) <= 1 and abs(int(grey[0]) - 128) <= 3 and (white == 255).all()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(matrix_profile()))  # what a viewer shows
    expected = ImageCms.profileToProfile(
        Image.fromarray(COLOURS), profile, ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB",
    )  # fmt: skip
    assert np.array_equal(wide, np.asarray(expected).astype(int))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_srgb_unprofiled_and_unreadable_profiles_leave_the_pixels_as_stored(fmt):
    stored = decode_rgb(encoded(None, fmt))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for icc in (srgb, b"not a colour profile"):
        assert np.array_equal(decode_rgb(encoded(icc, fmt)), stored)
    linear = matrix_profile(SRGB_PRIMARIES, gamma=1.0, name="linear sRGB")  # sRGB's primaries, not its curve
    assert not np.array_equal(decode_rgb(encoded(linear, fmt)), stored)


def test_an_image_with_alpha_is_converted_too():
    """Screenshots are RGBA PNGs in Display P3: with their alpha they were read as stored."""
    buffer = io.BytesIO()
    rgba = np.concatenate([COLOURS, np.full((1, 4, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba).save(buffer, "PNG", icc_profile=matrix_profile())
    assert np.array_equal(decode_rgb(buffer.getvalue()), decode_rgb(encoded(matrix_profile())))
