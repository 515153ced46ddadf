"""Tiny cross-encoders built offline for the test suite.

Nothing here touches the Hugging Face Hub. Each builder writes a vocabulary (WordPiece for
BERT, a sentencepiece unigram model trained on the spot for XLM-R), creates a model with a
hidden size of 32 and 2 layers, trains it for 200 steps on (query, passage) groups drawn
from the small English and Japanese corpus below, and saves it with ``save_pretrained``. The
saved directory loads with ``AutoTokenizer`` + ``AutoModelForSequenceClassification`` and with
``sentence_transformers.CrossEncoder``.

The one-logit model of each kind is trained once per process and seed; a head with several
labels starts from it and gets a short cross-entropy run of its own. Training is
deterministic for a given ``seed`` (the same weights in any process), and the global torch
RNG and thread count are restored afterwards. Every built model is checked against
:data:`RANKING_CASES` before it is returned, so a fixture never hands out a model whose
rankings are noise.

Run as a script to build one model (the examples are smoke-tested with it)::

    python tests/_tiny_models.py OUTDIR [--kind bert|xlmr|base] [--num-labels N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "ALL_PASSAGES",
    "EN_RANKING_CASES",
    "JA_RANKING_CASES",
    "RANKING_CASES",
    "TOPICS",
    "Topic",
    "build_base_model",
    "build_bert",
    "build_modernbert",
    "build_xlmr",
    "main",
]


@dataclass(frozen=True)
class Topic:
    """One topic of the corpus: queries and the passages that answer them.

    ``queries[k]`` is answered by ``passages[k]``; every passage of a topic counts as relevant
    to every query of that topic during training.
    """

    name: str
    language: Literal["en", "ja"]
    queries: tuple[str, ...]
    passages: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic(
        "cats",
        "en",
        (
            "How long does a cat sleep each day?",
            "Why does my cat purr?",
            "How does a young cat learn to hunt?",
        ),
        (
            "A cat sleeps for twelve to sixteen hours a day, often curled up in a warm spot.",
            "A cat purrs when it is content, and sometimes when it is anxious or hurt.",
            "A young cat learns to hunt by watching its mother stalk mice and birds.",
            "A pet cat keeps its claws sharp by scratching posts, trees and furniture.",
        ),
    ),
    Topic(
        "volcanoes",
        "en",
        (
            "What makes a volcano erupt?",
            "Is the ash from a volcano dangerous for planes?",
            "Which volcano destroyed Pompeii?",
        ),
        (
            "A volcano erupts when molten rock called magma rises through the crust as lava.",
            "Ash from a large volcano eruption can ground planes and cool the climate.",
            "Vesuvius is the volcano that buried Pompeii under ash in 79 AD.",
            "A shield volcano, such as those in Hawaii, is built from thin, runny lava flows.",
        ),
    ),
    Topic(
        "football",
        "en",
        (
            "How long is a football match?",
            "Can the goalkeeper in football use his hands?",
            "How often is the football World Cup held?",
        ),
        (
            "A football match lasts ninety minutes, split into two halves of forty-five minutes.",
            "Only the goalkeeper may handle the ball in football, and only inside the box.",
            "The World Cup is the biggest football tournament and is held every four years.",
            "A football player is offside when nearer the goal line than the last defender.",
        ),
    ),
    Topic(
        "bread",
        "en",
        (
            "What ingredients do I need to bake bread?",
            "Why do you knead bread dough?",
            "What is a sourdough starter for bread?",
        ),
        (
            "Bread dough needs yeast, flour, water and salt, and it must rise before baking.",
            "Knead the dough for ten minutes to develop the gluten that gives bread its chew.",
            "A sourdough starter is a living culture of wild yeast used to leaven bread.",
            "Bake the loaf of bread in a hot oven until the crust is brown and sounds hollow.",
        ),
    ),
    Topic(
        "trains",
        "en",
        (
            "How fast does a high-speed train go?",
            "When did the first passenger train run?",
            "What does a freight train carry?",
        ),
        (
            "A high-speed train runs on its own track at over three hundred kilometres an hour.",
            "The first steam train carried passengers on a railway in England in 1825.",
            "A freight train hauls coal, grain and containers across the country.",
            "A train driver follows signals that show whether the track ahead is clear.",
        ),
    ),
    Topic(
        "猫",
        "ja",
        (
            "猫は一日に何時間眠りますか？",
            "猫がのどを鳴らすのはなぜですか？",
            "子猫はどうやって狩りを覚えますか？",
        ),
        (
            "猫は一日に十二時間から十六時間ほど眠ります。",
            "猫は満足しているときにのどをゴロゴロ鳴らします。",
            "子猫は母猫の狩りを見てネズミの捕まえ方を覚えます。",
            "猫は爪とぎで爪を鋭く保ちます。",
        ),
    ),
    Topic(
        "火山",
        "ja",
        (
            "火山はなぜ噴火するのですか？",
            "火山灰は飛行機に危険ですか？",
            "鹿児島の活火山はどこですか？",
        ),
        (
            "火山はマグマが地表に上がり、溶岩として噴き出すことで噴火します。",
            "大きな噴火の火山灰は飛行機の運航を止めることがあります。",
            "桜島は鹿児島にある活発な火山で、よく噴火します。",
            "火山の近くには温泉が多くあります。",
        ),
    ),
    Topic(
        "寿司",
        "ja",
        (
            "寿司はどうやって作りますか？",
            "回転寿司とは何ですか？",
            "寿司職人はどのように修行しますか？",
        ),
        (
            "寿司は酢飯に新鮮な魚をのせて作る日本料理です。",
            "回転寿司では皿に乗った寿司がベルトで運ばれてきます。",
            "寿司職人は何年も修行してシャリの握り方を学びます。",
            "マグロとサーモンは寿司のネタとして人気があります。",
        ),
    ),
    Topic(
        "富士山",
        "ja",
        (
            "富士山の高さは何メートルですか？",
            "富士山に登れる時期はいつですか？",
            "富士山は世界遺産ですか？",
        ),
        (
            "富士山は標高三七七六メートルで、日本で一番高い山です。",
            "富士山の登山シーズンは七月から九月までです。",
            "富士山は二〇一三年に世界文化遺産に登録されました。",
            "晴れた日には東京からも富士山が見えます。",
        ),
    ),
    Topic(
        "新幹線",
        "ja",
        (
            "東京から大阪まで新幹線で何時間かかりますか？",
            "新幹線はどのくらい速いですか？",
            "最初の新幹線はいつ開業しましたか？",
        ),
        (
            "新幹線は東京と大阪を約二時間半で結ぶ高速鉄道です。",
            "新幹線は時速三百キロ以上で走ることができます。",
            "最初の新幹線は一九六四年の東京オリンピックの前に開業しました。",
            "新幹線の車内では駅弁を食べる人が多いです。",
        ),
    ),
)
"""The built-in corpus: five English and five Japanese topics."""

ALL_PASSAGES: tuple[str, ...] = tuple(p for topic in TOPICS for p in topic.passages)
"""Every passage of :data:`TOPICS`, topic by topic."""


def _ranking_cases(language: str) -> list[tuple[str, list[str], int]]:
    """Build (query, passages, index of the relevant one) cases for one language.

    For query ``k`` of each topic the case holds passage ``k`` of that topic and passage ``k``
    of the next three topics of the same language; the relevant passage moves through every
    position so that a scorer returning input order cannot pass.
    """
    topics = [t for t in TOPICS if t.language == language]
    cases: list[tuple[str, list[str], int]] = []
    for k in range(2):
        for i, topic in enumerate(topics):
            distractors = [topics[(i + j) % len(topics)].passages[k] for j in (1, 2, 3)]
            relevant_index = (i + k) % 4
            passages = [
                *distractors[:relevant_index],
                topic.passages[k],
                *distractors[relevant_index:],
            ]
            cases.append((topic.queries[k], passages, relevant_index))
    return cases


EN_RANKING_CASES: list[tuple[str, list[str], int]] = _ranking_cases("en")
"""English (query, passages, index of the relevant passage) cases every tiny model gets right."""

JA_RANKING_CASES: list[tuple[str, list[str], int]] = _ranking_cases("ja")
"""Japanese (query, passages, index of the relevant passage) cases every tiny model gets right."""

RANKING_CASES: list[tuple[str, list[str], int]] = EN_RANKING_CASES + JA_RANKING_CASES
"""English then Japanese ranking cases; each built model is checked against all of them."""

_HIDDEN_SIZE = 32
_NUM_LAYERS = 2
_NUM_HEADS = 2
_INTERMEDIATE_SIZE = 64
_INITIALIZER_RANGE = 0.2  # 0.02 (the BERT default) learns far slower at this size
_MODEL_MAX_LENGTH = 512
_TRAIN_STEPS = 200
_TRAIN_LEARNING_RATE = 5e-3
_HEAD_STEPS = 40
_HEAD_LEARNING_RATE = 2e-3
_QUERIES_PER_STEP = 16
_NEGATIVES_PER_QUERY = 3
_BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_SPM_VOCAB_SIZE = 600
_HEADS = {"bert": "classifier", "xlmr": "classifier.out_proj"}
# ModernBERT: 3 layers like japanese-reranker-tiny-v2 (global attention, then two local
# ones); a local window of 16 tokens, so the tests' pairs reach past it.
_MODERNBERT_LAYERS = 3
_MODERNBERT_LOCAL_ATTENTION = 16
_MODERNBERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
Kind = Literal["bert", "xlmr", "modernbert-cls", "modernbert-mean"]


@dataclass(frozen=True)
class _Body:
    """A trained one-logit cross-encoder, kept so other head sizes can start from it."""

    tokenizer: PreTrainedTokenizerBase
    config: PretrainedConfig
    state_dict: dict[str, torch.Tensor]
    vocab_file_name: str
    vocab_file_bytes: bytes


_BODIES: dict[tuple[str, int], _Body] = {}
"""Trained one-logit models by (kind, seed), so a session trains each kind once."""


@contextlib.contextmanager
def isolated_torch(seed: int) -> Iterator[None]:
    """Seed torch and use one thread for a build, restoring the RNG and thread count after.

    Two threads were no faster for matrices this small on a 2-core machine (and far slower
    when the other core was busy), and one thread keeps results independent of the host.
    """
    import torch

    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous_threads)


def _corpus_texts() -> list[str]:
    """Every query and passage of the corpus, one per item."""
    return [text for topic in TOPICS for text in (*topic.queries, *topic.passages)]


def _training_groups(rng: random.Random) -> list[list[tuple[str, str]]]:
    """Draw one step's groups: a query with one own-topic passage first, then negatives.

    All negatives but the last come from other topics of the query's language (the hard
    case the ranking cases test); the last comes from any other topic.
    """
    groups = []
    for _ in range(_QUERIES_PER_STEP):
        topic = rng.choice(TOPICS)
        others = [t for t in TOPICS if t is not topic]
        same_language = [t for t in others if t.language == topic.language]
        negative_topics = [
            *(rng.choice(same_language) for _ in range(_NEGATIVES_PER_QUERY - 1)),
            rng.choice(others),
        ]
        query = rng.choice(topic.queries)
        passages = [rng.choice(topic.passages), *(rng.choice(t.passages) for t in negative_topics)]
        groups.append([(query, passage) for passage in passages])
    return groups


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    steps: int,
    learning_rate: float,
    seed: int,
) -> None:
    """Train ``model`` to score a query's own-topic passages above other topics' passages.

    With one logit the loss is binary cross-entropy plus a listwise softmax loss over each
    group (the positive against its negatives); with several labels it is cross-entropy over
    the classes, class 1 meaning relevant and class 0 irrelevant. The learning rate warms up
    over the first tenth of the steps and then decays linearly to zero.
    """
    import torch
    import torch.nn.functional as F

    rng = random.Random(seed)
    group_size = 1 + _NEGATIVES_PER_QUERY
    labels = torch.tensor([1] + [0] * _NEGATIVES_PER_QUERY).repeat(_QUERIES_PER_STEP)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * (steps - step) / steps
    )
    model.train()
    for _ in range(steps):
        pairs = [pair for group in _training_groups(rng) for pair in group]
        inputs = tokenizer(
            [q for q, _ in pairs], [p for _, p in pairs], padding=True, return_tensors="pt"
        )
        logits = model(**inputs).logits
        if logits.shape[1] == 1:
            scores = logits[:, 0]
            listwise = F.cross_entropy(
                scores.view(-1, group_size),
                torch.zeros(_QUERIES_PER_STEP, dtype=torch.long),
            )
            loss = F.binary_cross_entropy_with_logits(scores, labels.float()) + listwise
        else:
            loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()


def _relevance(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, query: str, passages: Sequence[str]
) -> list[float]:
    """Score passages with the raw model: the logit, or log P(class 1) for several labels."""
    import torch

    encoded = tokenizer([query] * len(passages), list(passages), padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**encoded).logits.float()
    if logits.shape[1] == 1:
        return logits[:, 0].tolist()
    return torch.log_softmax(logits, dim=1)[:, 1].tolist()


def _check_rankings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Raise if ``model`` does not put the relevant passage first in every ranking case."""
    failures = []
    for query, passages, relevant in RANKING_CASES:
        scores = _relevance(model, tokenizer, query, passages)
        best = max(range(len(scores)), key=scores.__getitem__)
        if best != relevant:
            failures.append(f"{query!r}: ranked {best} first, expected {relevant}")
    if failures:
        raise RuntimeError(
            f"The tiny {name} model got {len(failures)} of {len(RANKING_CASES)} ranking cases "
            f"wrong ({'; '.join(failures[:3])}). Raise _TRAIN_STEPS or pick another seed."
        )


