"""The tiny offline models and the session guards in ``tests/conftest.py``.

Every other test leans on these fixtures, so this file checks that each model loads the
ways the library loads models (transformers' Auto classes, sentence-transformers'
``CrossEncoder``), that its rankings mean something, and that the network really is off.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests import _tiny_models as tiny
from tests._tiny_models import EN_RANKING_CASES, JA_RANKING_CASES, RANKING_CASES

CROSS_ENCODERS = {
    # fixture name: (model_type, num_labels)
    "tiny_bert": ("bert", 1),
    "tiny_bert_2logit": ("bert", 2),
    "tiny_xlmr": ("xlm-roberta", 1),
    "tiny_xlmr_2logit": ("xlm-roberta", 2),
}
BLOCKED = (
    r"^Network access is disabled in tests: a connection to {} was attempted\. "
    r"Connect to 127\.0\.0\.1, ::1 or localhost, or mock the call\.$"
)
TINY_MODULE = Path(tiny.__file__)


def _relevance(scores: np.ndarray) -> np.ndarray:
    """One relevance score per pair: the logit, or logit 1 minus logit 0 for two labels."""
    if scores.ndim == 1:
        return scores
    return scores[:, 1] - scores[:, 0]


def test_ranking_cases_cover_both_languages_and_every_position() -> None:
    assert RANKING_CASES == EN_RANKING_CASES + JA_RANKING_CASES
    assert all(q.isascii() for q, _, _ in EN_RANKING_CASES)
    assert all(not q.isascii() for q, _, _ in JA_RANKING_CASES)
    for cases in (EN_RANKING_CASES, JA_RANKING_CASES):
        assert {relevant for _, _, relevant in cases} == {0, 1, 2, 3}
    for query, passages, relevant in RANKING_CASES:
        topic = next(t for t in tiny.TOPICS if query in t.queries)
        own = [i for i, passage in enumerate(passages) if passage in topic.passages]
        assert own == [relevant], query


@pytest.mark.parametrize("fixture", sorted(CROSS_ENCODERS))
def test_cross_encoders_load_with_transformers(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = request.getfixturevalue(fixture)
    model_type, num_labels = CROSS_ENCODERS[fixture]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
    assert model.config.model_type == model_type
    assert model.config.num_labels == num_labels
    assert model.config.hidden_size == 32
    assert model.config.num_hidden_layers == 2
    assert not info["missing_keys"]
    assert tokenizer.model_max_length == 512
    assert tokenizer.pad_token_id == model.config.pad_token_id
    for query, passages, _ in (EN_RANKING_CASES[0], JA_RANKING_CASES[0]):
        ids = tokenizer(query, passages[0])["input_ids"]
        assert tokenizer.unk_token_id not in ids, tokenizer.convert_ids_to_tokens(ids)
        assert len(ids) < 64
    if model_type == "xlm-roberta":
        assert (tokenizer.bos_token_id, tokenizer.pad_token_id) == (0, 1)
        assert model.config.max_position_embeddings == 514
        assert (path / "sentencepiece.bpe.model").is_file()
    else:
        assert model.config.max_position_embeddings == 512
        assert (path / "vocab.txt").is_file()


@pytest.mark.parametrize("fixture", sorted(CROSS_ENCODERS))
def test_cross_encoders_load_with_sentence_transformers(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    from sentence_transformers import CrossEncoder

    path = request.getfixturevalue(fixture)
    model = CrossEncoder(str(path), device="cpu")
    scores = model.predict([("How long does a cat sleep each day?", "A cat sleeps a lot.")])
    assert model.num_labels == CROSS_ENCODERS[fixture][1]
    assert scores.shape == ((1,) if model.num_labels == 1 else (1, 2))
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("fixture", sorted(CROSS_ENCODERS))
def test_ranking_cases_put_the_relevant_passage_first(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(request.getfixturevalue(fixture)), device="cpu")
    wrong = []
    for query, passages, relevant in RANKING_CASES:
        scores = _relevance(model.predict([(query, passage) for passage in passages]))
        if int(np.argmax(scores)) != relevant:
            wrong.append((query, scores.round(3).tolist(), relevant))
    assert wrong == []


def test_one_logit_scores_separate_relevant_from_irrelevant(tiny_bert: Path) -> None:
    """Under the sigmoid the relevant passage is likely and the others are not."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tiny_bert), device="cpu")
    query, passages, relevant = RANKING_CASES[0]
    scores = model.predict([(query, passage) for passage in passages])
    assert scores[relevant] > 0.5
    assert max(np.delete(scores, relevant)) < 0.5


