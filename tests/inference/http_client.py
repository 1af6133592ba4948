"""A GET that returns (status, content type, body) for error answers too: the viewers' tests."""

from __future__ import annotations

import urllib.error
import urllib.request


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()
