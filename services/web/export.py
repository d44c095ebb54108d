"""The 예산현황 table as files: CSV (UTF-8 with BOM, for spreadsheet programs) and Excel xlsx.
Figures are numbers in the chosen unit, rounded as the report prints them."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from services.web.domain import ReportTable, Row, unit_value

HEADERS = ("구분", "부서", "세부사업", "본예산", "예산현액", "집행액", "집행률(%)", "계획(%)", "계획 대비(%p)")


def _cells(row: Row, unit: str) -> list[str | Decimal | None]:
    label = {"계": ("계", "", ""), "소계": ("소계", row.division or "", ""),
             "사업": ("세부사업", row.division or "", row.label)}[row.kind]
    return [*label, unit_value(row.original, unit), unit_value(row.current, unit), unit_value(row.spent, unit),
            row.rate, row.plan, row.versus]


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
        ws.append([float(v) if isinstance(v, Decimal) and row_is_rate(i) else
                   (int(v) if isinstance(v, Decimal) else v) for i, v in enumerate(_cells(row, unit))])
        if row.kind != "사업":
            for cell in ws[ws.max_row]:
                cell.font = Font(bold=True)
                cell.fill = shade
    for col, width in zip("ABCDEFGHI", (8, 14, 40, 12, 12, 12, 10, 10, 12), strict=True):
        ws.column_dimensions[col].width = width
    for r in ws.iter_rows(min_row=3, min_col=4, max_col=6):
        for cell in r:
            cell.number_format = "#,##0"
    for r in ws.iter_rows(min_row=3, min_col=7, max_col=9):
        for cell in r:
            cell.number_format = "0.0"
    ws.freeze_panes = "D3"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def row_is_rate(index: int) -> bool:
    return index >= 6
