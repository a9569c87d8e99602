"""intsim's own BERT WordPiece tokenizer (:mod:`intsim.models.wordpiece`).

The first tests need nothing but intsim. The rest compare it with the Hugging Face ``tokenizers``
package (the oracle, of the ``test`` extra) on the real all-MiniLM-L6-v2 ``tokenizer.json``: every
sentence intsim ships, :func:`intsim.models.loading.tokenize` at several limits, and arbitrary
Unicode text (hypothesis, and a seeded random sweep).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intsim.core.errors import ConfigError, FileFormatError, ModelNotInstalledError
from intsim.models.wordpiece import WordPieceTokenizer, load_wordpiece

TOY_VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "un": 5, "##aff": 6, "##able": 7,
             "!": 8, "σ": 9, "a": 10, "##a": 11, "中": 12, "e": 13, "##σ": 14, "unaffable": 15, "##ff": 16}


def _toy_json() -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": t, "special": True, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False} for t, i in TOY_VOCAB.items() if t.startswith("[")],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                              "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": dict(TOY_VOCAB)},
    }


@pytest.fixture
def toy() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_json(_toy_json())


# ---------------------------------------------------------------------------------------------
# semantics, without the oracle
# ---------------------------------------------------------------------------------------------
def test_greedy_longest_match_and_unknown_words(toy: WordPieceTokenizer) -> None:
    assert toy.encode("Unaffable") == [2, 15, 3]  # the whole word is in the vocabulary
    assert toy.encode("unaffablea") == [2, 15, 11, 3]  # longest first piece, then the rest
    assert toy.encode("unaffa") == [2, 5, 6, 11, 3]
    assert toy.encode("unaffablez") == [2, 1, 3]  # one part matches nothing: the whole word is [UNK]
    assert toy.encode("un!a") == [2, 5, 8, 10, 3]  # punctuation is its own word
    assert toy.encode("a" * 100) == [2, 10] + [11] * 99 + [3]
    assert toy.encode("a" * 101) == [2, 1, 3]  # longer than max_input_chars_per_word


def test_normalizer(toy: WordPieceTokenizer) -> None:
    assert toy.normalize("A\x00B\ufffdC\u200bD\x07E\tF\u3000G\u00a0H") == "abcde f g h"
    assert toy.normalize("Ünäffable") == "unaffable"
    assert toy.normalize("ΑΣ") == "ασ"  # per character: no final sigma
    assert toy.normalize("a中b") == "a 中 b"
    assert toy.pre_tokenize("hi, (you)\u2014ok") == ["hi", ",", "(", "you", ")", "\u2014", "ok"]
    assert toy.encode("ΑΣ") == [2, 1, 3] and toy.encode("eΣ") == [2, 13, 14, 3]


def test_special_tokens_in_the_text(toy: WordPieceTokenizer) -> None:
    assert toy.encode("a[SEP]a [MASK]") == [2, 10, 3, 10, 4, 3]
    assert toy.encode("[sep]") == [2, 1, 1, 1, 3]  # case-sensitive, matched before lowercasing


def test_truncation_and_batch(toy: WordPieceTokenizer) -> None:
    assert toy.encode("a a a a", max_length=4) == [2, 10, 10, 3]
    assert toy.encode("a a a a", max_length=2) == [2, 3]
    with pytest.raises(ConfigError, match="special tokens"):
        toy.encode("a", max_length=1)
    ids, mask = toy.encode_batch(["a a", "a"], pad_to=5)
    assert ids.tolist() == [[2, 10, 10, 3, 0], [2, 10, 3, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
    assert ids.dtype == mask.dtype == np.int64


@pytest.mark.parametrize(("path", "value", "match"), [
    (("normalizer",), {"type": "Sequence", "normalizers": []}, "normalizer 'Sequence'"),
    (("normalizer",), {"type": "NFKC"}, "normalizer 'NFKC'"),
    (("pre_tokenizer",), {"type": "Whitespace"}, "pre_tokenizer 'Whitespace'"),
    (("pre_tokenizer",), None, "pre_tokenizer None"),
    (("model", "type"), "BPE", "model type 'BPE'"),
    (("post_processor",), {"type": "RobertaProcessing"}, "post_processor 'RobertaProcessing'"),
    (("added_tokens", 1, "lstrip"), True, "added token '\\[UNK\\]'"),
    (("padding",), {"strategy": "BatchLongest", "direction": "Left"}, "padding"),
    (("truncation",), {"max_length": 8, "direction": "Left"}, "truncation"),
])
def test_refuses_what_it_does_not_implement(tmp_path: Path, path: tuple, value: object, match: str) -> None:
    spec = copy.deepcopy(_toy_json())
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    f = tmp_path / "tokenizer.json"
    f.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(FileFormatError, match=match) as ei:
        load_wordpiece(tmp_path)
    assert str(f) in str(ei.value)


def test_refuses_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="cannot read"):
        load_wordpiece(tmp_path / "missing.json")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        load_wordpiece(bad)
    spec = _toy_json()
    del spec["model"]["vocab"]["[UNK]"]
    with pytest.raises(FileFormatError, match="unk_token"):
        WordPieceTokenizer.from_json(spec)


def test_missing_model_folder_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from intsim.models import loading, store

    monkeypatch.setattr(store, "_package_dir", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("INTSIM_MODEL_DIR", raising=False)
    with pytest.raises(ModelNotInstalledError, match="intsim model fetch"):
        loading.load_tokenizer()
    with pytest.raises(ModelNotInstalledError, match="intsim model fetch"):
        loading.tokenize(["Hello world"], max_len=16)


# ---------------------------------------------------------------------------------------------
# against the Hugging Face tokenizers package, on the real model's tokenizer.json
# ---------------------------------------------------------------------------------------------
def _model_dir() -> Path:
    from intsim.models.store import minilm_dir

    try:
        return minilm_dir()
    except ModelNotInstalledError as exc:
        pytest.skip(f"the MiniLM model folder is missing: {exc}")


@pytest.fixture(scope="module")
def oracle():
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def ours() -> WordPieceTokenizer:
    return load_wordpiece(_model_dir())


def _corpus() -> list[str]:
    from intsim.models.minilm.corpus import calibration_sentences
    from intsim_reference.evaluation import evaluation_sentences
    from intsim_reference.sentences import SENTENCES

    return list(SENTENCES) + list(evaluation_sentences()) + list(calibration_sentences())


def test_every_shipped_sentence_matches(oracle, ours: WordPieceTokenizer) -> None:
    texts = _corpus()
    assert len(texts) >= 280
    for text, enc in zip(texts, oracle.encode_batch(texts), strict=True):
        assert ours.encode(text) == enc.ids, text


@pytest.mark.parametrize("max_len", [2, 3, 16, 64, 256, 512])
def test_tokenize_matches_the_oracle_configuration(oracle, max_len: int) -> None:
    import tokenizers

    from intsim.models.loading import tokenize

    ref = tokenizers.Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
    ref.no_padding()
    ref.enable_truncation(max_length=max_len)
    texts = _corpus()
    encodings = ref.encode_batch(texts)
    ids, mask = tokenize(texts, max_len=max_len)
    width = max(len(e.ids) for e in encodings)
    assert ids.shape == mask.shape == (len(texts), width)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        assert ids[row, :n].tolist() == enc.ids and mask[row, :n].tolist() == enc.attention_mask
        assert not ids[row, n:].any() and not mask[row, n:].any()


def test_the_files_own_settings_match(ours: WordPieceTokenizer) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    shipped = tokenizers.Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))  # fixed 128, truncation 128
    assert (ours.truncation_max_length, ours.padding_length) == (128, 128)
    texts = _corpus()[:60] + [" ".join(["word"] * 300)]
    ids, mask = ours.encode_batch(texts, ours.truncation_max_length, ours.padding_length)
    for row, enc in enumerate(shipped.encode_batch(texts)):
        assert ids[row].tolist() == enc.ids and mask[row].tolist() == enc.attention_mask


def test_tokenize_does_not_import_tokenizers(monkeypatch: pytest.MonkeyPatch) -> None:
    from intsim.models import loading

    _model_dir()
    loading._cached_tokenizer.cache_clear()
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` would fail
    ids, mask = loading.tokenize(["Hello world", "Hi"])
    assert ids.tolist() == [[101, 7592, 2088, 102], [101, 7632, 102, 0]]
    assert loading.load_tokenizer().encode("Hello world") == [101, 7592, 2088, 102]


# The characters whose *normalized text* differs from the oracle's (Unicode versions, see the module
# docstring); their token ids agree.
KNOWN_TEXT_DIFFERENCES = frozenset(
    [0x1C89, 0xA7CB, 0xA7CC, 0xA7CE, 0xA7D2, 0xA7D4, 0xA7DA, 0xA7DC, 0x11938]
    + list(range(0x10D50, 0x10D66)) + list(range(0x16EA0, 0x16EB9))
)

FRAGMENTS = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[SEP", "[[CLS]]", "\x00", "\ufffd", "\u0301", "e\u0301",
             "\u0300\u0301", "中文字", "\U00020000", "\u3400", "😀", "👩\u200d💻", "\u200b", "\u200d", "\ufeff",
             "\u3000", "\u00a0", "\u2028", "\x85", "\x1c", "\x0b", "\r\n", "\t", "ΣΑΣ", "İstanbul", "ß", "ﬁ", "Ⅻ", "①",
             "שלום", "مرحبا", "\u202e", "x" * 101, "ab" * 60, "un##aff", "##", "...", "¿¡", "—", "“quoted”",
             "Hello", "world", "naïve café", "straße", "ǅ", "\ue000", "\U000f0000", "\u0378", "\U0010ffff",
             "\u1c89", "\ua7cb", "\U00010d50", "\U00011938", "\u08d4", "\u0d00"]

_TEXT = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
              st.text(st.characters(max_codepoint=0x2FF), max_size=12)),
    max_size=12,
).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT)
def test_arbitrary_text_matches(oracle, ours: WordPieceTokenizer, text: str) -> None:
    assert ours.encode(text) == oracle.encode(text).ids
    from tokenizers import normalizers, pre_tokenizers

    if not any(ord(c) in KNOWN_TEXT_DIFFERENCES for c in text):
        normalized = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True).normalize_str(text)
        assert ours.normalize(text) == normalized
        assert ours.pre_tokenize(normalized) == [w for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(
            normalized)]


def test_random_sweep_over_all_code_points(oracle, ours: WordPieceTokenizer) -> None:
    rng = np.random.default_rng(20240601)
    cps = np.concatenate([rng.integers(0, 0x110000, 40_000), rng.integers(0, 0x3000, 40_000),
                          rng.integers(0x20, 0x7F, 40_000)])
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    chars = [chr(c) for c in cps]
    texts = ["".join(chars[i:i + n]) for i, n in zip(range(0, len(chars) - 40, 20), rng.integers(1, 40, 10_000),
                                                      strict=False)]
    for text, enc in zip(texts, oracle.encode_batch(texts), strict=True):
        assert ours.encode(text) == enc.ids, repr(text)


def test_known_text_differences_do_not_change_ids(oracle, ours: WordPieceTokenizer) -> None:
    for cp in sorted(KNOWN_TEXT_DIFFERENCES):
        c = chr(cp)
        assert c not in ours.vocab and c.lower() not in ours.vocab
        for text in (c, f"a{c}b", f"Hello {c} world", f"{c}{c.lower()}x"):
            assert ours.encode(text) == oracle.encode(text).ids, hex(cp)
