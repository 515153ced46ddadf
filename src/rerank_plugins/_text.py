"""Text utilities: a Japanese-aware sentence splitter and the tokenizers used by BM25.

Both are pure Python. The optional ``fugashi`` morphological analyser (``pip install
"rerank-plugins[ja]"``) is imported only when a Japanese text is tokenized with it.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from typing import Any, Literal

from rerank_plugins._optional import is_available, require

__all__ = [
    "TOKENIZERS",
    "TokenizerName",
    "bm25_tokenize",
    "contains_cjk",
    "get_tokenizer",
    "resolve_tokenizer",
    "split_sentences",
]

TokenizerName = Literal["auto", "fugashi", "bigram", "whitespace"]
TOKENIZERS: tuple[TokenizerName, ...] = ("auto", "fugashi", "bigram", "whitespace")

# --------------------------------------------------------------------------- sentences

# Sentence ends that split wherever they appear (Japanese and full-width forms). ASCII
# "!" and "?" join them right after a Han/kana character; "．" when no digit follows.
_CJK_ENDS = frozenset("。｡！？‼⁇⁈⁉")
# Sentence ends that split only before whitespace or the end of the text.
_LATIN_ENDS = frozenset(".!?")
# Closing brackets and quotes that stay with the sentence they follow.
_CLOSERS = frozenset("」』）〕】〗〙〛》〉〟”’\"')]}»›")
# Japanese brackets whose contents (a quotation) are not split: 「はい。そうです。」と言った。
_OPENERS = {"「": "」", "『": "』", "（": "）", "【": "】", "〔": "〕", "《": "》", "〈": "〉"}
_CLOSER_OF_OPENER = frozenset(_OPENERS.values())
# Words whose trailing "." does not end a sentence (compared lowercased, without the dot).
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf", "al", "etc"),
        *("fig", "figs", "eq", "eqs", "vol", "vols", "pp", "approx", "dept", "inc", "ltd"),
        *("corp", "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)
# Dotted initialisms (the last dot excluded): "e.g", "i.e", "U.S", "Ph.D", "p.m".
_DOTTED = re.compile(r"(?:[^\W\d_]{1,2}\.)+[^\W\d_]{1,2}\Z")
# The only characters where a sentence can end or a bracket opens or closes: the splitter
# jumps from one to the next (a regex search), so plain text costs no Python-level steps.
_CANDIDATES = re.compile(
    "["
    + re.escape("".join(sorted({*_CJK_ENDS, *_LATIN_ENDS, *_OPENERS, *_CLOSER_OF_OPENER})))
    + "．\r\n]"
)
_CLOSER_CLASS = "[" + re.escape("".join(sorted(_CLOSERS))) + "]*"
# What follows a Japanese end: more ends, closing brackets and quotes, then whitespace.
_CJK_TAIL = re.compile(
    "[" + re.escape("".join(sorted(_CJK_ENDS))) + "!?．.]*" + _CLOSER_CLASS + r"\s*"
)
# What follows a Latin end before the whitespace it needs: more ends, closers.
_LATIN_TAIL = re.compile(r"[.!?]*" + _CLOSER_CLASS)
_SPACES = re.compile(r"\s*")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split ``text`` into sentences and return their ``(start, end)`` character spans.

    The spans are contiguous and cover the whole text: ``"".join(text[s:e] for s, e in
    spans) == text``. Whitespace after a sentence belongs to that sentence (strip the
    pieces if you need clean sentences); whitespace before the first one belongs to it.

    Boundaries:

    * Japanese ends ``。 ！ ？`` (and ``! ?``) split wherever they appear, except inside
      Japanese brackets such as ``「…」`` (a quotation stays whole, up to the next line
      break); closing brackets and quotes right after the end (``。」``) stay with it.
    * Latin ``. ! ?`` split only when followed by whitespace or the end of the text, so
      decimals (``3.14``) and URLs stay whole. A ``.`` after an abbreviation (``e.g.``,
      ``Dr.``, ``Fig.``), an initial (``J. K.``) or before a lowercase word does not split.
    * A line break always ends a sentence; blank lines stay with the sentence above.

    Args:
        text: Any text; an empty string gives ``[]``.

    Returns:
        The sentence spans, in order.

    Raises:
        TypeError: ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        msg = f"text must be a str, got {type(text).__name__}."
        raise TypeError(msg)
    spans: list[tuple[int, int]] = []
    n = len(text)
    start = 0
    depth: list[str] = []  # expected closers of the Japanese brackets open right now
    i = 0
    while (found := _CANDIDATES.search(text, i)) is not None:
        i = found.start()
        char = text[i]
        if char in _OPENERS:
            depth.append(_OPENERS[char])
            i += 1
            continue
        if char in _CLOSER_OF_OPENER and depth and depth[-1] == char:
            depth.pop()
            i += 1
            continue
        end = _boundary_end(text, i, quoted=bool(depth))
        if end is None:
            i += 1
            continue
        if char in "\r\n":
            depth.clear()  # an unclosed bracket never swallows the next line
            if not text[start:i].strip():
                i = end  # leading blank lines join the next sentence
                continue
        spans.append((start, end))
        start = i = end
    if start < n:
        spans.append((start, n))
    return spans


def _boundary_end(text: str, i: int, *, quoted: bool) -> int | None:
    """Return where the sentence ending at ``text[i]`` stops, or None if it does not end."""
    char = text[i]
    if char in "\r\n":
        return _skip_space(text, i)
    if quoted:
        return None
    if (
        char in _CJK_ENDS
        or (char in "!?" and i > 0 and _HAS_CJK.match(text[i - 1]) is not None)
        or (char == "．" and not text[i + 1 : i + 2].isdigit())
    ):
        return _CJK_TAIL.match(text, i + 1).end()  # type: ignore[union-attr]
    if char not in _LATIN_ENDS:
        return None
    j = _LATIN_TAIL.match(text, i + 1).end()  # type: ignore[union-attr]
    if j < len(text) and not text[j].isspace():
        return None  # "3.14", "example.com", "a.b": no break without whitespace
    if char == "." and j == i + 1 and not _ends_sentence_after_dot(text, i, j):
        return None
    return _skip_space(text, j)


def _ends_sentence_after_dot(text: str, dot: int, after: int) -> bool:
    """Tell whether a ``.`` at ``dot``, followed by whitespace or the end, ends a sentence."""
    # Abbreviations and initialisms are short: the last 64 characters hold the word.
    before = text[max(0, dot - 64) : dot]
    word = "" if not before or before[-1].isspace() else before.rsplit(maxsplit=1)[-1]
    word = word.lstrip("\"'([{“‘")
    if word.lower() in _ABBREVIATIONS or _DOTTED.match(word):
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. K. Rowling"
    following = _skip_space(text, after)
    # "approx. three" or "the U.S. economy": a lowercase continuation is not a new sentence.
    # (An index, not ``text[after:].lstrip()``: that copy made the splitter quadratic.)
    return not (following < len(text) and text[following].islower())


def _skip_space(text: str, j: int) -> int:
    return _SPACES.match(text, j).end()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- tokenizers

# Han ideographs (with 々 〆 〇 and the extension blocks), hiragana and katakana (with ー).
_CJK_CLASS = (
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u3041-\u3096\u309d-\u309f"
    "\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
_HAS_CJK = re.compile(f"[{_CJK_CLASS}]")
_WORD = re.compile(r"\w+")

_local = threading.local()


def contains_cjk(text: str) -> bool:
    """Return whether ``text`` has a Han character, hiragana or katakana."""
    return _HAS_CJK.search(text) is not None


def _fugashi_ready() -> bool:
    return is_available("fugashi") and (is_available("unidic_lite") or is_available("unidic"))


def resolve_tokenizer(tokenizer: TokenizerName) -> Literal["fugashi", "bigram", "whitespace"]:
    """Return the concrete strategy ``tokenizer`` stands for in this environment.

    ``"auto"`` means ``"fugashi"`` when fugashi and a UniDic dictionary are installed, and
    ``"bigram"`` otherwise. Record the resolved name with any BM25 result you compare:
    the two give different rankings.

    Raises:
        ValueError: ``tokenizer`` is not one of :data:`TOKENIZERS`.
    """
    if tokenizer == "auto":
        return "fugashi" if _fugashi_ready() else "bigram"
    if tokenizer in ("fugashi", "bigram", "whitespace"):
        return tokenizer
    choices = ", ".join(repr(name) for name in TOKENIZERS)
    msg = f"tokenizer must be one of {choices}, got {tokenizer!r}."
    raise ValueError(msg)


def get_tokenizer(tokenizer: TokenizerName = "auto") -> Callable[[str], list[str]]:
    """Return the tokenizing function for ``tokenizer`` (see :func:`bm25_tokenize`).

    Resolving once up front (as :class:`~rerank_plugins.eval.bm25.BM25Index` does) makes
    the index and its queries use the same strategy, and checks dependencies early.

    Raises:
        ValueError: ``tokenizer`` is unknown.
        MissingDependencyError: ``"fugashi"`` was asked for but fugashi or its dictionary
            is not installed.
    """
    name = resolve_tokenizer(tokenizer)
    if name == "whitespace":
        return _tokenize_words
    if name == "bigram":
        return _tokenize_bigram
    _fugashi_tagger()  # fail now, not at the first Japanese text
    return _tokenize_fugashi


def bm25_tokenize(text: str, *, tokenizer: TokenizerName = "auto") -> list[str]:
    r"""Split ``text`` into the lowercase terms BM25 matches on.

    The text is NFKC-normalised (full-width letters and digits become ASCII, half-width
    katakana becomes full-width) and case-folded. Then:

    * ``"whitespace"``: runs of word characters (``\w+``, Unicode-aware); punctuation
      is dropped. A Japanese sentence without spaces becomes one long term.
    * ``"bigram"``: as ``"whitespace"``, except that each run of Han/kana characters is
      cut into overlapping character bigrams (``東京都`` -> ``東京``, ``京都``; a single
      character stays a unigram). Needs no dictionary.
    * ``"fugashi"``: as ``"whitespace"``, except that each Han/kana run is split into
      words by MeCab (fugashi) with UniDic (``unidic-lite``), keeping surface forms.
    * ``"auto"`` (default): ``"fugashi"`` when it is installed, else ``"bigram"``. Latin
      text comes out the same with any of the three.

    Raises:
        TypeError: ``text`` is not a ``str``.
        ValueError: ``tokenizer`` is unknown.
        MissingDependencyError: ``"fugashi"`` was asked for and is not installed.
    """
    if not isinstance(text, str):
        msg = f"text must be a str, got {type(text).__name__}."
        raise TypeError(msg)
    return get_tokenizer(tokenizer)(text)


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _tokenize_words(text: str) -> list[str]:
    return _WORD.findall(_normalize(text))


def _split_runs(text: str, cjk: Callable[[str], list[str]]) -> list[str]:
    """Tokenize Han/kana runs with ``cjk`` and everything between them as words."""
    text = _normalize(text)
    tokens: list[str] = []
    pos = 0
    for match in _CJK_RUN.finditer(text):
        tokens.extend(_WORD.findall(text, pos, match.start()))
        tokens.extend(cjk(match.group()))
        pos = match.end()
    tokens.extend(_WORD.findall(text, pos))
    return tokens


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[k : k + 2] for k in range(len(run) - 1)]


def _tokenize_bigram(text: str) -> list[str]:
    return _split_runs(text, _bigrams)


def _fugashi_tagger() -> Any:
    """Return this thread's fugashi tagger (MeCab taggers are not thread-safe)."""
    tagger = getattr(_local, "tagger", None)
    if tagger is None:
        fugashi = require("fugashi", extra="ja", feature="The 'fugashi' BM25 tokenizer")
        if not (is_available("unidic_lite") or is_available("unidic")):
            require("unidic_lite", extra="ja", feature="fugashi", package="unidic-lite")
        tagger = fugashi.Tagger()
        _local.tagger = tagger
    return tagger


def _tokenize_fugashi(text: str) -> list[str]:
    tagger = _fugashi_tagger()

    def words(run: str) -> list[str]:
        return [word.surface for word in tagger(run) if word.surface]

    return _split_runs(text, words)
