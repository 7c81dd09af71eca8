"""Classeur Excel des résultats (``cpom_<region>_<annee>.xlsx``), avec openpyxl.

- Une feuille par table, dans l'ordre donné (en pratique ``ciblage``, ``suivi_engagements``,
  ``rejets``) ; en-tête en gras, figé, avec filtre automatique ; largeurs de colonnes ajustées.
- **Un texte reste un texte** : toute chaîne est écrite comme chaîne (``data_type = 's'``), même
  si elle commence par ``=``, ``+``, ``-`` ou ``@`` : jamais de formule (ni d'injection de
  formule depuis une valeur rejetée). Les caractères de contrôle interdits par le format XML
  sont remplacés par U+FFFD (« � ») ; au-delà de 32 767 caractères (limite d'Excel), le texte
  est tronqué et se termine par « … ».
- Nombres → nombres ; ``NaN``/``NA``/``None`` → cellule vide ; booléens → VRAI/FAUX ; dates →
  dates Excel au format ``JJ/MM/AAAA``.
- Reproductible à l'octet près : dates de création/modification du classeur fixées
  (``SOURCE_DATE_EPOCH`` s'il est défini, sinon 2000-01-01) et horodatages de l'archive ZIP fixes.
"""

from __future__ import annotations

import datetime as _dt
import io
import math
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["write_cpom_xlsx", "excel_text"]

EXCEL_MAX_CHARS = 32767
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DEFAULT_DATE = _dt.datetime(2000, 1, 1)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
MAX_WIDTH = 60
MIN_WIDTH = 6


def excel_text(value: str) -> str:
    """Texte tel qu'il sera écrit dans une cellule (caractères interdits remplacés, tronqué)."""
    text = _ILLEGAL_XML.sub("\ufffd", str(value))
    if len(text) > EXCEL_MAX_CHARS:
        text = text[: EXCEL_MAX_CHARS - 1] + "…"
    return text


def _fixed_date() -> _dt.datetime:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if raw:
        try:
            return _dt.datetime.fromtimestamp(int(raw), tz=_dt.timezone.utc).replace(tzinfo=None)
        except (ValueError, OverflowError, OSError):
            pass
    return _DEFAULT_DATE


def _cell_value(value: Any) -> tuple[Any, str | None]:
    """(valeur, type) où type vaut 's' pour forcer un texte, 'd' pour une date, sinon None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None, None
    if isinstance(value, str):
        return excel_text(value), "s"
    if isinstance(value, (bool, np.bool_)):
        return bool(value), None
    if isinstance(value, (int, np.integer)):
        return int(value), None
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return None, None
        if math.isinf(x):
            return ("+inf" if x > 0 else "-inf"), "s"
        return x, None
    if isinstance(value, pd.Timestamp):
        return (value.tz_localize(None) if value.tzinfo else value).to_pydatetime(), "d"
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None), "d"
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day), "d"
    try:
        if pd.isna(value):
            return None, None
    except (TypeError, ValueError):
        pass
    return excel_text(str(value)), "s"


def _display_len(value: Any, kind: str | None) -> int:
    if value is None:
        return 0
    if kind == "d":
        return 10
    if isinstance(value, float):
        return len(f"{value:.6g}")
    return max((len(line) for line in str(value).split("\n")), default=0)


def _check_sheet_name(name: str) -> str:
    if not name or len(name) > 31 or any(c in name for c in "[]:*?/\\"):
        raise ValueError(f"Nom de feuille Excel invalide : {name!r} (31 caractères au plus, "
                         "sans []:*?/\\)")
    return name


def write_cpom_xlsx(path: Path, sheets: Mapping[str, pd.DataFrame]) -> None:
    """Écrit le classeur ``path`` avec une feuille par ``DataFrame`` (ordre du dictionnaire).

    Une table vide donne une feuille avec sa seule ligne d'en-tête.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.writer.excel import ExcelWriter

    if not sheets:
        raise ValueError("Aucune feuille à écrire dans le classeur Excel")
    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    header_align = Alignment(vertical="top", wrap_text=False)
    for name, df in sheets.items():
        ws = wb.create_sheet(_check_sheet_name(str(name)))
        columns = [str(c) for c in df.columns]
        widths = [len(c) for c in columns]
        for j, col in enumerate(columns, start=1):
            cell = ws.cell(row=1, column=j)
            cell.value = excel_text(col)
            cell.data_type = "s"
            cell.font = bold
            cell.alignment = header_align
        for i, row in enumerate(df.itertuples(index=False, name=None), start=2):
            for j, raw in enumerate(row, start=1):
                value, kind = _cell_value(raw)
                if value is None:
                    continue
                cell = ws.cell(row=i, column=j)
                cell.value = value
                if kind == "s":
                    # jamais de formule : '=SOMME(A1)', '+33…', '-x', '@x' restent du texte
                    cell.data_type = "s"
                elif kind == "d":
                    cell.number_format = "DD/MM/YYYY"
                widths[j - 1] = max(widths[j - 1], _display_len(value, kind))
        for j, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(j)].width = max(MIN_WIDTH, min(MAX_WIDTH, w + 2))
        ws.freeze_panes = "A2"
        if columns:
            last = get_column_letter(len(columns))
            ws.auto_filter.ref = f"A1:{last}{max(1, len(df) + 1)}"

    stamp = _fixed_date()
    wb.properties.creator = "cpom-qualite"
    wb.properties.lastModifiedBy = "cpom-qualite"
    wb.properties.created = stamp
    wb.properties.modified = stamp

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        # ExcelWriter directement : save_workbook() réécrirait la date de modification
        ExcelWriter(wb, archive).save()

    # Archive réécrite avec des horodatages fixes (sinon l'heure d'écriture de chaque entrée)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            dst.writestr(fixed, src.read(info.filename))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(out.getvalue())
    os.replace(tmp, path)
