"""Contacts printed under a program heading.

`경제정책과장 : 이병철☎2133-5210 혁신기술팀장 : 박지은☎5226 담당 : 김지영☎5223`, spread over one
or several lines, sometimes letter-spaced, sometimes without the `담당` label, and in press
releases without `☎` (`경제정책과장 이병철 2133-5210`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from services.ingest.importer.model import Contact, Issue
from services.ingest.importer.text import collapse_letter_spacing, compact, normalize_line, squeeze

DEFAULT_EXCHANGE = "02-2133"  # Seoul city hall: short numbers are its extensions

_PHONE = re.compile(r"☎\s*(\d(?:[\d\s\-]*\d)?)")
# Press-release style: a number after a name, no ☎ (`이병철 2133-5210`).
_BARE_PHONE = re.compile(r"(?<=[가-힣])(\s+)((?:0\d{1,2}\s*-\s*)?\d{3,4}\s*-\s*\d{4})(?!\d)")
_ROLE_SUFFIX = re.compile(r"(과장|팀장|담당관|담당자|담당|주무관|실장|국장|기획관|팀)$")
_LABELLED = re.compile(r"(?:과장|팀장|담당관|담당자?|팀)\s*:\s*[가-힣]")
_PRESS_STYLE = re.compile(r"(?:과장|팀장|담당자?)\s+[가-힣]{2,5}\s+(?:0\d{1,2}-)?\d{3,4}-\d{4}")
_NAME = re.compile(r"^[가-힣]{2,5}$")
_SPACED_DAMDANG = re.compile(r"담\s+당(\s+자)?(?=\s|:|$)")


@dataclass
class _Entry:
    """One `label : name ☎number` as printed, before roles and exchanges are resolved."""

    label: list[str]
    name: str | None
    raw_phone: str | None
    line: int
    explicit: bool  # a title was printed (vs. a bare name after a 팀장)


@dataclass
class ContactBlock:
    contacts: list[Contact] = field(default_factory=list)
    office: str | None = None
    division: str | None = None
    team: str | None = None
    first_line: int = 0
    last_line: int = 0
    issues: list[Issue] = field(default_factory=list)


def clean_contact_line(line: str) -> str:
    """Normalise a contact line: letter-spaced words and `담 당 자` joined, digits kept."""
    s = collapse_letter_spacing(normalize_line(line))
    return _SPACED_DAMDANG.sub(lambda m: "담당자" if m.group(1) else "담당", s)


def is_contact_line(line: str) -> bool:
    s = clean_contact_line(line)
    if "☎" in s:
        return True
    return bool(_LABELLED.search(s) or _PRESS_STYLE.search(s) or re.search(r"담당부서\s*:", s))


def normalize_phone(raw: str, exchange: str = DEFAULT_EXCHANGE) -> str | None:
    """`21 3 3 - 5 2 1 0` -> `02-2133-5210`; `5226` -> `<exchange>-5226`; None if unreadable."""
    digits = re.sub(r"[\s\-]", "", raw)
    if not digits.isdigit():
        return None
    if len(digits) == 4:
        return f"{exchange}-{digits}"
    if digits.startswith("02") and len(digits) in (9, 10):
        return f"02-{digits[2:-4]}-{digits[-4:]}"
    if digits.startswith("0") and len(digits) in (10, 11):
        return f"{digits[:3]}-{digits[3:-4]}-{digits[-4:]}"
    if len(digits) in (7, 8):  # local number without area code: Seoul
        return f"02-{digits[:-4]}-{digits[-4:]}"
    return None


def _split_pre(pre: str) -> tuple[list[str], str]:
    """Split the text before a phone into (label tokens, name)."""
    pre = pre.strip(" ,;/")
    left, sep, right = pre.rpartition(":")
    if sep:
        right_tokens = right.split()
        if not any(_ROLE_SUFFIX.search(t) for t in right_tokens[:-1]):
            return left.split(), compact(right)
        pre = right
    tokens = pre.split()
    idx = max((i for i, t in enumerate(tokens) if _ROLE_SUFFIX.search(t)), default=-1)
    if idx < 0:
        return [], compact(pre)  # bare name; `장  성` is a letter-spaced name
    return tokens[: idx + 1], compact("".join(tokens[idx + 1:]))


def _split_labels(pre: str) -> list[tuple[list[str], str]]:
    """`과장 : 김하나  주무관 : 박둘` before one phone: earlier pairs simply have no number."""
    parts = pre.split(":")
    if len(parts) <= 2:
        return [_split_pre(pre)]
    pairs: list[tuple[list[str], str]] = []
    label = parts[0].split()
    for middle in parts[1:-1]:
        tokens = middle.split()
        if len(tokens) < 2:
            return [_split_pre(pre)]
        pairs.append((label, tokens[0]))
        label = tokens[1:]
    pairs.append(_split_pre(" ".join(label) + " : " + parts[-1]))
    return pairs


def _entries_of_line(text: str, line_no: int) -> list[_Entry]:
    if "☎" not in text:
        text = _BARE_PHONE.sub(lambda m: f"{m.group(1)}☎{m.group(2)}", text)
    entries: list[_Entry] = []
    pos = 0
    for m in _PHONE.finditer(text):
        pairs = _split_labels(text[pos:m.start()])
        for label, name in pairs[:-1]:
            entries.append(_Entry(label, name or None, None, line_no, True))
        label, name = pairs[-1]
        entries.append(_Entry(label, name or None, m.group(1), line_no, bool(label)))
        pos = m.end()
    tail = text[pos:].strip(" ,;")
    if ":" in tail:  # `팀장 : 홍길동` with no number printed
        for label, name in _split_labels(tail):
            if label and name:
                entries.append(_Entry(label, name, None, line_no, True))
    return entries


@dataclass
class _Title:
    role: str
    office: str | None = None
    division: str | None = None
    team: str | None = None


def _read_title(label: list[str]) -> _Title:
    """Role and organisational names from label tokens (`경제실`, `경제정책과장`)."""
    title = _Title(role="담당")
    for tok in label:
        tok = tok.strip("()[]")
        if re.fullmatch(r"[가-힣A-Za-z0-9&]+실", tok):
            title.office = tok
        elif re.fullmatch(r"[가-힣A-Za-z0-9&]+과", tok):
            title.division = tok
    if not label:
        return title
    last = label[-1]
    if last.endswith("과장") and len(last) > 2:
        title.role, title.division = "과장", last[:-1]
    elif last.endswith("담당관") and len(last) > 3:  # Seoul 담당관 heads a division-level unit
        title.role, title.division = "과장", last
    elif last.endswith("팀장") and len(last) > 2:
        title.role, title.team = "팀장", last[:-1]
    elif last.endswith("팀") and len(last) > 1:
        title.team = last
    elif last in ("담당", "담당자"):
        pass
    else:
        title.role = last
    return title


def _exchange_of(entries: Sequence[_Entry], titles: Sequence[_Title]) -> str:
    """The 과장's full number gives the block's exchange; otherwise city hall's."""
    ordered = [e for e, t in zip(entries, titles, strict=True) if t.role == "과장"] + list(entries)
    for e in ordered:
        full = normalize_phone(e.raw_phone) if e.raw_phone else None
        if full and len(re.sub(r"\D", "", e.raw_phone or "")) >= 7:
            return full.rsplit("-", 1)[0]
    return DEFAULT_EXCHANGE


