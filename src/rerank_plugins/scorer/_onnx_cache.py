"""The ONNX export cache: where exports live, how an entry is named, when it is complete.

An entry's directory is named by what identifies the weights: the resolved commit of a hub
model, or a fingerprint of the contents of a local directory's config and weights (a
retrained local model is exported again). An entry counts only if its manifest
(``export.json``, written last by the exporter) lists its files with their sizes. If the
cache directory cannot be written, ``backend="auto"`` runs torch at once and
``backend="onnx"`` exports to a temporary directory for this process (both warn, once per
process).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CACHE_ENV = "RERANK_PLUGINS_CACHE_DIR"
# Bump when the export, fusion or quantization settings change, so old caches are not reused.
FORMAT = 3
MANIFEST = "export.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5")
# Cache roots found unwritable in this process, and the temporary root used instead.
_unwritable: dict[Path, Path | None] = {}


def cache_root() -> Path:
    """Where exported models live: ``$RERANK_PLUGINS_CACHE_DIR`` or ``~/.cache/rerank-plugins``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser() / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "rerank-plugins" / "onnx"


def cache_key(model: str, revision: str | None, files_dir: Path | None) -> str:
    """A directory name for this model: a readable slug plus a hash of what identifies it.

    A hub snapshot (``.../snapshots/<commit>``) is identified by its commit, whichever of its
    files are downloaded yet; a local directory by the contents of its config and weights;
    a model whose files were not found by its id and revision.
    """
    identity: dict[str, Any] = {"model": model, "format": FORMAT}
    if files_dir is None:
        identity["revision"] = revision
    elif files_dir.parent.name == "snapshots":
        identity["commit"] = files_dir.name
    else:
        identity["content"] = _content_fingerprint(files_dir)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", model.strip("/~."))[-60:] or "model"
    return f"{slug}-{digest}"


def _content_fingerprint(directory: Path) -> str:
    """A hash of the names and bytes of a directory's config and weight files."""
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file() and (path.suffix in _WEIGHT_SUFFIXES or path.name == "config.json"):
            digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
            with path.open("rb") as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def complete(directory: Path, name: str) -> bool:
    """Whether the cache entry's manifest lists ``name`` with the size the file has."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        return bool(manifest["files"][name] == (directory / name).stat().st_size)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def writable_root(root: Path, *, auto: bool) -> Path | None:
    """Where to export: ``root`` if it can be written, else a fallback.

    The fallback (remembered for the process, so the check and its warning happen once) is
    a temporary directory for ``backend="onnx"``, and None (use torch) for ``"auto"``.
    """
    if root not in _unwritable:
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=root):
                pass
            return root
        except OSError as err:
            logger.warning(
                "The ONNX cache directory %s is not writable (%s), so exports cannot be kept: "
                "set %s to a writable directory. Until then, %s.",
                root,
                err,
                CACHE_ENV,
                "backend='auto' uses torch"
                if auto
                else "an explicit backend exports into a temporary directory once per process",
            )
            _unwritable[root] = None
    if auto:
        return None
    temporary = _unwritable[root]
    if temporary is None:
        temporary = _unwritable[root] = Path(tempfile.mkdtemp(prefix="rerank-plugins-onnx-"))
        atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    return temporary


def files_dir(source: str, common: dict[str, Any]) -> Path | None:
    """The local directory holding the model's files (a hub snapshot is named by its commit)."""
    if Path(source).is_dir():
        return Path(source)
    try:
        from transformers.utils.hub import cached_file

        found = cached_file(source, "config.json", **common)
    except (OSError, ValueError):
        return None
    return Path(found).parent if found else None