def _bert_tokenizer(workdir: Path) -> PreTrainedTokenizerBase:
    """Write a WordPiece vocabulary for the corpus to ``workdir`` and load a BERT tokenizer.

    The vocabulary holds the special tokens, every whole word of the corpus after BERT's
    normalisation and pre-tokenisation, and every character both as a word start and as a
    ``##`` continuation, so any text made of corpus characters tokenizes without ``[UNK]``.
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizerFast

    normalizer = BertNormalizer(lowercase=True)
    pre_tokenizer = BertPreTokenizer()
    words: set[str] = set()
    for text in _corpus_texts():
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({c for word in words for c in word})
    vocab = [
        *_BERT_SPECIAL_TOKENS,
        *characters,
        *(f"##{c}" for c in characters),
        *sorted(words - set(characters)),
    ]
    (workdir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 ignores ``BertTokenizerFast(vocab_file=...)`` without a word and builds a
    # tokenizer holding only the special tokens; ``from_pretrained`` reads vocab.txt in 4.x and 5.x.
    tokenizer = BertTokenizerFast.from_pretrained(str(workdir))
    tokenizer.model_max_length = _MODEL_MAX_LENGTH
    return tokenizer


def _xlmr_tokenizer(workdir: Path) -> PreTrainedTokenizerBase:
    """Train a sentencepiece unigram model on the corpus and wrap it as an XLM-R tokenizer."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizerFast

    # The corpus alone is too small for unigram training to keep whole English words ("cat"
    # comes out as "▁c" + "at"), so each word and Japanese topic name is added on its own line.
    texts = _corpus_texts()
    words = sorted({word for text in texts for word in re.findall(r"[A-Za-z]+", text)})
    keywords = [topic.name for topic in TOPICS if topic.language == "ja"]
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join([*texts, *(words + keywords) * 3]) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(workdir / "spm"),
        vocab_size=_SPM_VOCAB_SIZE,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,  # the corpus is too small to fill the vocabulary
        num_threads=1,
        minloglevel=2,
    )
    (workdir / "spm.model").rename(workdir / "sentencepiece.bpe.model")
    # As for BERT, transformers 5 ignores ``XLMRobertaTokenizer(vocab_file=...)``;
    # ``from_pretrained`` converts the sentencepiece model, with XLM-R's fairseq id layout.
    tokenizer = XLMRobertaTokenizerFast.from_pretrained(str(workdir))
    tokenizer.model_max_length = _MODEL_MAX_LENGTH
    return tokenizer


