"""Line normalisation for text extracted from Korean government reports.

Extraction (HWP/PDF -> text) leaves ideographic spaces, several middle-dot code points,
private-use glyphs where a bullet symbol was, and letter-spaced words (`경 제 정 책 과`).
These helpers undo that without touching the meaning of prose.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

# Every middle-dot look-alike seen in extractions -> U+00B7.
_MIDDLE_DOTS = str.maketrans({"\u2024": "·", "\u2027": "·", "\u318d": "·", "\uff65": "·", "\u2219": "·",
                              "\u30fb": "·", "\u22c5": "·"})
_SPACES = re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000\t]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\ufeff\u2060]")
# Private-use glyphs are bullets/symbols the extractor could not map; they carry no text.
_PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")
# `‘24년`, `'25.3월`, `` `26.上 `` all mean the same year mark; quotes elsewhere stay as printed.
_YEAR_MARK = re.compile(r"[‘'`´′](?=\d{2}(?!\d))")
_HANGUL_SYLLABLE = r"[\uac00-\ud7a3]"
# A run of >= 3 single syllables separated by 1-2 spaces: `경 제 정 책 과`, `일 반 현 황`.
_SPACED_RUN = re.compile(
    rf"(?<!\w)({_HANGUL_SYLLABLE}(?: {{1,2}}{_HANGUL_SYLLABLE}){{2,}})(?!\w)")
_NAME_JUNK = re.compile(r"[^0-9a-z\uac00-\ud7a3\u4e00-\u9fff]")


def normalize_line(line: str) -> str:
    """Safe, meaning-preserving clean-up of one line (no letter-spacing undone)."""
    s = _ZERO_WIDTH.sub("", line)
    s = _PRIVATE_USE.sub(" ", s)
    s = _SPACES.sub(" ", s)
    s = s.translate(_MIDDLE_DOTS)
    s = _YEAR_MARK.sub("’", s)
    return s.rstrip()


def collapse_letter_spacing(text: str) -> str:
    """Join letter-spaced Hangul runs (`경 제 정 책 과` -> `경제정책과`).

    Only runs of three or more lone syllables are joined: real prose almost never has three
    one-syllable words in a row, while two (`수 있`) is common, so shorter runs stay.
    """
    return _SPACED_RUN.sub(lambda m: re.sub(r"\s+", "", m.group(1)), text)


def collapse_digit_spacing(text: str) -> str:
    """`21 3 3 - 5 2 1 0` -> `2133-5210` (only for strings known to be a number)."""
    return re.sub(r"\s+", "", text)


def compact(text: str) -> str:
    """Whitespace-free form, for comparing labels such as `추 진 목 표` with `추진목표`."""
    return re.sub(r"\s+", "", text)


def squeeze(text: str) -> str:
    """Collapse runs of whitespace to one space and strip."""
    return re.sub(r"\s+", " ", text).strip()


def normalize_name(name: str) -> str:
    """Key for matching a program/division name across documents.

    Differences in spacing, letter-spacing, middle dots, quotes, brackets and Latin case are
    noise between reports; NFKC also folds full-width forms.
    """
    s = unicodedata.normalize("NFKC", normalize_line(name)).lower()
    return _NAME_JUNK.sub("", s)


def strip_bullet(line: str) -> str:
    """Drop a leading bullet (`ㅇ`, `-`, `∘`, `▪`, `※`, `‣`, `①`, `1.`, `가.`, `(1)`...) and the spaces around it."""
    return re.sub(r"^\s*(?:[ㅇ○◦∘•▪▸▴▹►‣❍□■◇◆◈※\-–*·]|\(\d+\)|\([가-하]\)|[①-⑳➀-➉]|\d{1,2}\)|"
                  r"\d{1,2}\.(?=\s+(?!\d{1,2}\s*\.))|[가-하][.)](?=\s))\s*", "", line).strip()


def year_or_now(ref_year: int | None) -> int:
    """Year for dates printed without one; the current year only when the document gives none."""
    return ref_year if ref_year is not None else date.today().year