def test_base_model_has_no_classification_head(tiny_base_model: Path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    assert AutoConfig.from_pretrained(tiny_base_model).architectures == ["BertModel"]
    _, info = AutoModelForSequenceClassification.from_pretrained(
        tiny_base_model, output_loading_info=True
    )
    assert {"classifier.weight", "classifier.bias"} <= set(info["missing_keys"])


def test_three_label_model_is_a_classifier(tiny_bert_3labels: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_3labels)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_3labels)
    assert model.config.num_labels == 3
    with torch.inference_mode():
        logits = model(**tokenizer("a query", "a passage", return_tensors="pt")).logits
    assert logits.shape == (1, 3)


def test_build_restores_torch_rng_and_threads(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    state = torch.random.get_rng_state()
    tiny.build_base_model(tmp_path)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), state)


def test_num_labels_below_one_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^num_labels must be a positive int, got 0\.$"):
        tiny.build_bert(tmp_path, num_labels=0)


def test_main_builds_a_loadable_model(tmp_path: Path, tiny_bert: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    assert tiny.main([str(tmp_path / "out"), "--kind", "bert"]) == 0
    built = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    reference = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(built.state_dict()[name], tensor), name


@pytest.mark.slow
def test_script_rebuilds_the_same_model_in_a_new_process(tmp_path: Path, tiny_xlmr: Path) -> None:
    """The command line builds the model, and a fresh process reproduces it bit for bit."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out = tmp_path / "model"
    subprocess.run(
        [sys.executable, str(TINY_MODULE), str(out), "--kind", "xlmr"], check=True, timeout=300
    )
    ours = load_file(out / "model.safetensors")
    theirs = load_file(tiny_xlmr / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert [k for k in ours if not torch.equal(ours[k], theirs[k])] == []
    text = JA_RANKING_CASES[0][0]
    expected = AutoTokenizer.from_pretrained(tiny_xlmr)(text)
    assert AutoTokenizer.from_pretrained(out)(text) == expected


def test_hugging_face_is_offline() -> None:
    from huggingface_hub import constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert constants.HF_HUB_OFFLINE is True


@pytest.mark.parametrize(
    ("family", "address"),
    [
        pytest.param(socket.AF_INET, ("192.0.2.1", 80), id="ipv4"),
        pytest.param(socket.AF_INET, ("8.8.8.8", 53), id="public-dns"),
        pytest.param(socket.AF_INET6, ("2001:db8::1", 80, 0, 0), id="ipv6"),
        pytest.param(socket.AF_INET, ("huggingface.co", 443), id="hostname"),
    ],
)
def test_non_loopback_connect_is_blocked(family: int, address: tuple[object, ...]) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        with pytest.raises(RuntimeError, match=BLOCKED.format(_escaped(address))):
            sock.connect(address)
        with pytest.raises(RuntimeError, match=BLOCKED.format(_escaped(address))):
            sock.connect_ex(address)


def test_create_connection_is_blocked_before_any_lookup() -> None:
    address = ("example.com", 443)
    with pytest.raises(RuntimeError, match=BLOCKED.format(_escaped(address))):
        socket.create_connection(address, timeout=1)


@pytest.mark.parametrize(
    ("family", "host", "connect_to"),
    [
        pytest.param(socket.AF_INET, "127.0.0.1", "127.0.0.1", id="ipv4"),
        pytest.param(socket.AF_INET, "127.0.0.1", "localhost", id="localhost"),
        pytest.param(socket.AF_INET6, "::1", "::1", id="ipv6"),
    ],
)
def test_loopback_connect_is_allowed(family: int, host: str, connect_to: str) -> None:
    try:
        server = socket.socket(family, socket.SOCK_STREAM)
        server.bind((host, 0))
    except OSError:
        pytest.skip(f"cannot bind {host} here")
    with server:
        server.listen(1)
        port = server.getsockname()[1]
        with socket.create_connection((connect_to, port), timeout=5) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_socket_connect_is_allowed(tmp_path: Path) -> None:
    path = str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"


def _escaped(address: tuple[object, ...]) -> str:
    return re.escape(repr(address))