def _modernbert_tokenizer(workdir: Path) -> PreTrainedTokenizerBase:
    """A sentencepiece unigram tokenizer with ``[CLS] A [SEP] B [SEP]``, as ModernBERT-Ja's.

    The japanese-reranker v2 models (ModernBERT-Ja / ruri-v3) tokenize with a sentencepiece
    unigram model and frame pairs with [CLS]/[SEP]; this one is trained on the corpus and
    loaded as a fast tokenizer (``tokenizer.json``), without segment ids.
    """
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    texts = _corpus_texts()
    words = sorted({word for text in texts for word in re.findall(r"[A-Za-z]+", text)})
    keywords = [topic.name for topic in TOPICS if topic.language == "ja"]
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join([*texts, *(words + keywords) * 3]) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(workdir / "spm"),
        vocab_size=_SPM_VOCAB_SIZE,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
        byte_fallback=True,  # emoji and unseen characters become byte pieces, not [UNK]
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
        pad_piece="[PAD]",
        unk_piece="[UNK]",
    )
    # The unigram pieces and scores, as tokenizers' Unigram model (what a hub tokenizer.json
    # converted from sentencepiece holds): NFKC, "▁" for spaces, byte fallback.
    processor = spm.SentencePieceProcessor(model_file=str(workdir / "spm.model"))
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(len(processor))]
    backend = Tokenizer(models.Unigram(pieces, unk_id=processor.unk_id(), byte_fallback=True))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
    backend.add_special_tokens(list(_MODERNBERT_SPECIAL_TOKENS))
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **dict(
            zip(
                ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"),
                _MODERNBERT_SPECIAL_TOKENS,
                strict=True,
            )
        ),
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.model_max_length = _MODEL_MAX_LENGTH
    return tokenizer


