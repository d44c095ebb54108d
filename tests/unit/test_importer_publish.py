"""Publishing through ingest's HTTP API: batches, 422 per event, retries on connection errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.ingest.importer.cli import import_files, map_files
from services.ingest.importer.identity import AliasError, load_aliases
from services.ingest.importer.publish import publish

EXECWATCH = str(Path(sys.executable).parent / "execwatch")


def _envelopes(seeds: Path):
    found = sorted(seeds.glob("001_*.txt"))
    if not found:
        pytest.skip("seed 001 absent")
    return map_files(found, progress=False).envelopes


def test_batches_of_at_most_the_limit_with_bearer_token(seeds):
    envelopes = _envelopes(seeds)
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        assert request.url.path == "/v1/events"
        body = json.loads(request.content)
        sizes.append(len(body))
        return httpx.Response(202, json={"accepted": len(body), "duplicates": 0})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    result = publish(envelopes, "http://ingest", "tok", client=client, batch_size=100)
    assert sum(sizes) == len(envelopes) and max(sizes) == 100
    assert result.accepted == len(envelopes) and not result.rejected


def test_422_is_reported_per_event_and_the_rest_is_sent(seeds):
    envelopes = _envelopes(seeds)[:5]
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(len(body))
        if len(body) == 5:
            return httpx.Response(422, json={"rejected": [{"index": 2, "field": "payload.x", "message": "bad"}]})
        return httpx.Response(202, json={"accepted": len(body), "duplicates": 0})

    result = publish(envelopes, "http://ingest", "tok", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert calls == [5, 4]
    assert result.accepted == 4
    assert [(r.event_id, r.field, r.message) for r in result.rejected] == [(str(envelopes[2].event_id), "payload.x",
                                                                           "bad")]


def test_connection_errors_are_retried_with_backoff(seeds):
    envelopes = _envelopes(seeds)[:3]
    attempts = []
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(202, json={"accepted": 3, "duplicates": 0})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    result = publish(envelopes, "http://ingest", "tok", client=client, sleep=waits.append)
    assert result.accepted == 3 and waits == [0.5, 1.0]

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    result = publish(envelopes, "http://ingest", "tok", client=httpx.Client(transport=httpx.MockTransport(down)),
                     sleep=lambda s: None, retries=2)
    assert result.failed and result.unsent == 3 and result.accepted == 0


def test_import_files_dry_run_publishes_nothing(seeds):
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("a dry run must not post")

    found = sorted(seeds.glob("*.txt"))
    summary = import_files(found, "http://ingest", "tok", dry_run=True, progress=False,
                           client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert summary.published is None and summary.envelopes


def test_alias_file_errors_are_clear(tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(AliasError, match="mapping"):
        load_aliases(bad)
    example = Path(__file__).resolve().parents[2] / "services/ingest/importer/aliases.example.yaml"
    assert {a.program_id for a in load_aliases(example)} == {"경제정책과/서울형R&D지원",
                                                             "일자리정책과/청년취업사관학교조성및운영"}


# ---------------------------------------------------------------- the command line

def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXECWATCH, "import", *args], capture_output=True, text=True, timeout=120)


def test_cli_dry_run_prints_the_report(seeds):
    found = sorted(seeds.glob("001_*.txt"))
    if not found:
        pytest.skip("seed 001 absent")
    proc = _run("--dry-run", str(found[0]))
    assert proc.returncode == 0, proc.stderr
    assert "reconciliation" in proc.stdout and "milestone.set" in proc.stdout
    assert "금융투자과 소계" in proc.stdout  # the one printed subtotal that is off


def test_cli_json_dry_run_is_only_contract_envelopes(seeds):
    from contracts import parse_event

    proc = _run("--dry-run", "--json", *map(str, sorted(seeds.glob("*.txt"))))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, list) and data
    for item in data:
        parse_event(item)


def test_cli_missing_file_is_a_clear_error(tmp_path):
    proc = _run("--dry-run", str(tmp_path / "nope.txt"))
    assert proc.returncode != 0
    assert "nope.txt" in proc.stderr and "no such file" in proc.stderr


def test_cli_garbage_file_imports_nothing_without_crashing(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 20)
    proc = _run("--dry-run", "--json", str(junk))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    report = tmp_path / "report.json"
    proc = _run("--dry-run", "--report", str(report), str(junk))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "nothing imported" in proc.stdout
    assert json.loads(report.read_text(encoding="utf-8"))["counts"] == {}


def test_reports_are_mapped_oldest_first_whatever_the_file_order(seeds):
    """The 추경 plan (000) names the January programs; given first, it still lands on them."""
    from services.ingest.importer.cli import map_files

    summary = map_files([seeds / "000_b33102f55d2543a4.txt", seeds / "001_74008803e39ce1ad.txt"],
                        progress=False)
    assert [d.name for d in summary.documents] == ["001_74008803e39ce1ad.txt", "000_b33102f55d2543a4.txt"]
    january = {e.key for e in summary.documents[0].envelopes if e.event_type == "budget.line_set"}
    amended = [e for e in summary.documents[1].envelopes if e.event_type == "budget.amended"]
    assert len(amended) == 4 and {e.key for e in amended} <= january
