"""Lecture brute des fichiers d'entrée (CSV ou XLSX) en tables de chaînes, avec numéros de ligne.

Règles du contrat de données (section 1) appliquées ici :
- CSV en UTF-8 (avec ou sans BOM) ou Windows-1252, détecté ; séparateur ``;`` ou ``,`` détecté ;
- en-têtes normalisés (casse, accents, espaces/tirets/points → ``_``) ;
- XLSX : première feuille (ou une feuille nommée), lue de la même façon.

Les valeurs restent des chaînes : l'interprétation (nombres, dates, booléens, FINESS) est faite par
:mod:`analysis.cleaning`, qui peut ainsi citer la valeur d'origine dans les rejets.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

LINE_COL = "_ligne"
FILE_COL = "_fichier"
SUPPORTED_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")


class InputError(Exception):
    """Erreur bloquante sur les données d'entrée ; le message est en français et destiné à l'analyste."""


def normalize_name(name: object) -> str:
    """``FINESS géo`` → ``finess_geo`` ; ``Raison sociale`` → ``raison_sociale``."""
    text = "" if name is None else str(name)
    text = text.replace("\ufeff", "").strip()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower()
    text = re.sub(r"[\s\-\.'’/]+", "_", text)
    text = re.sub(r"[^0-9a-z_]", "", text)
    text = re.sub(r"_+", "_", text).strip("_")
    return text


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class RawTable:
    """Contenu brut d'un fichier : chaînes, en-têtes normalisés, colonne ``_ligne``."""

    path: Path
    data: pd.DataFrame
    original_headers: dict[str, str]  # normalised -> as written in the file
    encoding: str = ""
    separator: str = ""
    sheet: str = ""
    empty_lines: int = 0
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line, message)

    @property
    def name(self) -> str:
        return self.path.name


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    if b"\x00" in raw[:8192]:
        raise InputError(
            f"Le fichier « {path.name} » est illisible : il semble binaire (ce n'est ni un CSV ni un "
            "classeur XLSX). Enregistrez-le au format CSV (UTF-8 ou Windows-1252) ou XLSX."
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        # cp1252 leaves 5 bytes undefined; latin-1 maps them, the text stays readable.
        return raw.decode("latin-1"), "latin-1"


def _detect_separator(first_line: str) -> str:
    counts = {}
    for sep in (";", ",", "\t"):
        # count separators outside double quotes
        in_quotes = False
        n = 0
        for ch in first_line:
            if ch == '"':
                in_quotes = not in_quotes
            elif ch == sep and not in_quotes:
                n += 1
        counts[sep] = n
    best = max(counts, key=lambda s: (counts[s], s == ";"))
    return best if counts[best] > 0 else ";"


def _dedupe_headers(headers: list[str], path: Path) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, h in enumerate(headers):
        if not h:
            h = f"colonne_{i + 1}"
        if h in seen:
            raise InputError(
                f"Le fichier « {path.name} » contient deux colonnes qui portent le même nom une fois "
                f"normalisé (« {h} »). Renommez l'une d'elles."
            )
        seen[h] = i
        out.append(h)
    return out


def _collect_rows(records, ncol: int, too_many):
    """Rows of ``ncol`` cells from ``(line, cells)`` records: blank rows counted, short rows padded,
    rows with values beyond the header listed as malformed (line, French reason)."""
    rows: list[list[str]] = []
    lines: list[int] = []
    empty = 0
    malformed: list[tuple[int, str]] = []
    for line, cells in records:
        if not cells or all(not str(c).strip() for c in cells):
            empty += 1
            continue
        if len(cells) > ncol:
            if any(str(c).strip() for c in cells[ncol:]):
                malformed.append((line, too_many(len(cells))))
                continue
            cells = cells[:ncol]
        elif len(cells) < ncol:
            cells = cells + [""] * (ncol - len(cells))
        rows.append(cells)
        lines.append(line)
    return rows, lines, empty, malformed


def read_csv_text(path: Path) -> RawTable:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"Le fichier « {path.name} » est vide.")
    text, encoding = _decode(raw, path)
    first_line = text.lstrip("\ufeff").splitlines()[0] if text else ""
    sep = _detect_separator(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"')
    try:
        header = next(reader)
    except StopIteration as exc:  # pragma: no cover - guarded by the emptiness check
        raise InputError(f"Le fichier « {path.name} » est vide.") from exc
    original = [h.replace("\ufeff", "").strip() for h in header]
    norm = _dedupe_headers([normalize_name(h) for h in original], path)
    ncol = len(norm)
    try:
        rows, lines, empty, malformed = _collect_rows(
            ((reader.line_num, rec) for rec in reader),
            ncol,
            lambda n: f"{n} champs pour {ncol} colonnes d'en-tête (séparateur « {sep} »)",
        )
    except csv.Error as exc:
        raise InputError(
            f"Le fichier « {path.name} » est illisible à la ligne {reader.line_num} : {exc}."
        ) from exc
    df = pd.DataFrame(rows, columns=norm, dtype=object) if rows else pd.DataFrame(columns=norm, dtype=object)
    df[LINE_COL] = pd.Series(lines, dtype="int64")
    return RawTable(
        path=path,
        data=df,
        original_headers=dict(zip(norm, original)),
        encoding=encoding,
        separator=sep,
        empty_lines=empty,
        malformed=malformed,
    )


def _cell_to_str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value).strip()


def xlsx_sheet_names(path: Path) -> list[str]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def read_xlsx(path: Path, sheet: str | None = None) -> RawTable:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, InvalidFileException, KeyError...
        raise InputError(
            f"Le fichier « {path.name} » est illisible : ce n'est pas un classeur XLSX valide ({type(exc).__name__})."
        ) from exc
    try:
        if sheet is None:
            ws = wb[wb.sheetnames[0]]
        else:
            ws = wb[sheet]
        it = ws.iter_rows(values_only=True)
        header = None
        header_line = 0
        for i, row in enumerate(it, start=1):
            if row and any(c is not None and str(c).strip() for c in row):
                header = row
                header_line = i
                break
        if header is None:
            raise InputError(f"Le fichier « {path.name} » (feuille « {ws.title} ») est vide.")
        original = [_cell_to_str(h) for h in header]
        # trailing empty header cells are ignored
        while original and not original[-1]:
            original.pop()
        norm = _dedupe_headers([normalize_name(h) for h in original], path)
        ncol = len(norm)
        rows, lines, empty, malformed = _collect_rows(
            ((i, [_cell_to_str(c) for c in row]) for i, row in enumerate(it, start=header_line + 1)),
            ncol,
            lambda n: f"valeurs hors des {ncol} colonnes d'en-tête",
        )
        title = ws.title
    finally:
        wb.close()
    df = pd.DataFrame(rows, columns=norm, dtype=object) if rows else pd.DataFrame(columns=norm, dtype=object)
    df[LINE_COL] = pd.Series(lines, dtype="int64")
    return RawTable(
        path=path,
        data=df,
        original_headers=dict(zip(norm, original)),
        encoding="xlsx",
        separator="",
        sheet=title,
        empty_lines=empty,
        malformed=malformed,
    )


def read_any(path: Path, sheet: str | None = None) -> RawTable:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, sheet)
    if suffix in (".csv", ".txt"):
        return read_csv_text(path)
    raise InputError(
        f"Le fichier « {path.name} » a un format non pris en charge ({suffix or 'sans extension'}) : "
        "CSV ou XLSX attendu."
    )
