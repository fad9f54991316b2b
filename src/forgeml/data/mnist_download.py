"""Full MNIST (70k) downloaded from a configurable mirror, every file checked by SHA-256."""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from forgeml.data.base import ImageSource
from forgeml.data.fashion_mnist import from_idx_folder
from forgeml.errors import DataError
from forgeml.io import readable_mode, sha256_file


def load(base_url: str, cache_dir: str, files: dict, timeout_s: float = 60) -> ImageSource:
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for entry in files.values():
        fetch(base_url.rstrip("/") + "/" + entry["name"], folder / entry["name"],
              entry["sha256"], timeout_s)
    names = {key: entry["name"] for key, entry in files.items()}
    return from_idx_folder(folder, names, name="MNIST", licence="CC BY-SA 3.0 (LeCun, Cortes, "
                           "Burges)", origin=f"downloaded from {base_url}")


def fetch(url: str, target: Path, sha256: str, timeout_s: float = 60) -> Path:
    """Download `url` to `target` unless a file with the right hash is already there."""
    if target.is_file() and sha256_file(target) == sha256:
        return target
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        actual = sha256_file(tmp)
        if actual != sha256:
            raise DataError(
                f"{url}: SHA-256 mismatch (expected {sha256}, got {actual}). The mirror serves a "
                "different or corrupted file; nothing was kept. Check data.source.base_url."
            )
        os.chmod(tmp, readable_mode())  # mkstemp makes 0600; a data file is 0644
        os.replace(tmp, target)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DataError(f"Cannot download {url}: {err}. Check your connection or "
                        "data.source.base_url.") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target