def _modernbert_config(
    tokenizer: PreTrainedTokenizerBase, num_labels: int, pooling: str
) -> PretrainedConfig:
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=_HIDDEN_SIZE,
        num_hidden_layers=_MODERNBERT_LAYERS,
        num_attention_heads=_NUM_HEADS,
        intermediate_size=_INTERMEDIATE_SIZE,
        max_position_embeddings=_MODEL_MAX_LENGTH,
        global_attn_every_n_layers=3,
        local_attention=_MODERNBERT_LOCAL_ATTENTION,
        classifier_pooling=pooling,
        initializer_range=_INITIALIZER_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        num_labels=num_labels,
    )


def _bert_config(tokenizer: PreTrainedTokenizerBase, num_labels: int) -> PretrainedConfig:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=_HIDDEN_SIZE,
        num_hidden_layers=_NUM_LAYERS,
        num_attention_heads=_NUM_HEADS,
        intermediate_size=_INTERMEDIATE_SIZE,
        max_position_embeddings=_MODEL_MAX_LENGTH,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=_INITIALIZER_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=num_labels,
    )


def _xlmr_config(tokenizer: PreTrainedTokenizerBase, num_labels: int) -> PretrainedConfig:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=_HIDDEN_SIZE,
        num_hidden_layers=_NUM_LAYERS,
        num_attention_heads=_NUM_HEADS,
        intermediate_size=_INTERMEDIATE_SIZE,
        max_position_embeddings=_MODEL_MAX_LENGTH + 2,  # positions start after pad_token_id
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=_INITIALIZER_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=num_labels,
    )