def parse_contact_lines(lines: Iterable[tuple[int, str]]) -> ContactBlock:
    """Parse a block of contact lines given as (1-based line number, text)."""
    block = ContactBlock()
    entries: list[_Entry] = []
    for no, raw in lines:
        block.first_line = block.first_line or no
        block.last_line = no
        entries.extend(_entries_of_line(clean_contact_line(raw), no))
    titles = [_read_title(e.label) for e in entries]
    exchange = _exchange_of(entries, titles)
    last_phone: str | None = None
    for entry, title in zip(entries, titles, strict=True):
        phone = normalize_phone(entry.raw_phone, exchange) if entry.raw_phone else None
        if entry.raw_phone and phone is None:
            block.issues.append(Issue(entry.line, f"unreadable phone number: {entry.raw_phone}"))
        if entry.name is None:
            if phone != last_phone:  # the same number printed twice is noise, anything else is doubtful
                block.issues.append(Issue(entry.line, f"phone without a name: {entry.raw_phone}"))
            continue
        if not _NAME.match(entry.name):
            block.issues.append(Issue(entry.line, f"unreadable contact name: {entry.name}"))
            continue
        block.office = block.office or title.office
        if title.role == "과장" and block.division is None:
            block.division = title.division
        elif title.division and block.division is None and title.role != "과장":
            block.division = title.division  # `담당부서 : 경제실 경제정책과`
        if title.role == "팀장" and block.team is None:
            block.team = title.team
        block.contacts.append(Contact(role=title.role, name=entry.name, phone=phone,
                                      division=title.division if title.role == "과장" else None,
                                      team=title.team, line=entry.line))
        last_phone = phone
    return block


def find_contact_block(lines: Sequence[str], start: int, max_lines: int = 12) -> ContactBlock | None:
    """Contact lines right after a heading; `start` is the 0-based index of the first line to look at.

    Blank lines inside the block are skipped; the block ends at the first other line.
    """
    picked: list[tuple[int, str]] = []
    i = start
    while i < len(lines) and i < start + max_lines:
        text = lines[i]
        if text.strip():
            if not is_contact_line(text):
                break
            picked.append((i + 1, text))
        i += 1
    if not picked:
        return None
    return parse_contact_lines(picked)


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def division_typo_issues(contacts: Iterable[Contact], known: Iterable[str]) -> list[Issue]:
    """Flag a division printed once that is one syllable away from a more common one (`창업정첵과`).

    The printed name is kept: only staff can tell a typo from a real, similar division.
    """
    counts = Counter(known)
    issues: list[Issue] = []
    for c in contacts:
        if not c.division:
            continue
        for other, n in counts.items():
            if (other != c.division and n > counts[c.division] and len(other) == len(c.division)
                    and _edit_distance(other, c.division) == 1):
                issues.append(Issue(c.line, f"division {c.division} looks like a typo of {other}",
                                    squeeze(c.division)))
                break
    return issues
