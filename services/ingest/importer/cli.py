"""`execwatch import FILE…`: parse reports, publish their facts through ingest, print a report.

Files are mapped oldest first (by reference year, kind and as-of date): a program is matched to
the ones earlier files registered, and a newer business report that prints a program's schedule
without one of its earlier milestones cancels that milestone (`milestone.set` status=cancelled).
With `--state FILE`, what earlier runs learned (programs, the last business report's milestones)
is remembered, so a report imported next month is matched against last month's.

After publishing, the budget view is compared with every 예산현황 the files contain, as of its
기준일 (`--budget-url`, `--verify-timeout`; `--no-verify` skips it). Exit codes: 0 all well,
1 a file could not be read, 2 usage, 3 publishing failed, 4 the budget view disagrees with a
report (or could not be read before the timeout).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO

import httpx

from contracts import parse_event
from services.ingest.importer.events import (
    AnyEnvelope,
    DocumentResult,
    cancelled_milestones,
    dropped_targets,
    map_report,
)
from services.ingest.importer.identity import (
    AliasError,
    ProgramRegistry,
    load_aliases,
    registry_from_json,
    registry_to_json,
)
from services.ingest.importer.model import Issue, ParsedReport
from services.ingest.importer.publish import publish
from services.ingest.importer.report import parse_text
from services.ingest.importer.reporting import ImportSummary, render, render_dry_run
from services.ingest.importer.verify import DEFAULT_BUDGET_URL, verify_documents

DEFAULT_INGEST_URL = "http://127.0.0.1:8701"


def _default_token() -> str | None:
    env = os.environ.get("EXECWATCH_IMPORT_TOKEN")
    if env:
        return env
    try:
        from services.common.settings import get_settings

        token = get_settings().ingest_sources.get("report-importer")
        return token.get_secret_value() if token else None
    except Exception:  # settings unreadable: the user must pass --token
        return None


def _default_state() -> Path | None:
    return _state_path(os.environ.get("EXECWATCH_IMPORT_STATE", "var/import-state.json"))


def _state_path(value: str) -> Path | None:
    """`--state ''` (or the env set empty) means no state file."""
    return Path(value) if value else None


def load_state(path: Path | None, aliases: Path | None) -> tuple[ProgramRegistry, list[AnyEnvelope]]:
    """The registry and the milestones and targets of the last business reports, as earlier runs
    saved them (empty when none)."""
    alias_list = load_aliases(aliases)
    if path is None or not path.exists():
        return ProgramRegistry(alias_list), []
    data = json.loads(path.read_text("utf-8"))
    listed = [parse_event(m) for m in data.get("listed", [])]
    return registry_from_json(data.get("registry", {}), alias_list), listed  # type: ignore[return-value]


def save_state(path: Path, registry: ProgramRegistry, listed: Sequence[AnyEnvelope]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"registry": registry_to_json(registry), "listed": [m.model_dump(mode="json") for m in listed]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a state file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="report text files (older first)")
    parser.add_argument("--dry-run", action="store_true", help="parse and show what would be published")
    parser.add_argument("--json", action="store_true",
                        help="with --dry-run: print only a JSON array of the envelopes on stdout")
    parser.add_argument("--ingest-url", default=os.environ.get("EXECWATCH_INGEST_URL", DEFAULT_INGEST_URL),
                        help="ingest base URL (env EXECWATCH_INGEST_URL; default %(default)s)")
    parser.add_argument("--token", default=None,
                        help="ingest token (env EXECWATCH_IMPORT_TOKEN; default the report-importer token)")
    parser.add_argument("--source", default="report-importer", help="source name of the token (default %(default)s)")
    parser.add_argument("--aliases", type=Path, default=None, metavar="FILE",
                        help="YAML alias table: canonical program id -> names (see aliases.example.yaml)")
    parser.add_argument("--report", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--state", type=_state_path, default=_default_state(), metavar="FILE",
                        help="remember programs and milestones between runs (env EXECWATCH_IMPORT_STATE; "
                             "default %(default)s); saved only after a complete publish")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only problems in the report")
    parser.add_argument("--budget-url", default=os.environ.get("EXECWATCH_BUDGET_URL", DEFAULT_BUDGET_URL),
                        help="budget view to reconcile with after publishing (env EXECWATCH_BUDGET_URL; "
                             "default %(default)s)")
    parser.add_argument("--budget-token", default=None, metavar="KEY",
                        help="a key that may read the budget view (staff, operator or auditor; env "
                             "EXECWATCH_BUDGET_TOKEN): a publishing system's own key may not read it")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not wait for the budget view nor compare it with the reports")
    parser.add_argument("--verify-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for the budget view to agree (default %(default)s)")


class Progress:
    """A plain-text progress bar on stderr, shown only for several files."""

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 1

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = width * self.done // self.total
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if self.done == self.total else ""
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[:40]:40}{end}")
        self.stream.flush()


#: Within one fiscal year a 추경 amends what the business report states, so it is applied after it.
KIND_ORDER = {"business_report": 0, "plan": 1, "press_release": 1, "unknown": 1, "supplementary_budget": 2}


def chronological(reports: list[tuple[int, ParsedReport]]) -> list[tuple[int, ParsedReport]]:
    """Older facts first, whatever order the files were named in: by reference year, then kind,
    then the latest as-of date the document states, then the order given."""
    def key(item: tuple[int, ParsedReport]) -> tuple[int, int, date, int]:
        index, r = item
        latest = max(r.as_of_dates, default=date.min)
        return (r.reference_year or 9999, KIND_ORDER.get(r.kind, 1), latest, index)

    return sorted(reports, key=key)


def map_files(paths: Sequence[Path], source: str = "report-importer", aliases: Path | None = None,
              progress: bool = True, state: Path | None = None) -> ImportSummary:
    """Parse every file, then map them oldest first; unreadable files are recorded, not raised."""
    registry, previous = load_state(state, aliases)
    summary = ImportSummary()
    bar = Progress(len(paths), progress)
    parsed: list[tuple[int, ParsedReport]] = []
    texts: dict[int, str] = {}
    for index, path in enumerate(paths):
        name = Path(path).name
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            summary.documents.append(DocumentResult(str(path), name, error=exc.strerror or str(exc)))
            bar.step(name)
            continue
        try:
            text = raw.decode("utf-8-sig")
            if "\x00" in text:
                raise ValueError("binary content (NUL bytes)")
        except ValueError as exc:  # UnicodeDecodeError too: read, but not a text extraction
            doc = DocumentResult(str(path), name)
            doc.issues.append(Issue(1, f"not a UTF-8 text extraction ({exc.__class__.__name__}); nothing imported"))
            summary.documents.append(doc)
            bar.step(name)
            continue
        parsed.append((index, parse_text(text, str(path))))
        texts[index] = text
        bar.step(name)
    for index, report in chronological(parsed):
        result = map_report(report, registry, source, texts[index])
        if report.kind == "business_report":
            cancelled_milestones(previous, result)
            dropped_targets(previous, result)
            previous = [e for e in previous if e.key not in {x.key for x in result.envelopes}] + result.envelopes
        summary.documents.append(result)
    summary.registry = registry
    summary.last_listed = [e for e in previous if e.event_type in ("milestone.set", "target.set")]
    return summary


def import_files(paths: Sequence[Path], ingest_url: str, token: str, source: str = "report-importer",
                 dry_run: bool = False, aliases: Path | None = None, progress: bool = True,
                 client: httpx.Client | None = None, state: Path | None = None) -> ImportSummary:
    """Parse, map and (unless dry_run) publish; `client` lets tests route HTTP in-process.
    The state file is written only when everything was published, so a failed run is redone whole."""
    summary = map_files(paths, source, aliases, progress, state)
    summary.dry_run = dry_run
    if not dry_run:
        summary.published = publish(summary.envelopes, ingest_url, token, client=client)
        # Rejections are final (the contract refuses them again); an unreachable ingest is not.
        if state is not None and summary.published.failed is None and summary.registry is not None:
            save_state(state, summary.registry, summary.last_listed)
    return summary


def envelopes_json(summary: ImportSummary) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in summary.envelopes]


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = list(args.files)
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"execwatch import: {p}: no such file", file=sys.stderr)
    token = args.token or _default_token()
    if not args.dry_run and not token:
        print("execwatch import: no token; pass --token or set EXECWATCH_IMPORT_TOKEN", file=sys.stderr)
        return 2
    try:
        summary = import_files(paths, args.ingest_url, token or "", args.source, args.dry_run, args.aliases,
                               progress=not args.quiet and not args.json, state=args.state)
    except AliasError as exc:
        print(f"execwatch import: {exc}", file=sys.stderr)
        return 2
    published = summary.published is not None and summary.published.failed is None
    if published and not args.no_verify:
        reader = args.budget_token or os.environ.get("EXECWATCH_BUDGET_TOKEN") or None
        summary.verifications = verify_documents(summary.documents, args.budget_url, args.verify_timeout,
                                                 stream=sys.stderr if not args.quiet else io.StringIO(),
                                                 token=reader)
    if args.report:
        args.report.write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2, default=str),
                               encoding="utf-8")
    if args.json:
        json.dump(envelopes_json(summary), sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        if not args.quiet:
            print(render(summary), file=sys.stderr)
    else:
        if args.dry_run and not args.quiet:
            print(render_dry_run(summary))
            print()
        print(render(summary))
    failed = summary.published is not None and summary.published.failed is not None
    if summary.unreadable:
        return 1
    if failed:
        return 3
    return 4 if any(not v.ok for v in summary.verifications) else 0
