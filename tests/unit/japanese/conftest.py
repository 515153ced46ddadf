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
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import _tiny_models as tiny

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

JA_TOPICS = tuple(topic for topic in tiny.TOPICS if topic.language == "ja")
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_MECAB_KWARGS = {"mecab_dic": "unidic_lite"}
_SEEDS = (0, 1, 2)
_STEPS = 200
_LEARNING_RATE = 5e-3
_QUERIES_PER_STEP = 16
_NEGATIVES = 3
_INITIALIZER_RANGE = 0.1  # the BERT default of 0.02 learns far slower at this size


def _ja_groups() -> dict[str, tuple[list[str], list[str]]]:
    """For each Japanese query: (relevant passages of its topic, passages of other topics)."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for topic in JA_TOPICS:
        others = [p for other in JA_TOPICS if other is not topic for p in other.passages]
        for query in topic.queries:
            groups[query] = (list(topic.passages), others)
    return groups


def _encode(tokenizer: PreTrainedTokenizerBase, queries: list[str], passages: list[str]) -> Any:
    # transformers 5 leaves token_type_ids out for BertJapaneseTokenizer unless asked.
    return tokenizer(
        queries, passages, padding=True, return_tensors="pt", return_token_type_ids=True
    )


def _train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, seed: int) -> None:
    """Listwise training: each query's relevant passage must outscore 3 of other topics.

    A softmax over (relevant, negative, negative, negative) per query, 16 queries a step,
    converges in a couple of hundred steps with wide margins (BCE on pairs did not).
    """
    import torch

    groups = _ja_groups()
    queries = sorted(groups)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LEARNING_RATE)
    model.train()
    for _ in range(_STEPS):
        batch_queries: list[str] = []
        batch_passages: list[str] = []
        for query in rng.sample(queries, min(_QUERIES_PER_STEP, len(queries))):
            relevant, others = groups[query]
            group = [rng.choice(relevant), *rng.sample(others, _NEGATIVES)]
            batch_queries += [query] * len(group)
            batch_passages += group
        logits = model(**_encode(tokenizer, batch_queries, batch_passages)).logits
        logits = logits[:, 0].view(-1, _NEGATIVES + 1)
        target = torch.zeros(len(logits), dtype=torch.long)  # the relevant one comes first
        loss = torch.nn.functional.cross_entropy(logits, target)
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
        *_SPECIAL_TOKENS,
        *characters,
        *(f"##{c}" for c in characters),
        *sorted(words - set(characters)),
    ]
    path = workdir / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return path


def build_mecab_bert(path: Path) -> Path:
    """Build, train and save the tiny MeCab BERT; try a few seeds until it ranks right."""
    from transformers import BertConfig, BertForSequenceClassification, BertJapaneseTokenizer

    for seed in _SEEDS:
        with tempfile.TemporaryDirectory() as tmp, tiny.isolated_torch(seed):
            vocab = write_mecab_vocab(Path(tmp))
            tokenizer = BertJapaneseTokenizer(
                str(vocab),
                word_tokenizer_type="mecab",
                subword_tokenizer_type="wordpiece",
                mecab_kwargs=dict(_MECAB_KWARGS),
                model_max_length=512,
            )
            config = BertConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=512,
                type_vocab_size=2,
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
                pad_token_id=tokenizer.pad_token_id,
                initializer_range=_INITIALIZER_RANGE,
                num_labels=1,
            )
            model = BertForSequenceClassification(config)
            _train(model, tokenizer, seed)
            if _ranks_all(model, tokenizer):
                path.mkdir(parents=True, exist_ok=True)
                model.save_pretrained(path)
                tokenizer.save_pretrained(path)
                return path
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
    vocab = [*_SPECIAL_TOKENS, "猫", "は", "##猫"]
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