def _model_class(kind: str) -> type[PreTrainedModel]:
    from transformers import (
        BertForSequenceClassification,
        ModernBertForSequenceClassification,
        XLMRobertaForSequenceClassification,
    )

    if kind == "bert":
        return BertForSequenceClassification
    if kind.startswith("modernbert"):
        return ModernBertForSequenceClassification
    return XLMRobertaForSequenceClassification


def _zero_position_embeddings(model: PreTrainedModel) -> None:
    """Start position and segment embeddings at zero, so the model starts as a bag of words.

    Random position embeddings are as large as the token embeddings at this size and bury
    the shared-topic signal. Measured on BERT: from random, 300 steps left 1 or 2 ranking
    cases wrong for 3 of 4 seeds; from zero, 200 steps got all of them right for 8 of 8.
    """
    import torch

    embeddings = model.base_model.embeddings
    with torch.no_grad():
        embeddings.position_embeddings.weight.zero_()
        embeddings.token_type_embeddings.weight.zero_()


def _trained_body(kind: Kind, seed: int) -> _Body:
    """Train (once per process) the one-logit model of ``kind`` for ``seed``."""
    key = (kind, seed)
    if key not in _BODIES:
        with tempfile.TemporaryDirectory() as tmp, isolated_torch(seed):
            workdir = Path(tmp)
            if kind == "bert":
                tokenizer = _bert_tokenizer(workdir)
                config = _bert_config(tokenizer, num_labels=1)
                vocab_file = workdir / "vocab.txt"
            elif kind == "xlmr":
                tokenizer = _xlmr_tokenizer(workdir)
                config = _xlmr_config(tokenizer, num_labels=1)
                vocab_file = workdir / "sentencepiece.bpe.model"
            else:
                tokenizer = _modernbert_tokenizer(workdir)
                config = _modernbert_config(tokenizer, 1, kind.removeprefix("modernbert-"))
                vocab_file = workdir / "spm.model"
            model = _model_class(kind)(config)
            if not kind.startswith("modernbert"):  # rotary positions, no segments
                _zero_position_embeddings(model)
            _train(
                model, tokenizer, steps=_TRAIN_STEPS, learning_rate=_TRAIN_LEARNING_RATE, seed=seed
            )
            _check_rankings(model, tokenizer, f"{kind} (num_labels=1, seed={seed})")
            _BODIES[key] = _Body(
                tokenizer=tokenizer,
                config=config,
                state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                vocab_file_name=vocab_file.name,
                vocab_file_bytes=vocab_file.read_bytes(),
            )
    return _BODIES[key]


