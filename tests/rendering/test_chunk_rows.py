"""How many rows a render chunk holds: numbers as given, 'auto' by device and free memory."""

from __future__ import annotations

import pytest
import torch

from cips3d import ConfigError, RenderConfig
from cips3d.rendering.volume import resolve_chunk_rows

GB = 1024**3


def test_numbers_and_none_are_kept_and_auto_is_4096_off_cuda():
    assert resolve_chunk_rows(100, "cpu") == 100 and resolve_chunk_rows(None, "cuda", free_bytes=GB) is None
    assert resolve_chunk_rows("auto", "cpu") == 4096 and resolve_chunk_rows("auto", "meta") == 4096
    assert RenderConfig().chunk_rows == "auto"


@pytest.mark.parametrize(
    "free, rows",
    [(80 * GB, 65536), (16 * GB, 65536), (8 * GB, 32768), (2 * GB, 8192), (GB // 10, 4096), (0, 4096)],
)
def test_auto_on_cuda_is_the_largest_power_of_two_whose_working_set_fits_a_quarter_of_free_memory(free, rows):
    """64 KB per row, a quarter of the free memory, between 4,096 and 65,536 rows."""
    assert resolve_chunk_rows("auto", torch.device("cuda"), free_bytes=free) == rows


def test_render_config_accepts_auto_and_positive_counts_only():
    RenderConfig(chunk_rows="auto")
    RenderConfig(chunk_rows=None)
    for bad in (0, -5, "big", 2.5):
        with pytest.raises(ConfigError, match="chunk_rows"):
            RenderConfig(chunk_rows=bad)
