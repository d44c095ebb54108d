"""Limits every event must keep, so that whatever ingest accepts can always be stored and published.

The numbers live here, in the contract, not in the broker: a department system learns them from
the committed JSON Schemas (maxLength, maximum, pattern), and ingest checks them at both front
doors (HTTP and the inbound topic) before anything is stored.

- Size: a serialized event is at most `MAX_EVENT_BYTES` (256 KiB), well below the producer's
  `PRODUCER_MAX_REQUEST_BYTES` (1 MiB, aiokafka's and Apache Kafka's default `max.request.size` /
  `message.max.bytes`). Brokers and producers must allow at least that much; the headroom covers
  headers and the dead-letter copy.
- Text: every free-text field has a maximum length; ids, names and titles are one line without
  control characters (no NUL, CR, LF, …: they end up in SQL, mail headers and log lines); longer
  prose (purpose, notes, reasons, summaries) may contain tabs and line breaks but no other control
  characters.
- Money: integer 원 up to `MAX_WON` (10^15 원 = 1,000조원, far above any 서울시 budget and inside
  int64), signed changes symmetric.
- Dates: fiscal years 2000–2100; every date within a year of that range.
- Types are strict where JSON would coerce: `true` is not 1 원, `"2025"` is not a year, `1.0` is
  not an integer, a date is an ISO string (not a Unix timestamp).

Compatibility: a limit that rejects what was accepted before breaks *producers*, not consumers (a
consumer only ever receives a subset of what it read before). `execwatch contracts check` fails on
consumer-breaking changes and lists tightened limits as notices; a new or tighter limit is announced
to the department systems with the schema change. The strict types added with these limits change
no schema: the committed schemas always said `integer` / `boolean` / ISO `date`; the code now
enforces what the schemas promised.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, Field, GetPydanticSchema, Strict
from pydantic_core import PydanticCustomError
from pydantic_core import core_schema as cs

#: The largest serialized event (UTF-8 JSON) accepted anywhere.
MAX_EVENT_BYTES: Final = 256 * 1024
#: The producer's max request size (aiokafka `max_request_size`), set explicitly on every broker.
#: Apache Kafka's `message.max.bytes` (broker) and `max.message.bytes` (topic) default to about as
#: much; keep them at least this large.
PRODUCER_MAX_REQUEST_BYTES: Final = 1024 * 1024

MIN_FISCAL_YEAR: Final = 2000
MAX_FISCAL_YEAR: Final = 2100
#: Dates may fall a year either side of the fiscal years (an as-of in January, a plan made before).
MIN_DATE: Final = date(MIN_FISCAL_YEAR - 1, 1, 1)
MAX_DATE: Final = date(MAX_FISCAL_YEAR + 1, 12, 31)

MAX_WON: Final = 10**15
MAX_QUANTITY: Final = Decimal(10**12)

ID_MAX: Final = 200
SOURCE_MAX: Final = 100
NAME_MAX: Final = 100
TITLE_MAX: Final = 300
SHORT_TEXT_MAX: Final = 200
TEXT_MAX: Final = 2000
NOTE_MAX: Final = 1000
EMAIL_MAX: Final = 254
LIST_MAX: Final = 100
CONTACTS_MAX: Final = 30

#: One line: no C0/C1 control characters, no Unicode line or paragraph separators. The same
#: pattern is in the JSON Schema (ECMA-262 syntax) and checked by pydantic (Rust regex syntax).
LINE_PATTERN: Final = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
#: Prose: like a line, but tab, LF and CR are allowed.
TEXT_PATTERN: Final = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]*$"
#: An e-mail address (syntax only; which domains may be used is ingest policy).
EMAIL_PATTERN: Final = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)

#: Messages shown instead of pydantic's "String should match pattern '…'".
PATTERN_MESSAGES: Final[dict[str, str]] = {
    LINE_PATTERN: "control characters (NUL, CR, LF, tab, …) are not allowed here",
    TEXT_PATTERN: "control characters other than tab and line breaks are not allowed",
    EMAIL_PATTERN: "not an e-mail address",
}


#: Dates travel as ISO strings: a number would otherwise be read as a Unix timestamp.
ISO_TEXT_MESSAGE: Final = "must be an ISO 8601 string"
#: Instants are checked as such (UTC), as the schemas' formatMinimum / formatMaximum state them.
MIN_INSTANT: Final = datetime(MIN_DATE.year, 1, 1, tzinfo=UTC)
END_INSTANT: Final = datetime(MAX_DATE.year + 1, 1, 1, tzinfo=UTC)  # exclusive


def _iso_text(value: Any) -> Any:
    if isinstance(value, str | date):
        return value
    raise PydanticCustomError("iso_text", ISO_TEXT_MESSAGE)


def _iso_only(checked: cs.CoreSchema, documented: cs.CoreSchema) -> GetPydanticSchema:
    """`checked` (pydantic's lax date or datetime with its range) given only an ISO string, or in
    Python also a date: all of it in pydantic-core when the input is JSON (a string first, then
    read as from Python, as the Python path reads it), so validating a date calls no Python (the
    two Python validators per date field this replaced were ≈ 2.6 % of the HTTP door's instructions). In
    Python the check for a string or date stays a function (dicts built by the importer and the
    tests hold strings or dates). The JSON Schema is `documented`'s."""
    string = cs.custom_error_schema(cs.str_schema(strict=True), "iso_text", custom_error_message=ISO_TEXT_MESSAGE)
    schema = cs.json_or_python_schema(json_schema=cs.chain_schema([string, checked]),
                                      python_schema=cs.no_info_before_validator_function(_iso_text, checked))
    return GetPydanticSchema(lambda _source, _handler: schema,
                             lambda _schema, handler: handler(documented))


#: One line of text: ids, names, titles.
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX, pattern=LINE_PATTERN)]
SourceName = Annotated[str, Field(min_length=1, max_length=SOURCE_MAX, pattern=LINE_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=LINE_PATTERN)]
Title = Annotated[str, Field(min_length=1, max_length=TITLE_MAX, pattern=LINE_PATTERN)]
ShortText = Annotated[str, Field(max_length=SHORT_TEXT_MAX, pattern=LINE_PATTERN)]
#: Prose that may span lines.
Text = Annotated[str, Field(max_length=TEXT_MAX, pattern=TEXT_PATTERN)]
Note = Annotated[str, Field(max_length=NOTE_MAX, pattern=TEXT_PATTERN)]
Email = Annotated[str, Field(max_length=EMAIL_MAX, pattern=EMAIL_PATTERN)]

FiscalYear = Annotated[int, Strict(), Field(ge=MIN_FISCAL_YEAR, le=MAX_FISCAL_YEAR)]
Count = Annotated[int, Strict(), Field(ge=0, le=10**9)]
Quantity = Annotated[Decimal, Field(ge=0, le=MAX_QUANTITY, max_digits=24, decimal_places=6)]
Flag = Annotated[bool, Strict()]
#: `formatMinimum` / `formatMaximum` state the range in the schema (the ajv-formats keywords).
ContractDate = Annotated[
    date, _iso_only(cs.date_schema(ge=MIN_DATE, le=MAX_DATE), cs.date_schema()),
    Field(json_schema_extra={"formatMinimum": MIN_DATE.isoformat(), "formatMaximum": MAX_DATE.isoformat()}),
]
ContractDateTime = Annotated[
    AwareDatetime,
    _iso_only(cs.datetime_schema(tz_constraint="aware", ge=MIN_INSTANT, lt=END_INSTANT),
              cs.datetime_schema(tz_constraint="aware")),
    Field(json_schema_extra={"formatMinimum": f"{MIN_DATE.isoformat()}T00:00:00Z",
                             "formatMaximum": f"{MAX_DATE.isoformat()}T23:59:59Z"}),
]