def _build(kind: Kind, path: str | os.PathLike[str], num_labels: int, seed: int) -> Path:
    """Build a cross-encoder of ``kind`` with ``num_labels`` outputs and save it to ``path``.

    A head with several labels starts from the trained one-logit model: class 1 gets half the
    trained logit and every other class minus half, so ``softmax(...)[1]`` starts out equal to
    the one-logit model's sigmoid; a short cross-entropy run then trains that head.
    """
    if num_labels < 1:
        raise ValueError(f"num_labels must be a positive int, got {num_labels!r}.")
    body = _trained_body(kind, seed)
    with isolated_torch(seed + num_labels):
        config = copy.deepcopy(body.config)
        config.num_labels = num_labels
        model = _model_class(kind)(config)
        state_dict = dict(body.state_dict)
        if num_labels > 1:
            head = _HEADS[kind]
            for name in (f"{head}.weight", f"{head}.bias"):
                half = state_dict[name] / 2
                widened = (-half).repeat(num_labels, *([1] * (half.dim() - 1)))
                widened[1] = half[0]
                state_dict[name] = widened
        model.load_state_dict(state_dict)
        model.eval()
        if num_labels > 1:
            _train(
                model,
                body.tokenizer,
                steps=_HEAD_STEPS,
                learning_rate=_HEAD_LEARNING_RATE,
                seed=seed + num_labels,
            )
            _check_rankings(model, body.tokenizer, f"{kind} (num_labels={num_labels}, seed={seed})")
        return _save(model, body.tokenizer, path, body.vocab_file_name, body.vocab_file_bytes)


