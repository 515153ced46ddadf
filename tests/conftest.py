"""Session-wide test setup: Hugging Face offline, network off, tiny offline models.

Offline mode and the network guard are installed in ``pytest_configure``, before any test
module is imported, and undone when pytest unconfigures. The guard lets loopback
(127.0.0.0/8, ::1, ``localhost``) and Unix sockets through, so server tests still work, and
raises :class:`NetworkBlockedError` for anything else.

The model fixtures build each tiny model once per session (see ``tests/_tiny_models.py``)
and return the directory it was saved to.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests._tiny_models import build_base_model, build_bert, build_modernbert, build_xlmr

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkBlockedError(RuntimeError):
    """A test tried to reach a non-loopback address.

    A ``RuntimeError``, not an ``OSError``, so code that retries or falls back on connection
    errors cannot hide the attempt.
    """


def _is_loopback(host: object) -> bool:
    """Whether ``host`` (an address tuple's first item) names this machine's loopback."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _check(family: int, address: Any) -> None:
    """Raise :class:`NetworkBlockedError` unless ``address`` is local to this machine."""
    if family == getattr(socket, "AF_UNIX", object()) or isinstance(address, (str, bytes)):
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_loopback(host):
        raise NetworkBlockedError(
            f"Network access is disabled in tests: a connection to {address!r} was attempted. "
            "Connect to 127.0.0.1, ::1 or localhost, or mock the call."
        )


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_create_connection = socket.create_connection


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self.family, address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self.family, address)
    return _real_connect_ex(self, address)


def _guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
    _check(socket.AF_INET, address)
    return _real_create_connection(address, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    """Hugging Face offline, non-loopback connections blocked, exports in a temporary cache."""
    patch = pytest.MonkeyPatch()
    config.add_cleanup(patch.undo)
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("TRANSFORMERS_OFFLINE", "1")
    # Worker processes fork after tokenizers ran; set here so `python -m pytest` needs no env.
    patch.setenv("TOKENIZERS_PARALLELISM", "false")
    # backend="auto" exports models to ONNX on the CPU: into a session directory, not ~/.cache.
    cache = Path(tempfile.mkdtemp(prefix="rerank-plugins-test-cache-"))
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    patch.setenv("RERANK_PLUGINS_CACHE_DIR", str(cache))
    patch.setattr(socket.socket, "connect", _guarded_connect)
    patch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    patch.setattr(socket, "create_connection", _guarded_create_connection)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained BERT cross-encoder with one logit (WordPiece vocabulary)."""
    return build_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_bert_2logit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained BERT cross-encoder with two logits; class 1 means relevant."""
    return build_bert(tmp_path_factory.mktemp("tiny_bert_2logit"), num_labels=2)


@pytest.fixture(scope="session")
def tiny_bert_3labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT classifier with three labels: not a cross-encoder."""
    return build_bert(tmp_path_factory.mktemp("tiny_bert_3labels"), num_labels=3)


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained XLM-RoBERTa cross-encoder with one logit (sentencepiece vocabulary)."""
    return build_xlmr(tmp_path_factory.mktemp("tiny_xlmr"))


@pytest.fixture(scope="session")
def tiny_xlmr_2logit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained XLM-RoBERTa cross-encoder with two logits; class 1 means relevant."""
    return build_xlmr(tmp_path_factory.mktemp("tiny_xlmr_2logit"), num_labels=2)


@pytest.fixture(scope="session")
def tiny_modernbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained ModernBERT cross-encoder, [CLS] pooling, sentencepiece (as the v2 models)."""
    return build_modernbert(tmp_path_factory.mktemp("tiny_modernbert"), pooling="cls")


@pytest.fixture(scope="session")
def tiny_modernbert_mean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained ModernBERT cross-encoder with mean ``classifier_pooling``."""
    return build_modernbert(tmp_path_factory.mktemp("tiny_modernbert_mean"), pooling="mean")


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT saved without a classification head: not a cross-encoder."""
    return build_base_model(tmp_path_factory.mktemp("tiny_base_model"))
