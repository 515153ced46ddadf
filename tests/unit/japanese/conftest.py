"""Fixtures for the Japanese tests: a tiny BERT whose tokenizer is MeCab + WordPiece.

``japanese-reranker-cross-encoder-base-v1`` and ``-large-v1`` are BERT models with a
``BertJapaneseTokenizer``: MeCab (fugashi + unidic-lite) splits the text into words, then
WordPiece into subwords. ``tiny_ja_mecab_bert`` is a 2-layer model of that shape, built
offline: the WordPiece vocabulary comes from the MeCab words of the Japanese corpus of
``tests/_tiny_models.py``, and the model is trained on its Japanese pairs *with* segment
ids (``token_type_ids``), as the real models were. Its saved tokenizer config, like the
real ones, does not list ``token_type_ids`` in ``model_input_names``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests import _tiny_models as tiny

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

JA_TOPICS = tuple(topic for topic in tiny.TOPICS if topic.language == "ja")
_MECAB_KWARGS = {"mecab_dic": "unidic_lite"}
_SEEDS = (2, 1, 3)
_STEPS = 400
_BATCH = 32
_LEARNING_RATE = 3e-3


def _ja_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(positive, negative) Japanese pairs: own-topic passages are relevant."""
    positives: list[tuple[str, str]] = []
    negatives: list[tuple[str, str]] = []
    for topic in JA_TOPICS:
        for query in topic.queries:
            for other in JA_TOPICS:
                bucket = positives if other is topic else negatives
                bucket.extend((query, passage) for passage in other.passages)
    return positives, negatives


def _encode(tokenizer: PreTrainedTokenizerBase, queries: list[str], passages: list[str]) -> dict:
    # transformers 5 leaves token_type_ids out for BertJapaneseTokenizer unless asked.
    return tokenizer(
        queries, passages, padding=True, return_tensors="pt", return_token_type_ids=True
    )


def _train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, seed: int) -> None:
    import torch

    positives, negatives = _ja_pairs()
    pairs = positives + negatives
    labels = torch.tensor([1.0] * len(positives) + [0.0] * len(negatives))
    encoded = _encode(tokenizer, [q for q, _ in pairs], [p for _, p in pairs])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LEARNING_RATE)
    half = _BATCH // 2
    model.train()
    for _ in range(_STEPS):
        batch = torch.cat(
            [
                torch.randint(len(positives), (half,), generator=generator),
                len(positives) + torch.randint(len(negatives), (half,), generator=generator),
            ]
        )
        width = int(encoded["attention_mask"][batch].sum(dim=1).max())
        logits = model(**{name: t[batch, :width] for name, t in encoded.items()}).logits
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _ranks_all(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> bool:
    import torch

    for query, passages, relevant in tiny.JA_RANKING_CASES:
        with torch.inference_mode():
            scores = model(**_encode(tokenizer, [query] * len(passages), passages)).logits[:, 0]
        if int(scores.argmax()) != relevant:
            return False
    return True


def write_mecab_vocab(workdir: Path) -> Path:
    """Write a WordPiece vocabulary of the MeCab words (and characters) of the corpus."""
    from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer

    mecab = MecabTokenizer(do_lower_case=False, **_MECAB_KWARGS)
    words: set[str] = set()
    for topic in JA_TOPICS:
        for text in (*topic.queries, *topic.passages):
            words.update(mecab.tokenize(text))
    characters = sorted({c for word in words for c in word})
    vocab = [
        *tiny._BERT_SPECIAL_TOKENS,
        *characters,
        *(f"##{c}" for c in characters),
        *sorted(words - set(characters)),
    ]
    path = workdir / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return path


def build_mecab_bert(path: Path) -> Path:
    """Build, train and save the tiny MeCab BERT; try a few seeds until it ranks right."""
    from transformers import BertForSequenceClassification, BertJapaneseTokenizer

    for seed in _SEEDS:
        with tempfile.TemporaryDirectory() as tmp, tiny._isolated_torch(seed):
            vocab = write_mecab_vocab(Path(tmp))
            tokenizer = BertJapaneseTokenizer(
                str(vocab),
                word_tokenizer_type="mecab",
                subword_tokenizer_type="wordpiece",
                mecab_kwargs=dict(_MECAB_KWARGS),
                model_max_length=512,
            )
            config = tiny._bert_config(len(tokenizer), tokenizer.pad_token_id, num_labels=1)
            model = BertForSequenceClassification(config)
            _train(model, tokenizer, seed)
            if _ranks_all(model, tokenizer):
                return tiny._save(model, tokenizer, path, vocab)
    raise RuntimeError(f"The tiny MeCab BERT did not learn the Japanese cases with seeds {_SEEDS}.")


@pytest.fixture(scope="session")
def tiny_ja_mecab_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny BERT cross-encoder with a MeCab ``BertJapaneseTokenizer``."""
    pytest.importorskip("fugashi", reason='needs pip install "rerank-plugins[ja]"')
    pytest.importorskip("unidic_lite", reason='needs pip install "rerank-plugins[ja]"')
    return build_mecab_bert(tmp_path_factory.mktemp("tiny_ja_mecab_bert"))


@pytest.fixture(scope="session")
def mecab_tokenizer_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory whose tokenizer needs fugashi; written without fugashi or training.

    Loading it fails at the tokenizer, before any weights are read, so it carries only
    ``config.json``, ``tokenizer_config.json`` and a vocabulary.
    """
    from transformers import BertConfig

    path = tmp_path_factory.mktemp("mecab_tokenizer_config")
    vocab = [*tiny._BERT_SPECIAL_TOKENS, "猫", "は", "##猫"]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertConfig(
        vocab_size=len(vocab),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=8,
        num_labels=1,
        architectures=["BertForSequenceClassification"],
    ).save_pretrained(path)
    tokenizer_config = {
        "tokenizer_class": "BertJapaneseTokenizer",
        "word_tokenizer_type": "mecab",
        "subword_tokenizer_type": "wordpiece",
        "mecab_kwargs": _MECAB_KWARGS,
        "do_lower_case": False,
        "model_max_length": 512,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return path