def _save(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | os.PathLike[str],
    vocab_file_name: str,
    vocab_file_bytes: bytes,
) -> Path:
    """Save model and tokenizer, plus the raw vocabulary file that slow tokenizers read."""
    from transformers.utils import logging as hf_logging

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    progress_bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        if progress_bar:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(out)
    (out / vocab_file_name).write_bytes(vocab_file_bytes)
    return out


def build_bert(path: str | os.PathLike[str], *, num_labels: int = 1, seed: int = 0) -> Path:
    """Build, train and save a tiny BERT cross-encoder with a WordPiece vocabulary.

    Args:
        path: Directory to save into; created if missing.
        num_labels: Size of the classification head. 1 is a regular cross-encoder; with 2 or
            more, class 1 means relevant and the head is trained with cross-entropy.
        seed: Seed for the weights and the training order.

    Returns:
        The directory the model was saved to.
    """
    return _build("bert", path, num_labels, seed)


def build_xlmr(path: str | os.PathLike[str], *, num_labels: int = 1, seed: int = 0) -> Path:
    """Build, train and save a tiny XLM-RoBERTa cross-encoder with a sentencepiece vocabulary.

    The sentencepiece unigram model is trained here on the English and Japanese corpus.

    Args:
        path: Directory to save into; created if missing.
        num_labels: Size of the classification head, as for :func:`build_bert`.
        seed: Seed for the weights and the training order.

    Returns:
        The directory the model was saved to.
    """
    return _build("xlmr", path, num_labels, seed)


def build_modernbert(
    path: str | os.PathLike[str], *, pooling: Literal["cls", "mean"] = "cls", seed: int = 0
) -> Path:
    """Build, train and save a tiny ModernBERT cross-encoder (one logit).

    Shaped like the japanese-reranker v2 models (ModernBERT-Ja): rotary positions, global
    and local (sliding-window) attention layers, a sentencepiece unigram tokenizer, and
    ``classifier_pooling`` ``"cls"`` or ``"mean"``.

    Args:
        path: Directory to save into; created if missing.
        pooling: The classifier's pooling, ``"cls"`` (the v2 models') or ``"mean"``.
        seed: Seed for the weights and the training order.

    Returns:
        The directory the model was saved to.
    """
    return _build(f"modernbert-{pooling}", path, 1, seed)  # type: ignore[arg-type]


def build_base_model(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Save a tiny untrained BERT *without* a classification head (a plain ``BertModel``).

    Loading it with ``AutoModelForSequenceClassification`` gives a freshly initialised head,
    which is what "not a cross-encoder" checks must catch.

    Args:
        path: Directory to save into; created if missing.
        seed: Seed for the weights.

    Returns:
        The directory the model was saved to.
    """
    from transformers import BertModel

    with tempfile.TemporaryDirectory() as tmp, isolated_torch(seed):
        workdir = Path(tmp)
        tokenizer = _bert_tokenizer(workdir)
        model = BertModel(_bert_config(tokenizer, num_labels=1))
        vocab_file = workdir / "vocab.txt"
        return _save(model, tokenizer, path, vocab_file.name, vocab_file.read_bytes())


def main(argv: Sequence[str] | None = None) -> int:
    """Build one tiny model into a directory from the command line."""
    parser = argparse.ArgumentParser(description="Build a tiny offline cross-encoder.")
    parser.add_argument("outdir", type=Path, help="directory to save the model into")
    parser.add_argument(
        "--kind",
        choices=("bert", "xlmr", "modernbert-cls", "modernbert-mean", "base"),
        default="bert",
    )
    parser.add_argument("--num-labels", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "base":
        build_base_model(args.outdir, seed=args.seed)
    else:
        _build(args.kind, args.outdir, args.num_labels, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
