"""The 예산현황 table as files: CSV (UTF-8 with BOM, for spreadsheet programs) and Excel xlsx.
Figures are numbers in the chosen unit, rounded as the report prints them. A 소계 or 계 carries
what the page prints (the report's figures of record where it states them) and, beside it, the
sum of the programs and where the printed figures come from."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from services.web.domain import ReportTable, Row, unit_value

HEADERS = ("구분", "부서", "세부사업", "본예산", "예산현액", "집행액", "집행률(%)", "계획(%)", "계획 대비(%p)",
           "세부사업 합 본예산", "세부사업 합 예산현액", "세부사업 합 집행액", "소계·계 출처")
AMOUNTS = (3, 4, 5, 9, 10, 11)  # column indexes of amounts (the rest of 3..11 are rates)


def source(row: Row) -> str:
    if row.kind == "사업":
        return ""
    return f"보고서 ({row.of_record:%Y-%m-%d} 기준)" if row.of_record else "세부사업 합"


def _cells(row: Row, unit: str) -> list[str | Decimal | None]:
    label = {"계": ("계", "", ""), "소계": ("소계", row.division or "", ""),
             "사업": ("세부사업", row.division or "", row.label)}[row.kind]
    sums = row.program_sums if row.kind != "사업" else (None, None, None)
    return [*label, unit_value(row.original, unit), unit_value(row.current, unit), unit_value(row.spent, unit),
            row.rate, row.plan, row.versus, *(unit_value(v, unit) for v in sums), source(row)]


def title(table: ReportTable, unit: str) -> str:
    day = f"{table.as_of:%Y-%m-%d} 기준" if table.as_of else "최신"
    return f"{table.fiscal_year}년 예산현황 ({day}, 단위: {unit})"


def to_csv(table: ReportTable, unit: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title(table, unit)])
    writer.writerow(HEADERS)
    for row in table.all_rows():
        writer.writerow(["" if v is None else v for v in _cells(row, unit)])
    return ("\ufeff" + out.getvalue()).encode()


def to_xlsx(table: ReportTable, unit: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "예산현황"
    ws.append([title(table, unit)])
    ws["A1"].font = Font(bold=True, size=12)
    ws.append(list(HEADERS))
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center")
    shade = PatternFill("solid", fgColor="EEF2F7")
    for row in table.all_rows():
        ws.append([int(v) if isinstance(v, Decimal) and i in AMOUNTS else
                   (float(v) if isinstance(v, Decimal) else v) for i, v in enumerate(_cells(row, unit))])
        if row.kind != "사업":
            for cell in ws[ws.max_row]:
                cell.font = Font(bold=True)
                cell.fill = shade
    for col, width in zip("ABCDEFGHIJKLM", (8, 14, 40, 12, 12, 12, 10, 10, 12, 14, 14, 14, 22), strict=True):
        ws.column_dimensions[col].width = width
    for r in ws.iter_rows(min_row=3, min_col=4, max_col=12):
        for i, cell in enumerate(r, start=3):
            cell.number_format = "#,##0" if i in AMOUNTS else "0.0"
    ws.freeze_panes = "D3"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()

