"""A faster, exact forward for BERT-family cross-encoders: padding-free, [CLS]-only last layer.

``model(**inputs).logits`` spends work a cross-encoder does not need. This module runs the
same weights with two exact shortcuts:

- the dense layers (attention projections, feed-forward) run on the real tokens only, packed
  into one ``[tokens, hidden]`` matrix, so padding costs no matmul work; only attention
  itself runs on the padded batch, with the padding masked out;
- the last layer computes only the first token's row (its query, output projection and
  feed-forward): the classification head reads nothing else.

It covers BERT, RoBERTa and XLM-RoBERTa sequence classifiers in their standard form
(absolute positions, encoder only); :func:`packed_encoder` returns ``None`` for anything
else, which then runs through transformers as is. The tests check it against transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_HEADS = {
    "BertForSequenceClassification": "pooler",
    "RobertaForSequenceClassification": "features",
    "XLMRobertaForSequenceClassification": "features",
}
_MODEL_TYPES = ("bert", "roberta", "xlm-roberta")

# Where each part of a BERT/RoBERTa encoder layer lives (the same in transformers 4 and 5).
_LAYER_PARTS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "activation": "intermediate.intermediate_act_fn",
    "out": "output.dense",
    "out_norm": "output.LayerNorm",
}


@dataclass(frozen=True, slots=True)
class Logits:
    """What :class:`PackedEncoder` returns: the same ``.logits`` as a transformers output."""

    logits: torch.Tensor


@dataclass(frozen=True, slots=True)
class _Layer:
    query: Any
    key: Any
    value: Any
    attention_out: Any
    attention_norm: Any
    intermediate: Any
    activation: Any
    out: Any
    out_norm: Any


class PackedEncoder:
    """Callable like the model it wraps (``encoder(**inputs).logits``), with right padding.

    Rows of ``input_ids`` must start at position 0 and be padded on the right, as the
    scorer builds them; ``attention_mask`` marks the real tokens.
    """

    def __init__(self, model: Any, head: str) -> None:
        base = getattr(model, model.base_model_prefix)
        self._model = model
        self._head = head
        self._embeddings = base.embeddings
        self._pooler: Any = getattr(base, "pooler", None)
        self._heads = model.config.num_attention_heads
        self._layers = [
            _Layer(**{name: attrgetter(path)(layer) for name, path in _LAYER_PARTS.items()})
            for layer in base.encoder.layer
        ]

    def __call__(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> Logits:
        import torch

        batch, width = input_ids.shape
        embedded = self._embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        hidden_size = embedded.shape[-1]
        mask = attention_mask.bool()
        padded = not bool(mask.all())
        flat = mask.reshape(-1).nonzero().squeeze(1) if padded else None
        hidden = embedded.reshape(batch * width, hidden_size)
        if flat is not None:
            hidden = hidden[flat]
        key_mask = mask[:, None, None, :] if padded else None
        lengths = mask.sum(dim=1)
        first_tokens = torch.cumsum(lengths, dim=0) - lengths

        def to_heads(rows: torch.Tensor) -> torch.Tensor:
            """Packed ``[tokens, hidden]`` rows -> padded ``[batch, heads, width, head_dim]``."""
            if flat is not None:
                full = rows.new_zeros(batch * width, rows.shape[-1])
                full[flat] = rows
                rows = full
            return rows.view(batch, width, self._heads, -1).transpose(1, 2)

        def attend(query: torch.Tensor, rows: torch.Tensor, layer: _Layer) -> torch.Tensor:
            """The attention output for ``query`` over the packed ``rows`` of this layer."""
            keys, values = to_heads(layer.key(rows)), to_heads(layer.value(rows))
            return torch.nn.functional.scaled_dot_product_attention(
                query, keys, values, attn_mask=key_mask
            )

        def feed_forward(attended: torch.Tensor, residual: torch.Tensor, layer: _Layer) -> Any:
            mixed = layer.attention_norm(layer.attention_out(attended) + residual)
            return layer.out_norm(layer.out(layer.activation(layer.intermediate(mixed))) + mixed)

        for layer in self._layers[:-1]:
            context = attend(to_heads(layer.query(hidden)), hidden, layer)
            context = context.transpose(1, 2).reshape(batch * width, hidden_size)
            if flat is not None:
                context = context[flat]
            hidden = feed_forward(context, hidden, layer)

        last = self._layers[-1]
        first = hidden[first_tokens]
        query = last.query(first).view(batch, 1, self._heads, -1).transpose(1, 2)
        context = attend(query, hidden, last).reshape(batch, hidden_size)
        features = feed_forward(context, first, last)[:, None, :]
        if self._head == "pooler":
            return Logits(self._model.classifier(self._pooler(features)))
        return Logits(self._model.classifier(features))


def covers(config: Any) -> bool:
    """Tell from its config alone whether a model is one :func:`packed_encoder` can run."""
    auto_map = getattr(config, "auto_map", None) or {}
    return (
        getattr(config, "model_type", None) in _MODEL_TYPES
        and "AutoModelForSequenceClassification" not in auto_map
        and not getattr(config, "is_decoder", False)
        and not getattr(config, "add_cross_attention", False)
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
    )


def packed_encoder(model: Any) -> PackedEncoder | None:
    """Wrap ``model`` if it is a standard BERT/RoBERTa/XLM-R sequence classifier, else None."""
    head = _HEADS.get(type(model).__name__)
    config = getattr(model, "config", None)
    if head is None or config is None or not covers(config):
        return None
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if base is None or (head == "pooler" and getattr(base, "pooler", None) is None):
        return None
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not layers or not all(_standard_layer(layer) for layer in layers):
        return None
    return PackedEncoder(model, head)


def _standard_layer(layer: Any) -> bool:
    """Tell whether an encoder layer has the BERT structure this module reimplements."""
    if getattr(layer, "crossattention", None) is not None:
        return False
    try:
        return all(attrgetter(path)(layer) is not None for path in _LAYER_PARTS.values())
    except AttributeError:
        return False
