"""Program identity across documents: which 세부사업 a name in a report refers to.

The same program is printed differently from report to report (`양재AI 혁신지구 육성` /
`양재 AI 혁신지구 육성`, `안암동 캠퍼스타운도시재생활성화 사업` / `안암동 캠퍼스타운 도시재생활성화`).
Matching order, strictest first:

1. the alias table staff maintain (YAML: canonical program id -> names, optional division);
2. division + normalised name (`text.normalize_name`) among programs already seen;
3. the normalised name alone, when exactly one known program carries it and one side names
   no division (a national plan, a press release);
4. the amount: within the same division, exactly one known program whose 본예산 equals this
   one within the rounding of the coarser table, and whose name shares a word with it.

Anything else is a new program. A new program in a document that follows others is listed in
the import report so a person can link it with the alias table: it is never merged by guess.

Programs remember their scope: `record` (a 세부사업 of a 예산현황 table), `part` (below one, with
its parent) or `unlinked` (a section no row of record claims). Name matching only ever answers
with records and unlinked programs: a part carries its parent's name too often (`…지원(공사비)`).
An alias entry may also list `parts:` names: they link as a part of that program.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.ingest.importer.text import normalize_line, normalize_name

UNKNOWN_ORG = "소속미상"
MAX_ID = 200


def display_key(name: str) -> str:
    """Readable, stable id part: whitespace, quotes and slashes removed, case kept (`서울형R&D지원`)."""
    s = unicodedata.normalize("NFKC", normalize_line(name))
    s = re.sub(r"[\s'\"‘’“”`/]+", "", s)
    return s


def make_program_id(division: str | None, name: str) -> str:
    """`경제정책과/서울형R&D지원`: the Kafka key, ≤ 200 characters, readable by staff."""
    org = display_key(division) if division else UNKNOWN_ORG
    pid = f"{org}/{display_key(name) or 'untitled'}"
    return pid[:MAX_ID]


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[\s()·,\[\]]+", normalize_line(name)) if len(w) >= 2}


@dataclass(frozen=True)
class Alias:
    program_id: str
    names: frozenset[str]  # normalised
    division: str | None = None
    parts: frozenset[str] = frozenset()  # normalised names that are a part of program_id


class AliasError(ValueError):
    """The alias file is not the expected YAML shape; the message says where."""


def load_aliases(path: Path | None) -> list[Alias]:
    """Read `canonical_id: [name, ...]` or `canonical_id: {division: 과, names: [...], parts: [...]}`."""
    if path is None:
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise AliasError(f"{path}: expected a mapping of program id -> names")
    aliases: list[Alias] = []
    for pid, spec in data.items():
        division: str | None = None
        parts: Any = []
        if isinstance(spec, Mapping):
            division = spec.get("division")
            names = spec.get("names") or []
            parts = spec.get("parts") or []
        else:
            names = spec or []
        if isinstance(names, str):
            names = [names]
        if isinstance(parts, str):
            parts = [parts]
        for what, value in (("names", names), ("parts", parts)):
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise AliasError(f"{path}: {pid}: {what} must be a list of strings")
        pid_s = str(pid)
        if not pid_s or len(pid_s) > MAX_ID:
            raise AliasError(f"{path}: program id {pid_s!r} must be 1..{MAX_ID} characters")
        keys = {normalize_name(n) for n in names} | {normalize_name(pid_s.rsplit("/", 1)[-1])}
        part_keys = frozenset(k for k in (normalize_name(n) for n in parts) if k)
        aliases.append(Alias(pid_s, frozenset(k for k in keys if k) - part_keys, division, part_keys))
    return aliases


@dataclass
class KnownProgram:
    program_id: str
    division: str | None
    title: str
    names: set[str] = field(default_factory=set)  # normalised
    original: int | None = None  # 본예산 in 원, for matching by amount
    documents: set[str] = field(default_factory=set)
    scope: str = "record"  # record | part | unlinked (see the module docstring)
    parent: str | None = None  # for a part: the program of record it belongs to
    account: str | None = None  # 일반회계 / 특별회계 / 기금, as the line of record says


@dataclass(frozen=True)
class Match:
    program_id: str
    how: str  # "alias" | "name" | "name-only" | "amount" | "new"
    known: bool  # True when the program was seen in an earlier document (or the alias table)


@dataclass(frozen=True)
class Unmatched:
    """A program first seen in a later document: staff link it to an existing one, or accept it."""

    document: str
    line: int
    name: str
    division: str | None
    program_id: str


class ProgramRegistry:
    """Programs seen in this import run (and the alias table), in document order."""

    def __init__(self, aliases: Iterable[Alias] = ()) -> None:
        self.aliases = list(aliases)
        self.programs: dict[str, KnownProgram] = {}
        self.documents: list[str] = []

    def _alias(self, key: str, division: str | None) -> str | None:
        for alias in self.aliases:
            if key in alias.names and (alias.division is None or division is None or alias.division == division):
                return alias.program_id
        return None

    def alias_parent(self, name: str, division: str | None) -> str | None:
        """The program an alias entry lists `name` as a part of, if any."""
        key = normalize_name(name)
        for alias in self.aliases:
            if key in alias.parts and (alias.division is None or division is None or alias.division == division):
                return alias.program_id
        return None

    def alias_of(self, name: str, division: str | None) -> str | None:
        """The program an alias entry names `name` as, if any."""
        return self._alias(normalize_name(name), division)

    def resolve(self, name: str, division: str | None, document: str, original: int | None = None,
                tolerance: int = 0, org: str | None = None) -> Match:
        """The program `name` refers to; `org` (e.g. the 실) names a new id when no division is known."""
        key = normalize_name(name)
        pid = self._alias(key, division)
        if pid is not None:
            return Match(pid, "alias", True)
        whole = [p for p in self.programs.values() if p.scope != "part"]
        earlier = [p for p in whole if p.documents - {document}]
        current = [p for p in whole if document in p.documents]
        for pool, known in ((current, False), (earlier, True)):
            same = [p for p in pool if key in p.names and p.division == division]
            if len(same) == 1:
                return Match(same[0].program_id, "name", known or bool(same[0].documents - {document}))
        for pool, known in ((current, False), (earlier, True)):
            named = [p for p in pool if key in p.names]
            if len(named) == 1 and (division is None or named[0].division is None):
                return Match(named[0].program_id, "name-only", known)
        if original is not None and division is not None:
            words = _words(name)
            cands = [p for p in earlier if p.division == division and p.original is not None
                     and abs(p.original - original) <= tolerance and words & _words(p.title)]
            if len(cands) == 1:
                return Match(cands[0].program_id, "amount", True)
        return Match(make_program_id(division or org, name), "new", False)

    def part_named(self, name: str, division: str | None) -> KnownProgram | None:
        """A part seen before under this name in this division (a later table lists it again)."""
        key = normalize_name(name)
        found = [p for p in self.programs.values() if p.scope == "part" and key in p.names
                 and (division is None or p.division == division)]
        return found[0] if len(found) == 1 else None

    def remember(self, program_id: str, name: str, division: str | None, document: str,
                 original: int | None = None, scope: str | None = None, parent: str | None = None,
                 account: str | None = None) -> None:
        known = self.programs.get(program_id)
        if known is None:
            known = self.programs[program_id] = KnownProgram(program_id, division, name)
        if scope is not None:
            known.scope = scope
            known.parent = parent
        if account is not None:
            known.account = account
        known.names.add(normalize_name(name))
        known.documents.add(document)
        if original is not None:
            known.original = original
        if division and not known.division:
            known.division = division

    def start_document(self, document: str) -> bool:
        """Register a document; True when others came before it (new programs are then unmatched)."""
        later = bool(self.documents)
        self.documents.append(document)
        return later


# --- state kept between import runs ------------------------------------------------------------------


def registry_to_json(registry: ProgramRegistry) -> dict[str, Any]:
    return {
        "documents": registry.documents,
        "programs": [
            {"program_id": p.program_id, "division": p.division, "title": p.title, "names": sorted(p.names),
             "original": p.original, "documents": sorted(p.documents), "scope": p.scope, "parent": p.parent,
             "account": p.account}
            for p in registry.programs.values()
        ],
    }


def registry_from_json(data: dict[str, Any], aliases: Iterable[Alias] = ()) -> ProgramRegistry:
    registry = ProgramRegistry(aliases)
    registry.documents = list(data.get("documents", []))
    for p in data.get("programs", []):
        registry.programs[p["program_id"]] = KnownProgram(
            p["program_id"], p.get("division"), p["title"], set(p.get("names", [])), p.get("original"),
            set(p.get("documents", [])), p.get("scope", "record"), p.get("parent"), p.get("account"))
    return registry
