"""A pure-Python BERT WordPiece tokenizer, read from a Hugging Face ``tokenizer.json``.

It implements exactly the pipeline that all-MiniLM-L6-v2's ``tokenizer.json`` describes, with
the semantics of the Hugging Face ``tokenizers`` crate (Rust), so that intsim needs no
tokenization package at run time:

1. **added tokens** (``added_tokens``, e.g. ``[CLS]``, ``[SEP]``, ``[UNK]``): the raw text is first
   split on every occurrence of an added token that is not normalized (leftmost-longest match,
   case-sensitive); each occurrence becomes that token's id (``tokenizer/added_vocabulary.rs``).
2. **normalizer** ``BertNormalizer`` (``normalizers/bert.rs``), in this order:
   ``clean_text`` drops U+0000, U+FFFD and every "other" character (General_Category Cc, Cf or
   Co, except tab, LF and CR) and maps each White_Space character to a space;
   ``handle_chinese_chars`` puts spaces around each CJK ideograph (the crate's fixed code point
   ranges); ``strip_accents`` (``null``: same as ``lowercase``) applies NFD and drops nonspacing
   marks (Mn); ``lowercase`` maps each character to its full lowercase, one character at a
   time (so a final capital sigma becomes U+03C3, not U+03C2).
3. **pre-tokenizer** ``BertPreTokenizer`` (``pre_tokenizers/bert.rs``): split on White_Space
   (removed), then isolate each punctuation character (ASCII ``!`` to ``/``, ``:`` to ``@``,
   ``[`` to `````, ``{`` to ``~``, and General_Category P*).
4. **model** ``WordPiece`` (``models/wordpiece/mod.rs``): a word longer than
   ``max_input_chars_per_word`` characters is ``unk_token``; otherwise greedy longest-match-first
   pieces, later pieces looked up with ``continuing_subword_prefix`` (``##``); a word with a part
   no piece matches becomes a single ``unk_token``.
5. **post-processor** ``TemplateProcessing`` (single sequence ``[CLS] $A [SEP]``) or
   ``BertProcessing``; truncation drops content tokens from the end so that the whole sequence,
   special tokens included, fits ``max_length``.

Unicode versions. The crate takes General_Category from its dependency ``unicode_categories``
0.1.1, whose tables are those of Unicode 8.0, and NFD from ``unicode-normalization-alignments``
0.1.12 (Unicode 9.0). Python's :mod:`unicodedata` is newer (Unicode 14.0 on Python 3.11), so this
module does not ask :mod:`unicodedata` for categories: it carries the Unicode 8.0 sets the crate
uses (Cc+Cf+Co, P*, Mn; ``_OTHER_8``, ``_PUNCTUATION_8``, ``_MARK_NONSPACING_8`` below). Hence,
exactly as in the crate, a character assigned after Unicode 8.0 is never dropped as a control,
split as punctuation or stripped as an accent (e.g. U+08D4, an Arabic mark of Unicode 9.0, stays).
White_Space is fixed since Unicode 6.3 and the CJK ranges are the crate's own. NFD and lowercase
come from Python (:func:`unicodedata.normalize`, :meth:`str.lower`) and agree with the crate for
every character of Unicode 8.0; the differences that remain are listed under ``Known
differences`` below.

Known differences (checked over every code point, U+0000 to U+10FFFF, against
``tokenizers`` 0.23.3 on Python 3.11, whose :mod:`unicodedata` is Unicode 14.0). The normalized
*text* differs for 56 characters, the token *ids* for none:

* lowercase: Rust's ``char::to_lowercase`` follows the Unicode version of the compiler that built
  the ``tokenizers`` wheel (17.0 for 0.23.3) and lowercases 55 capitals of Unicode 16.0 and 17.0
  that Python 3.11 to 3.13 leave as they are: U+1C89, U+A7CB, U+A7CC, U+A7CE, U+A7D2, U+A7D4,
  U+A7DA, U+A7DC, U+10D50 to U+10D65 (Garay) and U+16EA0 to U+16EB8 (Beria Erfe);
* NFD: U+11938 (DIVES AKURU VOWEL SIGN O, Unicode 13.0) has a canonical decomposition that the
  crate's Unicode 9.0 tables lack; Python decomposes it into U+11935 U+11930 (neither is a
  nonspacing mark of Unicode 8.0).

Neither the characters nor their other forms are in the all-MiniLM-L6-v2 vocabulary, so a word
holding one is ``[UNK]`` either way and the ids agree. On a Python whose :mod:`unicodedata` is
Unicode 16.0 or later (3.14), the first list shrinks and characters of Unicode 16.0 with
canonical decompositions join the second.

>>> tok = WordPieceTokenizer({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "un": 3, "##aff": 4, "##able": 5, "!": 6})
>>> tok.encode("Unaffable!")
[1, 3, 4, 5, 6, 2]
>>> tok.encode("Ünäffable")  # accents stripped, lowercased
[1, 3, 4, 5, 2]
>>> tok.encode("unknown")
[1, 0, 2]
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, FileFormatError

__all__ = ["WordPieceTokenizer", "load_wordpiece"]

# General_Category sets of Unicode 8.0 (UnicodeData.txt), as ranges of hex code points: the tables
# of the unicode_categories 0.1.1 crate that the tokenizers crate's BERT normalizer and
# pre-tokenizer use. Other = Cc | Cf | Co (Cn and Cs are not included, as in that crate).
_OTHER_8 = (
    "0000-001F 007F-009F 00AD 0600-0605 061C 06DD 070F 180E 200B-200F 202A-202E 2060-2064 2066-206F "
    "E000-F8FF FEFF FFF9-FFFB 110BD 1BCA0-1BCA3 1D173-1D17A E0001 E0020-E007F F0000-FFFFD 100000-10FFFD "
)

_PUNCTUATION_8 = (
    "0021-0023 0025-002A 002C-002F 003A-003B 003F-0040 005B-005D 005F 007B 007D 00A1 00A7 00AB 00B6-00B7 "
    "00BB 00BF 037E 0387 055A-055F 0589-058A 05BE 05C0 05C3 05C6 05F3-05F4 0609-060A 060C-060D 061B "
    "061E-061F 066A-066D 06D4 0700-070D 07F7-07F9 0830-083E 085E 0964-0965 0970 0AF0 0DF4 0E4F 0E5A-0E5B "
    "0F04-0F12 0F14 0F3A-0F3D 0F85 0FD0-0FD4 0FD9-0FDA 104A-104F 10FB 1360-1368 1400 166D-166E 169B-169C "
    "16EB-16ED 1735-1736 17D4-17D6 17D8-17DA 1800-180A 1944-1945 1A1E-1A1F 1AA0-1AA6 1AA8-1AAD 1B5A-1B60 "
    "1BFC-1BFF 1C3B-1C3F 1C7E-1C7F 1CC0-1CC7 1CD3 2010-2027 2030-2043 2045-2051 2053-205E 207D-207E "
    "208D-208E 2308-230B 2329-232A 2768-2775 27C5-27C6 27E6-27EF 2983-2998 29D8-29DB 29FC-29FD 2CF9-2CFC "
    "2CFE-2CFF 2D70 2E00-2E2E 2E30-2E42 3001-3003 3008-3011 3014-301F 3030 303D 30A0 30FB A4FE-A4FF "
    "A60D-A60F A673 A67E A6F2-A6F7 A874-A877 A8CE-A8CF A8F8-A8FA A8FC A92E-A92F A95F A9C1-A9CD A9DE-A9DF "
    "AA5C-AA5F AADE-AADF AAF0-AAF1 ABEB FD3E-FD3F FE10-FE19 FE30-FE52 FE54-FE61 FE63 FE68 FE6A-FE6B "
    "FF01-FF03 FF05-FF0A FF0C-FF0F FF1A-FF1B FF1F-FF20 FF3B-FF3D FF3F FF5B FF5D FF5F-FF65 10100-10102 "
    "1039F 103D0 1056F 10857 1091F 1093F 10A50-10A58 10A7F 10AF0-10AF6 10B39-10B3F 10B99-10B9C "
    "11047-1104D 110BB-110BC 110BE-110C1 11140-11143 11174-11175 111C5-111C9 111CD 111DB 111DD-111DF "
    "11238-1123D 112A9 114C6 115C1-115D7 11641-11643 1173C-1173E 12470-12474 16A6E-16A6F 16AF5 "
    "16B37-16B3B 16B44 1BC9F 1DA87-1DA8B "
)

_MARK_NONSPACING_8 = (
    "0300-036F 0483-0487 0591-05BD 05BF 05C1-05C2 05C4-05C5 05C7 0610-061A 064B-065F 0670 06D6-06DC "
    "06DF-06E4 06E7-06E8 06EA-06ED 0711 0730-074A 07A6-07B0 07EB-07F3 0816-0819 081B-0823 0825-0827 "
    "0829-082D 0859-085B 08E3-0902 093A 093C 0941-0948 094D 0951-0957 0962-0963 0981 09BC 09C1-09C4 09CD "
    "09E2-09E3 0A01-0A02 0A3C 0A41-0A42 0A47-0A48 0A4B-0A4D 0A51 0A70-0A71 0A75 0A81-0A82 0ABC 0AC1-0AC5 "
    "0AC7-0AC8 0ACD 0AE2-0AE3 0B01 0B3C 0B3F 0B41-0B44 0B4D 0B56 0B62-0B63 0B82 0BC0 0BCD 0C00 0C3E-0C40 "
    "0C46-0C48 0C4A-0C4D 0C55-0C56 0C62-0C63 0C81 0CBC 0CBF 0CC6 0CCC-0CCD 0CE2-0CE3 0D01 0D41-0D44 0D4D "
    "0D62-0D63 0DCA 0DD2-0DD4 0DD6 0E31 0E34-0E3A 0E47-0E4E 0EB1 0EB4-0EB9 0EBB-0EBC 0EC8-0ECD 0F18-0F19 "
    "0F35 0F37 0F39 0F71-0F7E 0F80-0F84 0F86-0F87 0F8D-0F97 0F99-0FBC 0FC6 102D-1030 1032-1037 1039-103A "
    "103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D 109D 135D-135F 1712-1714 1732-1734 "
    "1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 17DD 180B-180D 18A9 1920-1922 1927-1928 1932 "
    "1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60 1A62 1A65-1A6C 1A73-1A7C 1A7F 1AB0-1ABD 1B00-1B03 1B34 "
    "1B36-1B3A 1B3C 1B42 1B6B-1B73 1B80-1B81 1BA2-1BA5 1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 "
    "1C2C-1C33 1C36-1C37 1CD0-1CD2 1CD4-1CE0 1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DF5 1DFC-1DFF 20D0-20DC "
    "20E1 20E5-20F0 2CEF-2CF1 2D7F 2DE0-2DFF 302A-302D 3099-309A A66F A674-A67D A69E-A69F A6F0-A6F1 A802 "
    "A806 A80B A825-A826 A8C4 A8E0-A8F1 A926-A92D A947-A951 A980-A982 A9B3 A9B6-A9B9 A9BC A9E5 AA29-AA2E "
    "AA31-AA32 AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8 "
    "ABED FB1E FE00-FE0F FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A03 10A05-10A06 10A0C-10A0F "
    "10A38-10A3A 10A3F 10AE5-10AE6 11001 11038-11046 1107F-11081 110B3-110B6 110B9-110BA 11100-11102 "
    "11127-1112B 1112D-11134 11173 11180-11181 111B6-111BE 111CA-111CC 1122F-11231 11234 11236-11237 "
    "112DF 112E3-112EA 11300-11301 1133C 11340 11366-1136C 11370-11374 114B3-114B8 114BA 114BF-114C0 "
    "114C2-114C3 115B2-115B5 115BC-115BD 115BF-115C0 115DC-115DD 11633-1163A 1163D 1163F-11640 116AB "
    "116AD 116B0-116B5 116B7 1171D-1171F 11722-11725 11727-1172B 16AF0-16AF4 16B30-16B36 16F8F-16F92 "
    "1BC9D-1BC9E 1D167-1D169 1D17B-1D182 1D185-1D18B 1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C "
    "1DA75 1DA84 1DA9B-1DA9F 1DAA1-1DAAF 1E8D0-1E8D6 E0100-E01EF "
)


# White_Space (PropList.txt; unchanged since Unicode 6.3): Rust's char::is_whitespace.
_WHITE_SPACE = "0009-000D 0020 0085 00A0 1680 2000-200A 2028 2029 202F 205F 3000"
# The CJK ideograph ranges of the crate's BERT normalizer (is_chinese_char in normalizers/bert.rs).
_CJK = "4E00-9FFF 3400-4DBF 20000-2A6DF 2A700-2B73F 2B740-2B81F 2B920-2CEAF F900-FAFF 2F800-2FA1F"
# ASCII punctuation (Rust's char::is_ascii_punctuation), split by BertPreTokenizer besides P*.
_ASCII_PUNCTUATION = "0021-002F 003A-0040 005B-0060 007B-007E"


def _ranges(spec: str) -> list[tuple[int, int]]:
    out = []
    for item in spec.split():
        lo, _, hi = item.partition("-")
        out.append((int(lo, 16), int(hi or lo, 16)))
    return out


def _char_class(*specs: str, exclude: str = "", negate: bool = False) -> str:
    """A regular-expression character class of the union of ``specs`` minus the characters of ``exclude``."""
    excluded = sorted(ord(c) for c in exclude)
    ranges: list[tuple[int, int]] = []
    for lo, hi in sorted(r for spec in specs for r in _ranges(spec)):
        for cp in excluded:  # cut the excluded code points out
            if lo <= cp <= hi:
                if lo < cp:
                    ranges.append((lo, cp - 1))
                lo = cp + 1
        if lo <= hi:
            ranges.append((lo, hi))
    parts: list[list[int]] = []
    for lo, hi in sorted(ranges):  # merge overlapping and adjacent ranges
        if parts and lo <= parts[-1][1] + 1:
            parts[-1][1] = max(parts[-1][1], hi)
        else:
            parts.append([lo, hi])
    body = "".join(f"\\U{a:08X}" if a == b else f"\\U{a:08X}-\\U{b:08X}" for a, b in parts)
    return f"[{'^' if negate else ''}{body}]"


_REMOVED_BY_CLEAN_TEXT = re.compile(_char_class(_OTHER_8, "0000 FFFD", exclude="\t\n\r") + "+")
_WHITE_SPACE_RE = re.compile(_char_class(_WHITE_SPACE))
_CJK_RE = re.compile("(" + _char_class(_CJK) + ")")
_MARK_NONSPACING_RE = re.compile(_char_class(_MARK_NONSPACING_8) + "+")
# One pre-token: a single punctuation character, or a run of characters that are neither
# punctuation nor white space (white space separates pre-tokens and is dropped).
_PRE_TOKEN_RE = re.compile(
    _char_class(_PUNCTUATION_8, _ASCII_PUNCTUATION) + "|" + _char_class(_PUNCTUATION_8, _ASCII_PUNCTUATION,
                                                                        _WHITE_SPACE, negate=True) + "+"
)

_WORD_CACHE_SIZE = 1 << 16


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer: ``BertNormalizer``, ``BertPreTokenizer``, ``WordPiece`` and a
    ``[CLS] ... [SEP]`` post-processor (see the module docstring for the exact semantics).

    Build it from a ``tokenizer.json`` with :meth:`from_file` (or :func:`load_wordpiece`); the
    constructor takes the parts directly.

    Args:
        vocab: token -> id of the WordPiece model.
        unk_token: the token of a word that cannot be split into vocabulary pieces.
        continuing_subword_prefix: prefix of every piece after a word's first.
        max_input_chars_per_word: longer words become ``unk_token`` whole.
        clean_text, handle_chinese_chars, strip_accents, lowercase: the ``BertNormalizer`` options
            (``strip_accents=None`` follows ``lowercase``); ``normalize=False`` skips the normalizer.
        prefix, suffix: the special tokens put around each sequence (default ``[CLS]``/``[SEP]`` of
            ``vocab``).
        added_tokens: token -> id of the non-normalized added tokens, matched in the raw text
            (default: ``prefix``/``suffix`` tokens, ``unk_token``, and ``[PAD]``/``[MASK]`` when in ``vocab``).
        truncation_max_length, padding_length, pad_id: the file's own truncation and fixed
            padding (``None``: none), used only when asked for (:meth:`encode_batch`).
    """

    def __init__(self, vocab: Mapping[str, int], *, unk_token: str = "[UNK]", continuing_subword_prefix: str = "##",
                 max_input_chars_per_word: int = 100, normalize: bool = True, clean_text: bool = True,
                 handle_chinese_chars: bool = True, strip_accents: bool | None = None, lowercase: bool = True,
                 prefix: Sequence[int] | None = None, suffix: Sequence[int] | None = None,
                 added_tokens: Mapping[str, int] | None = None, truncation_max_length: int | None = None,
                 padding_length: int | None = None, pad_id: int = 0, source: str = "WordPieceTokenizer") -> None:
        self.vocab = dict(vocab)
        self.source = source
        if unk_token not in self.vocab:
            raise ConfigError(f"{source}: the unk_token {unk_token!r} is not in the vocabulary")
        self.unk_token = unk_token
        self.unk_id = self.vocab[unk_token]
        self.continuing_subword_prefix = continuing_subword_prefix
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.normalize_text = normalize
        self.clean_text = clean_text
        self.handle_chinese_chars = handle_chinese_chars
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.lowercase = lowercase

        def special(name: str) -> list[int]:
            if name not in self.vocab:
                raise ConfigError(f"{source}: the special token {name!r} is not in the vocabulary")
            return [self.vocab[name]]

        self.prefix = list(special("[CLS]") if prefix is None else prefix)
        self.suffix = list(special("[SEP]") if suffix is None else suffix)
        if added_tokens is None:
            names = ["[CLS]", "[SEP]", "[PAD]", "[MASK]", unk_token]
            added_tokens = {t: self.vocab[t] for t in names if t in self.vocab}
        self.added_tokens = dict(added_tokens)
        # Leftmost-longest: at a given position, a regex alternation takes the first alternative
        # that matches, so list longer tokens first.
        pattern = "|".join(re.escape(t) for t in sorted(self.added_tokens, key=len, reverse=True) if t)
        self._added_re = re.compile(pattern) if pattern else None
        self.truncation_max_length = truncation_max_length
        self.padding_length = padding_length
        self.pad_id = int(pad_id)
        self._word_cache: dict[str, tuple[int, ...]] = {}

    # -- construction from tokenizer.json ---------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> WordPieceTokenizer:
        """Read a ``tokenizer.json``; refuse (:class:`~intsim.core.errors.FileFormatError`) any
        component this class does not implement exactly."""
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as f:
                spec = json.load(f)
        except OSError as exc:
            raise FileFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise FileFormatError(f"{path}: not valid JSON: {exc}") from exc
        return cls.from_json(spec, source=str(path))

    @classmethod
    def from_json(cls, spec: Any, *, source: str = "tokenizer.json") -> WordPieceTokenizer:
        """Build from the parsed content of a ``tokenizer.json`` (``source`` names it in errors)."""

        def refuse(what: str) -> FileFormatError:
            return FileFormatError(f"{source}: {what}; only a BERT WordPiece tokenizer (BertNormalizer, "
                                   "BertPreTokenizer, WordPiece, TemplateProcessing/BertProcessing) is supported")

        if not isinstance(spec, dict):
            raise refuse("not a tokenizer.json object")
        model = spec.get("model")
        if not isinstance(model, dict) or model.get("type") != "WordPiece":
            kind = model.get("type") if isinstance(model, dict) else model
            raise refuse(f"model type {kind!r} is not implemented")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
            raise refuse("model.vocab is not a token -> id map")
        options: dict[str, Any] = {
            "unk_token": model.get("unk_token", "[UNK]"),
            "continuing_subword_prefix": model.get("continuing_subword_prefix", "##"),
            "max_input_chars_per_word": model.get("max_input_chars_per_word", 100),
        }
        norm = spec.get("normalizer")
        if norm is None:
            options["normalize"] = False
        elif isinstance(norm, dict) and norm.get("type") == "BertNormalizer":
            for key in ("clean_text", "handle_chinese_chars", "lowercase"):
                options[key] = bool(norm.get(key, True))
            options["strip_accents"] = norm.get("strip_accents")
        else:
            raise refuse(f"normalizer {norm.get('type') if isinstance(norm, dict) else norm!r} is not implemented")
        pre = spec.get("pre_tokenizer")
        if not (isinstance(pre, dict) and pre.get("type") == "BertPreTokenizer"):
            raise refuse(f"pre_tokenizer {pre.get('type') if isinstance(pre, dict) else pre!r} is not implemented")
        options["prefix"], options["suffix"] = _post_processor(spec.get("post_processor"), vocab, refuse)
        added: dict[str, int] = {}
        for tok in spec.get("added_tokens") or []:
            if not (isinstance(tok, dict) and isinstance(tok.get("content"), str) and isinstance(tok.get("id"), int)):
                raise refuse(f"malformed added token {tok!r}")
            if tok.get("normalized") or tok.get("single_word") or tok.get("lstrip") or tok.get("rstrip"):
                raise refuse(f"added token {tok['content']!r} is normalized, single_word, lstrip or rstrip")
            added[tok["content"]] = tok["id"]
        options["added_tokens"] = added
        trunc = spec.get("truncation")
        if trunc is not None:
            if not isinstance(trunc, dict) or trunc.get("direction", "Right") != "Right":
                raise refuse(f"truncation {trunc!r} is not implemented (only to the right)")
            options["truncation_max_length"] = int(trunc["max_length"])
        pad = spec.get("padding")
        if pad is not None:
            strategy = pad.get("strategy") if isinstance(pad, dict) else None
            if (pad.get("direction", "Right") != "Right" or pad.get("pad_to_multiple_of")
                    or not (strategy == "BatchLongest" or (isinstance(strategy, dict) and "Fixed" in strategy))):
                raise refuse(f"padding {pad!r} is not implemented (only right, BatchLongest or Fixed)")
            if isinstance(strategy, dict):
                options["padding_length"] = int(strategy["Fixed"])
            options["pad_id"] = int(pad.get("pad_id", 0))
        try:
            return cls(vocab, source=source, **options)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, FileFormatError):
                raise
            raise FileFormatError(f"{source}: {exc}") from exc

    # -- the pipeline ---------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The ``BertNormalizer`` output of ``text``."""
        if not self.normalize_text:
            return text
        if self.clean_text:
            text = _WHITE_SPACE_RE.sub(" ", _REMOVED_BY_CLEAN_TEXT.sub("", text))
        if text.isascii():  # no CJK, NFD is the identity, no nonspacing marks
            return text.lower() if self.lowercase else text
        if self.handle_chinese_chars:
            text = _CJK_RE.sub(r" \1 ", text)
        if self.strip_accents:
            text = _MARK_NONSPACING_RE.sub("", unicodedata.normalize("NFD", text))
        if self.lowercase:
            # Character by character, as Rust's char::to_lowercase: str.lower() alone would turn a
            # word-final capital sigma into a final sigma (U+03C2).
            text = text.replace("\u03a3", "\u03c3").lower()
        return text

    def pre_tokenize(self, normalized: str) -> list[str]:
        """The ``BertPreTokenizer`` words of normalized text."""
        return _PRE_TOKEN_RE.findall(normalized)

    def word_ids(self, word: str) -> tuple[int, ...]:
        """The WordPiece ids of one pre-tokenized word (greedy longest match first)."""
        hit = self._word_cache.get(word)
        if hit is not None:
            return hit
        vocab = self.vocab
        if len(word) > self.max_input_chars_per_word:
            ids: tuple[int, ...] = (self.unk_id,)
        elif word in vocab:
            ids = (vocab[word],)
        else:
            pieces = []
            start, n = 0, len(word)
            while start < n:
                end = n
                while end > start:
                    piece = word[start:end] if start == 0 else self.continuing_subword_prefix + word[start:end]
                    if piece in vocab:
                        pieces.append(vocab[piece])
                        break
                    end -= 1
                else:  # no piece of the rest is in the vocabulary: the whole word is unknown
                    pieces = [self.unk_id]
                    break
                start = end
            ids = tuple(pieces)
        if len(self._word_cache) >= _WORD_CACHE_SIZE:
            self._word_cache.clear()
        self._word_cache[word] = ids
        return ids

    def content_ids(self, text: str) -> list[int]:
        """The ids of ``text`` without the special tokens of the post-processor."""
        out: list[int] = []
        chunks: list[tuple[str, int | None]]
        if self._added_re is None:
            chunks = [(text, None)]
        else:
            chunks = []
            pos = 0
            for m in self._added_re.finditer(text):
                chunks.append((text[pos:m.start()], None))
                chunks.append(("", self.added_tokens[m.group()]))
                pos = m.end()
            chunks.append((text[pos:], None))
        for chunk, added_id in chunks:
            if added_id is not None:
                out.append(added_id)
                continue
            if not chunk:
                continue
            for word in self.pre_tokenize(self.normalize(chunk)):
                out.extend(self.word_ids(word))
        return out

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """The ids of ``text`` with the special tokens (``[CLS] ... [SEP]``), at most ``max_length``
        of them (``None``: no truncation): content tokens are dropped from the end.

        Raises:
            ConfigError: ``max_length`` cannot hold the special tokens.
        """
        ids = self.content_ids(text)
        if max_length is not None:
            room = int(max_length) - len(self.prefix) - len(self.suffix)
            if room < 0:
                raise ConfigError(f"max_length {max_length} cannot hold the {len(self.prefix) + len(self.suffix)} "
                                  "special tokens")
            del ids[room:]
        return self.prefix + ids + self.suffix

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None,
                     pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``texts`` (:meth:`encode`) and right-pad them with ``pad_id`` to the longest one, or to
        ``pad_to`` tokens when that is longer. ``(self.truncation_max_length, self.padding_length)``
        are the file's own settings.

        Returns:
            ``(input_ids, attention_mask)``, int64 ``[B, T]``; the mask is 1 on real tokens.
        """
        rows = [self.encode(t, max_length) for t in texts]
        width = max([len(r) for r in rows] + [pad_to or 0])
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, :len(r)] = r
            attention_mask[i, :len(r)] = 1
        return input_ids, attention_mask


def _post_processor(post: Any, vocab: Mapping[str, int], refuse: Any) -> tuple[list[int], list[int]]:
    """Ids before and after the sequence in the single-sequence template of ``post_processor``."""
    if isinstance(post, dict) and post.get("type") == "BertProcessing":
        try:
            return [int(post["cls"][1])], [int(post["sep"][1])]
        except (KeyError, IndexError, TypeError, ValueError):
            raise refuse(f"malformed BertProcessing {post!r}") from None
    if not (isinstance(post, dict) and post.get("type") == "TemplateProcessing"):
        raise refuse(f"post_processor {post.get('type') if isinstance(post, dict) else post!r} is not implemented")
    specials = post.get("special_tokens") or {}
    before: list[int] = []
    after: list[int] = []
    seen_sequence = False
    for piece in post.get("single") or []:
        if isinstance(piece, dict) and "Sequence" in piece and piece["Sequence"].get("id") == "A" and not seen_sequence:
            seen_sequence = True
        elif isinstance(piece, dict) and "SpecialToken" in piece:
            name = piece["SpecialToken"].get("id")
            if name not in specials or not isinstance(specials[name].get("ids"), list):
                raise refuse(f"TemplateProcessing special token {name!r} is not defined")
            (after if seen_sequence else before).extend(int(i) for i in specials[name]["ids"])
        else:
            raise refuse(f"TemplateProcessing single-sequence piece {piece!r} is not implemented")
    if not seen_sequence:
        raise refuse("TemplateProcessing single template has no sequence $A")
    return before, after


def load_wordpiece(path: str | os.PathLike[str]) -> WordPieceTokenizer:
    """:meth:`WordPieceTokenizer.from_file` of a ``tokenizer.json`` (or of the one in a model folder)."""
    path = Path(path)
    return WordPieceTokenizer.from_file(path / "tokenizer.json" if path.is_dir() else path)
