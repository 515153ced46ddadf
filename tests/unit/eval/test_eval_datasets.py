"""Data set loaders: SQuAD/JSQuAD/JaQuAD, BEIR, JQaRA-style and DPR-style files."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from rerank_plugins.eval.datasets import EvalDataset, load_dataset

SHARED = Path(__file__).parents[3] / ".." / "shared"


def _write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def _squad(articles: list[tuple[str, list[tuple[str, list[tuple[str, str]]]]]]) -> dict:
    """Build SQuAD JSON from [(title, [(context, [(qid, question)])])]."""
    return {
        "version": "test",
        "data": [
            {
                "title": title,
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": qid,
                                "question": q,
                                "answers": [{"text": "x", "answer_start": 0}],
                            }
                            for qid, q in qas
                        ],
                    }
                    for context, qas in paragraphs
                ],
            }
            for title, paragraphs in articles
        ],
    }


# --------------------------------------------------------------------------- SQuAD


def test_squad_jsquad_style_context_and_own_paragraph_relevance(tmp_path):
    path = _write_json(
        tmp_path / "valid.json",
        _squad(
            [
                (
                    "梅雨",
                    [
                        ("梅雨 [SEP] 梅雨は雨季の一種である。", [("q1", "梅雨とは何か。")]),
                        (
                            "梅雨 [SEP] 五月から七月に来る。",
                            [("q2", "いつ来るか。"), ("q3", "何月か。")],
                        ),
                    ],
                ),
                ("富士山", [("富士山 [SEP] 日本一高い山。", [("q4", "一番高い山は。")])]),
            ]
        ),
    )
    dataset = load_dataset(path, "squad")
    assert dataset.name == "valid.json"
    assert dataset.corpus == {
        "p0": "梅雨\n梅雨は雨季の一種である。",
        "p1": "梅雨\n五月から七月に来る。",
        "p2": "富士山\n日本一高い山。",
    }
    assert dataset.queries == {
        "q1": "梅雨とは何か。",
        "q2": "いつ来るか。",
        "q3": "何月か。",
        "q4": "一番高い山は。",
    }
    assert dataset.qrels == {"q1": {"p0": 1}, "q2": {"p1": 1}, "q3": {"p1": 1}, "q4": {"p2": 1}}
    # Candidates: the paragraphs of the question's own article.
    assert dataset.candidates == {
        "q1": ["p0", "p1"],
        "q2": ["p0", "p1"],
        "q3": ["p0", "p1"],
        "q4": ["p2"],
    }


def test_squad_directory_and_glob_with_duplicate_paragraphs_merged(tmp_path):
    shared_context = "同じ段落です。"
    _write_json(
        tmp_path / "part_0000.json", _squad([("A", [(shared_context, [("a1", "質問一")])])])
    )
    _write_json(
        tmp_path / "part_0001.json",
        _squad([("B", [(shared_context, [("b1", "質問二")]), ("別の段落。", [("b2", "質問三")])])]),
    )
    (tmp_path / "notes.txt").write_text("not data", encoding="utf-8")
    by_dir = load_dataset(tmp_path, "squad")
    by_glob = load_dataset(str(tmp_path / "part_*.json"), "squad")
    for dataset in (by_dir, by_glob):
        assert dataset.corpus == {"p0": shared_context, "p1": "別の段落。"}
        assert dataset.qrels == {"a1": {"p0": 1}, "b1": {"p0": 1}, "b2": {"p1": 1}}
    assert load_dataset(tmp_path / "part_0000.json", "squad").queries == {"a1": "質問一"}


def test_squad_skips_unanswerable_questions(tmp_path):
    data = _squad([("T", [("Context.", [("ok", "Answerable?")])])])
    data["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "no", "question": "Unanswerable?", "answers": [], "is_impossible": True}
    )
    dataset = load_dataset(_write_json(tmp_path / "v2.json", data), "squad")
    assert list(dataset.queries) == ["ok"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"articles": []}, r"valid\.json: expected SQuAD JSON, an object with a 'data' list"),
        ({"data": [{"title": "T"}]}, r"valid\.json: data\[0\]: expected a 'paragraphs' list\.$"),
        (
            {"data": [{"paragraphs": [{"qas": []}]}]},
            r"valid\.json: data\[0\]\.paragraphs\[0\]: expected a non-empty string in 'context'",
        ),
        (
            {"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q"}]}]}]},
            r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: expected a non-empty string in 'question', "
            r"got None\.$",
        ),
        (
            {"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "q?"}]}]}]},
            r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: the question has no 'id'\.$",
        ),
    ],
    ids=["no-data", "no-paragraphs", "no-context", "no-question", "no-id"],
)
def test_squad_malformed_records_name_file_and_record(tmp_path, data, message):
    path = _write_json(tmp_path / "valid.json", data)
    with pytest.raises(ValueError, match=message):
        load_dataset(path, "squad")


def test_squad_duplicate_question_id_on_another_paragraph(tmp_path):
    data = _squad([("T", [("One.", [("q", "A?")]), ("Two.", [("q", "B?")])])])
    with pytest.raises(
        ValueError, match=r"qas\[0\]: question id 'q' appears twice; ids must be unique\.$"
    ):
        load_dataset(_write_json(tmp_path / "d.json", data), "squad")


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"title": }\n]}', encoding="utf-8")
    with pytest.raises(
        ValueError,
        match=r"broken\.json: not valid JSON \(Expecting value at line 2, column 13\)\.$",
    ):
        load_dataset(path, "squad")


def test_real_jsquad_validation_set():
    path = SHARED / "JSQuAD" / "valid-v1.3.json"
    if not path.is_file():
        pytest.skip(f"{path} is not there (CI keeps shared/ beside the repository)")
    dataset = load_dataset(path, "squad")
    assert (len(dataset.queries), len(dataset.corpus)) == (4442, 1145)
    assert all(len(judged) == 1 for judged in dataset.qrels.values())
    assert not any("[SEP]" in text for text in dataset.corpus.values())
    assert dataset.corpus["p0"].startswith("梅雨\n梅雨（つゆ、ばいう）は")


# --------------------------------------------------------------------------- BEIR


def _beir(root: Path, qrels_lines: list[str]) -> Path:
    root.mkdir()
    _write_jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr."},
            {"_id": "d2", "title": "", "text": "Dogs bark."},
            {"_id": 3, "text": "Fish swim."},
        ],
    )
    _write_jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "do cats purr"},
            {"_id": "q2", "text": "do dogs bark"},
            {"_id": "q3", "text": "x"},
        ],
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("".join(line + "\n" for line in qrels_lines), "utf-8")
    return root


def test_beir_directory(tmp_path, caplog):
    root = _beir(
        tmp_path / "mini",
        ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q2\td2\t2", "q2\t3\t0", "q2\tgone\t1"],
    )
    dataset = load_dataset(root, "beir")
    assert dataset.name == "mini"
    assert dataset.corpus == {"d1": "Cats\nCats purr.", "d2": "Dogs bark.", "3": "Fish swim."}
    assert dataset.queries == {"q1": "do cats purr", "q2": "do dogs bark"}  # q3 has no judgments
    assert dataset.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "3": 0}}
    assert dataset.candidates is None
    assert "Dropped 1 judgments of documents missing from the corpus" in caplog.text


def test_beir_gzipped_corpus_and_other_split(tmp_path):
    root = _beir(tmp_path / "mini", ["q1\td1\t1"])
    corpus = (root / "corpus.jsonl").read_bytes()
    (root / "corpus.jsonl").unlink()
    (root / "corpus.jsonl.gz").write_bytes(gzip.compress(corpus))
    (root / "qrels" / "dev.tsv").write_text("q2\td2\t1\n", "utf-8")
    assert load_dataset(root, "beir", split="dev").qrels == {"q2": {"d2": 1}}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q1\td1", r"test\.tsv:2: expected 3 tab-separated fields \(query-id, corpus-id, score\)"),
        (
            "q1\td1\tvery",
            r"test\.tsv:2: a relevance label must be an integer or a boolean, got 'very'\.$",
        ),
        ("q9\td1\t1", r"test\.tsv:2: query 'q9' is not in queries\.jsonl\.$"),
    ],
)
def test_beir_malformed_qrels(tmp_path, line, message):
    root = _beir(tmp_path / "mini", ["query-id\tcorpus-id\tscore", line])
    with pytest.raises(ValueError, match=message):
        load_dataset(root, "beir")


def test_beir_missing_file_lists_what_is_there(tmp_path):
    root = _beir(tmp_path / "mini", ["q1\td1\t1"])
    (root / "queries.jsonl").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"has no queries\.jsonl \(it has: corpus\.jsonl, qrels\)\.$"
    ):
        load_dataset(root, "beir")


def test_beir_malformed_jsonl_line(tmp_path):
    root = _beir(tmp_path / "mini", ["q1\td1\t1"])
    with (root / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{not json}\n")
    with pytest.raises(
        ValueError, match=r"corpus\.jsonl:4: not valid JSON \(Expecting property name"
    ):
        load_dataset(root, "beir")


# --------------------------------------------------------------------------- JQaRA


def test_jqara_flat_rows_grouped_by_query_id(tmp_path):
    rows = [
        {
            "id": 0,
            "q_id": "Q1",
            "passage_row_id": "r1",
            "question": "日本の首都は",
            "title": "東京",
            "text": "東京は首都。",
            "label": 1,
        },
        {
            "id": 1,
            "q_id": "Q1",
            "passage_row_id": "r2",
            "question": "日本の首都は",
            "title": "大阪",
            "text": "大阪は都市。",
            "label": 0,
        },
        {
            "id": 2,
            "q_id": "Q2",
            "passage_row_id": "r2",
            "question": "大阪とは",
            "title": "大阪",
            "text": "大阪は都市。",
            "label": 1,
        },
    ]
    dataset = load_dataset(_write_jsonl(tmp_path / "dev.jsonl", rows), "jqara")
    assert dataset.corpus == {"r1": "東京\n東京は首都。", "r2": "大阪\n大阪は都市。"}
    assert dataset.queries == {"Q1": "日本の首都は", "Q2": "大阪とは"}
    assert dataset.qrels == {"Q1": {"r1": 1, "r2": 0}, "Q2": {"r2": 1}}
    assert dataset.candidates == {"Q1": ["r1", "r2"], "Q2": ["r2"]}


def test_jqara_csv_without_ids_groups_by_query_text(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text(
        "question,text,label\nwhat is a cat,A cat is an animal.,1\n"
        'what is a cat,"Stocks, bonds.",0\nwhat is a dog,A cat is an animal.,false\n',
        encoding="utf-8",
    )
    dataset = load_dataset(path, "jqara")
    assert dataset.queries == {"q0": "what is a cat", "q1": "what is a dog"}
    assert dataset.corpus == {"p0": "A cat is an animal.", "p1": "Stocks, bonds."}
    assert dataset.qrels == {"q0": {"p0": 1, "p1": 0}, "q1": {"p0": 0}}


def test_jqara_one_record_per_query(tmp_path):
    records = [
        {
            "qid": "a",
            "query": "cat",
            "passages": ["About cats.", {"title": "Dog", "text": "About dogs."}],
            "labels": [1, 0],
        },
        {"query": "dog", "passages": [{"text": "About dogs.", "title": "Dog"}], "labels": [True]},
    ]
    dataset = load_dataset(_write_jsonl(tmp_path / "q.jsonl", records), "jqara")
    assert dataset.corpus == {"p0": "About cats.", "p1": "Dog\nAbout dogs."}
    assert dataset.qrels == {"a": {"p0": 1, "p1": 0}, "q0": {"p1": 1}}
    assert dataset.candidates == {"a": ["p0", "p1"], "q0": ["p1"]}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"query": "q", "passages": ["a", "b"], "labels": [1]},
            r"q\.jsonl:1: 2 passages but 1 labels; give one label per passage\.$",
        ),
        ({"query": "q", "text": "a"}, r"q\.jsonl:1: the row has no 'label'"),
        (
            {"text": "a", "label": 1},
            r"q\.jsonl:1: expected a non-empty string in 'query' or 'question', got None\.$",
        ),
        (
            {"query": "q", "passages": [3], "labels": [1]},
            r"q\.jsonl:1: passages\[0\]: a passage must be a string or an object",
        ),
        (
            {"query": "q", "text": "a", "label": "yes"},
            r"q\.jsonl:1: a relevance label must be an integer or a boolean, got 'yes'\.$",
        ),
    ],
    ids=["label-count", "no-label", "no-query", "bad-passage", "bad-label"],
)
def test_jqara_malformed_records(tmp_path, record, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(_write_jsonl(tmp_path / "q.jsonl", [record]), "jqara")


def test_conflicting_document_ids(tmp_path):
    rows = [
        {"qid": "a", "query": "x", "docid": "d", "text": "one", "label": 1},
        {"qid": "a", "query": "x", "docid": "d", "text": "two", "label": 0},
    ]
    path = _write_jsonl(tmp_path / "q.jsonl", rows)
    with pytest.raises(
        ValueError,
        match=rf"q\.jsonl:2: document id 'd' was already given a different text at "
        rf"{re.escape(str(path))}:1 \('one', now 'two'\); ids must be unique\.$",
    ):
        load_dataset(path, "jqara")


def test_jqara_repeated_row_keeps_the_highest_label_and_warns(tmp_path, caplog):
    """Bug: a (question, passage) row labelled 1 then 0 lost its positive (last label won),
    so the question silently left the evaluation."""
    rows = [
        {"qid": "a", "query": "x", "text": "gold", "label": 1},
        {"qid": "a", "query": "x", "text": "other", "label": 0},
        {"qid": "a", "query": "x", "text": "gold", "label": 0},
        {"qid": "a", "query": "x", "text": "other", "label": 0},
    ]
    dataset = load_dataset(_write_jsonl(tmp_path / "q.jsonl", rows), "jqara")
    assert dataset.qrels == {"a": {"p0": 1, "p1": 0}}
    assert dataset.candidates == {"a": ["p0", "p1"]}
    assert caplog.messages == [
        f"{tmp_path / 'q.jsonl'}: 2 repeated (query, document) judgments, 1 of them with a "
        "different label; each pair keeps its highest label."
    ]


def test_beir_repeated_judgment_keeps_the_highest_label_and_warns(tmp_path, caplog):
    """The same rule as JQaRA and DPR: qrels/test.tsv judging a pair twice keeps the max."""
    root = _beir(tmp_path / "mini", ["q1\td1\t2", "q1\td1\t0", "q1\td2\t0"])
    assert load_dataset(root, "beir").qrels == {"q1": {"d1": 2, "d2": 0}}
    assert caplog.messages == [
        f"{root / 'qrels' / 'test.tsv'}: 1 repeated (query, document) judgments, 1 of them "
        "with a different label; each pair keeps its highest label."
    ]


def test_dpr_repeated_context_keeps_the_highest_label_and_warns(tmp_path, caplog):
    record = {"question": "q", "ctxs": [
        {"title": "T", "text": "A won.", "hasanswer": False},
        {"title": "T", "text": "A won.", "hasanswer": True},
    ]}  # fmt: skip
    dataset = load_dataset(_write_jsonl(tmp_path / "nq.jsonl", [record]), "dpr")
    assert dataset.qrels == {"q0": {"p0": 1}}
    assert "1 repeated (query, document) judgments, 1 of them with a different label" in (
        caplog.text
    )


@pytest.mark.parametrize("file", ["corpus.jsonl", "queries.jsonl"])
def test_beir_duplicate_id_with_another_text_raises_with_both_lines(tmp_path, file):
    """Bug: a duplicate _id in corpus.jsonl silently kept the second text."""
    root = _beir(tmp_path / "mini", ["q1\td1\t1"])
    with (root / file).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "d1" if file == "corpus.jsonl" else "q1", "text": "new"}))
    kind, item = ("document", "d1") if file == "corpus.jsonl" else ("query", "q1")
    path = re.escape(str(root / file))
    with pytest.raises(
        ValueError,
        match=rf"^{path}:4: {kind} id '{item}' was already given a different text at "
        rf"{path}:1 \(.*, now 'new'\); ids must be unique\.$",
    ):
        load_dataset(root, "beir")


def test_beir_duplicate_id_with_the_same_text_is_one_document(tmp_path):
    root = _beir(tmp_path / "mini", ["q1\td2\t1"])
    with (root / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "d2", "title": "", "text": "Dogs bark."}) + "\n")
    assert load_dataset(root, "beir").corpus["d2"] == "Dogs bark."


# --------------------------------------------------------------------------- DPR / NQ


def test_dpr_pools_contexts_and_uses_isgold(tmp_path):
    records = [
        {"question": "who won", "answers": ["A"], "ctxs": [
            {"title": "T1", "text": "A won.", "hasanswer": True, "isgold": True},
            {"title": "T2", "text": "A also mentioned.", "hasanswer": True, "isgold": False},
        ]},
        {"question": "who lost", "ctxs": [{"title": "T1", "text": "A won.", "hasanswer": False}]},
    ]  # fmt: skip
    path = tmp_path / "nq.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    dataset = load_dataset(path, "dpr")
    assert dataset.corpus == {"p0": "T1\nA won.", "p1": "T2\nA also mentioned."}
    # isgold decides where the record marks gold; hasanswer otherwise.
    assert dataset.qrels == {"q0": {"p0": 1, "p1": 0}, "q1": {"p0": 0}}
    assert dataset.candidates == {"q0": ["p0", "p1"], "q1": ["p0"]}


def test_real_nq_open_oracle():
    path = SHARED / "NQ-open-oracle" / "nq-open-oracle.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"{path} is not there (CI keeps shared/ beside the repository)")
    dataset = load_dataset(path, "dpr")
    assert len(dataset.queries) == 2655
    # 2,655 gold passages, some shared by several questions.
    assert len(dataset.corpus) == 2600
    assert all(sum(judged.values()) == 1 for judged in dataset.qrels.values())


# --------------------------------------------------------------------------- common


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(
        FileNotFoundError, match=rf"^No such file or directory: {str(missing)!r}; check the path\.$"
    ):
        load_dataset(missing, "squad")


def test_glob_matching_nothing(tmp_path):
    pattern = str(tmp_path / "*.json")
    with pytest.raises(
        FileNotFoundError, match=r"^The pattern .* matches no file; check the path\.$"
    ):
        load_dataset(pattern, "squad")


def test_unknown_format(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"^Unknown data set format 'msmarco'; use one of 'squad', 'beir', 'jqara', 'dpr'\.$",
    ):
        load_dataset(tmp_path, "msmarco")


def test_repr():
    dataset = EvalDataset("x", {"d": "t"}, {"q": "?"}, {"q": {"d": 1}})
    assert repr(dataset) == "EvalDataset('x', 1 queries, 1 documents, candidates: none)"
