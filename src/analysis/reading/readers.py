"""Lecture brute des fichiers d'entrée (CSV ou XLSX) en tables de chaînes, avec numéros de ligne.

Règles du contrat de données (section 1) appliquées ici :
- CSV en UTF-8 (avec ou sans BOM) ou Windows-1252, détecté ligne à ligne (un fichier qui mêle les
  deux est lu juste et signalé) ; UTF-16 lu ; séparateur ``;`` ou ``,`` détecté ;
- une ligne endommagée ne coûte qu'elle-même : guillemet non refermé ou mal placé, ligne incomplète
  (coupée), valeurs au-delà des colonnes d'en-tête sont écartées seules, avec colonne, valeur et
  motif (``RawTable.malformed``) ; un texte entre guillemets peut couvrir plusieurs lignes ;
- en-têtes normalisés (casse, accents, espaces/tirets/points → ``_``) ;
- XLSX : première feuille (ou une feuille nommée), lue de la même façon, sans se fier à la taille
  déclarée (``<dimension>``) ; une cellule au format pourcentage est lue comme le nombre affiché
  (0,853 au format ``0,0 %`` → ``85.3``) ; une formule sans valeur calculée est signalée.

Les valeurs restent des chaînes : l'interprétation (nombres, dates, booléens, FINESS) est faite par
:mod:`analysis.reading.cleaning`, qui peut ainsi citer la valeur d'origine dans les rejets.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd

from .files import InputError, sha256_file  # noqa: F401 - noms publics de ce module

LINE_COL = "_ligne"
FILE_COL = "_fichier"
SUPPORTED_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")


def normalize_name(name: object) -> str:
    """``FINESS géo`` → ``finess_geo`` ; ``Raison sociale`` → ``raison_sociale``."""
    return _normalize_text("" if name is None else str(name))


@functools.lru_cache(maxsize=8192)
def _normalize_text(text: str) -> str:
    # mémorisé : appelé des dizaines de milliers de fois sur les mêmes codes (libellés, suffixes)
    text = text.replace("\ufeff", "").strip()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower()
    text = re.sub(r"[\s\-\.'’/]+", "_", text)
    text = re.sub(r"[^0-9a-z_]", "", text)
    text = re.sub(r"_+", "_", text).strip("_")
    return text


def first_line(path: Path, size: int = 4096) -> bytes | None:
    """Première ligne d'un fichier texte (``size`` premiers octets au plus, sans BOM ni fin de ligne),
    sans lire le reste ; ``None`` si ce n'est pas un CSV/TXT lisible. Sert à reconnaître un fichier
    officiel par son en-tête."""
    if path.suffix.lower() not in (".csv", ".txt"):
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(size)
    except OSError:
        return None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.split(b"\n", 1)[0].rstrip(b"\r")


def _header(cells) -> tuple[list[str], list[str]]:
    """En-tête tel qu'écrit et normalisé ; les cellules vides de fin de ligne (séparateur final en
    CSV, colonnes vides en XLSX) sont ignorées."""
    original = list(cells)
    while original and not original[-1]:
        original.pop()
    return original, [normalize_name(h) for h in original]


@dataclass
class RawTable:
    """Contenu brut d'un fichier : chaînes, en-têtes normalisés, colonne ``_ligne``.

    ``malformed`` : lignes écartées dès la lecture, chacune ``(ligne, colonne, valeur, motif)``
    (guillemet non refermé, ligne incomplète, valeurs hors des colonnes…) : elles ne coûtent
    qu'elles-mêmes. ``cell_issues`` : cellules illisibles d'une ligne par ailleurs lue (formule sans
    valeur calculée) : ``(ligne, colonne normalisée, valeur, motif)`` ; la ligne n'est écartée que
    si la colonne sert à la source. ``notes`` : avertissements pour la qualité des données.
    """

    path: Path
    data: pd.DataFrame
    original_headers: dict[str, str]  # normalised -> as written in the file
    encoding: str = ""
    separator: str = ""
    sheet: str = ""
    empty_lines: int = 0
    malformed: list[tuple[int, str, str, str]] = field(default_factory=list)
    cell_issues: list[tuple[int, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    joined_lines: int = 0  # physical lines taken into the record above (a value between quotes)

    @property
    def name(self) -> str:
        return self.path.name


def _looks_utf16(raw: bytes) -> str | None:
    """``utf-16-le``/``utf-16-be`` when the bytes look like UTF-16 text without BOM, else None."""
    head = raw[:4096]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


_NEWLINE = re.compile(r"\r\n|\r|\n")
_NEWLINE_B = re.compile(rb"\r\n|\r|\n")


def _split_lines(text: str) -> list[str]:
    lines = _NEWLINE.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _decode_lines(raw: bytes, path: Path) -> tuple[list[str], str, list[str]]:
    """Physical lines of a text file, each decoded in its own encoding.

    UTF-8 (with or without BOM) and Windows-1252 are detected line by line: a file that mixes them
    (rows pasted from two exports) is read right, and the mixture is said in a note. UTF-16 (with a
    BOM, or recognised by its zero bytes) is read. Returns (lines, encoding label, notes).
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _split_lines(raw.decode("utf-16").lstrip("\ufeff")), "utf-16", []
        except UnicodeDecodeError as exc:
            raise InputError(
                f"Le fichier « {path.name} » est illisible : il commence comme un texte UTF-16 mais ne se "
                f"décode pas ({exc.reason}). Enregistrez-le en CSV UTF-8."
            ) from exc
    if b"\x00" in raw[:8192]:
        enc16 = _looks_utf16(raw)
        if enc16:
            try:
                return _split_lines(raw.decode(enc16)), "utf-16", []
            except UnicodeDecodeError:
                pass
        raise InputError(
            f"Le fichier « {path.name} » est illisible : il semble binaire (ce n'est ni un CSV ni un "
            "classeur XLSX). Enregistrez-le au format CSV (UTF-8 ou Windows-1252) ou XLSX."
        )
    bom = raw.startswith(b"\xef\xbb\xbf")
    body = raw[3:] if bom else raw
    try:
        return _split_lines(body.decode("utf-8")), "utf-8-sig" if bom else "utf-8", []
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    cp_lines: list[int] = []
    utf8_non_ascii = 0
    parts = _NEWLINE_B.split(body)
    if parts and parts[-1] == b"":
        parts.pop()
    for i, part in enumerate(parts, start=1):
        try:
            text = part.decode("utf-8")
            if not part.isascii():
                utf8_non_ascii += 1
        except UnicodeDecodeError:
            try:
                text = part.decode("cp1252")
            except UnicodeDecodeError:
                # cp1252 leaves 5 bytes undefined; latin-1 maps them, the text stays readable.
                text = part.decode("latin-1")
            cp_lines.append(i)
        lines.append(text)
    if utf8_non_ascii or bom:
        shown = ", ".join(str(n) for n in cp_lines[:10]) + (" …" if len(cp_lines) > 10 else "")
        note = (
            f"« {path.name} » mélange deux encodages : {len(cp_lines)} ligne(s) en Windows-1252 (ligne(s) "
            f"{shown}) parmi des lignes en UTF-8 ; chaque ligne a été lue dans son propre encodage. "
            "Vérifiez les accents de ces lignes."
        )
        return lines, "mixte (utf-8 et windows-1252)", [note]
    return lines, "windows-1252", []


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


def _shorten(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _collect_rows(records, headers: list[str], too_many, *, pad_short: bool):
    """Rows of ``len(headers)`` cells from ``(line, cells, raw text)`` records.

    Blank rows are counted; rows with values beyond the header are malformed; rows with fewer
    cells than the header are padded (``pad_short``: a spreadsheet row whose last cells are empty)
    or malformed (a CSV line cut short: its last values are missing, not empty)."""
    ncol = len(headers)
    rows: list[list[str]] = []
    lines: list[int] = []
    empty = 0
    malformed: list[tuple[int, str, str, str]] = []
    for line, cells, raw in records:
        if not cells or all(not str(c).strip() for c in cells):
            empty += 1
            continue
        if len(cells) > ncol:
            if any(str(c).strip() for c in cells[ncol:]):
                malformed.append((line, "", _shorten(raw), too_many(len(cells))))
                continue
            cells = cells[:ncol]
        elif len(cells) < ncol:
            if not pad_short:
                missing = headers[len(cells):]
                malformed.append((
                    line, missing[0], _shorten(raw),
                    f"ligne incomplète : {len(cells)} champ(s) pour {ncol} colonnes d'en-tête (ligne coupée ?) ; "
                    f"manque : {', '.join(missing)}",
                ))
                continue
            cells = cells + [""] * (ncol - len(cells))
        rows.append(cells)
        lines.append(line)
    return rows, lines, empty, malformed


_QUOTED_FIELD = re.compile(r'^\s*"(?:[^"]|"")*"\s*$', re.S)
_MAX_SPAN = 50  # physical lines that one value between quotes may cover


def _parse_line(text: str, sep: str) -> list[str]:
    return next(csv.reader([text], delimiter=sep, quotechar='"', strict=True), [])


def _raw_fields(text: str, sep: str) -> tuple[list[str], bool]:
    """Fields of one physical line as typed (quotes kept) and whether a quote is left open."""
    fields, cur, inq = [], [], False
    for ch in text:
        if ch == '"':
            inq = not inq
        if ch == sep and not inq:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields, inq


def _quote_problem(text: str, sep: str, headers: list[str]) -> tuple[str, str, str]:
    """(column, value, French reason) for a line that the CSV rules cannot read."""
    fields, open_quote = _raw_fields(text, sep)
    if open_quote:
        k = len(fields) - 1
        while k > 0 and '"' not in fields[k]:
            k -= 1
        col = headers[k] if k < len(headers) else ""
        return col, _shorten(fields[k].strip()), (
            "guillemet ouvert et jamais refermé : la ligne est écartée seule, les lignes suivantes sont lues"
        )
    for k, f in enumerate(fields):
        if f.lstrip().startswith('"') and not _QUOTED_FIELD.match(f):
            col = headers[k] if k < len(headers) else ""
            return col, _shorten(f.strip()), (
                "guillemet mal placé : un champ entre guillemets doit se terminer par un guillemet suivi du "
                'séparateur (un guillemet dans le texte s\'écrit "")'
            )
    return "", _shorten(text), "ligne illisible selon les règles du CSV (guillemets)"


def _csv_records(lines: list[str], first: int, sep: str, headers: list[str], malformed: list, spans: list):
    """``(line number, cells, raw text)`` of each record; a value between quotes may span lines.

    A damaged line costs only itself: a quote left open does not swallow the lines after it. A
    record spans several physical lines only when its quote closes within a few lines, giving
    exactly one cell per column, and no line it takes in would stand on its own as a full record.
    """
    ncol = len(headers)
    n = len(lines)
    i = first
    while i < n:
        text = lines[i]
        try:
            cells = _parse_line(text, sep)
        except csv.Error:
            cells = None
        if cells is not None:
            yield i + 1, cells, text
            i += 1
            continue
        span = 0
        if text.count('"') % 2 == 1:
            buf = text
            for j in range(i + 1, min(n, i + _MAX_SPAN)):
                nxt = lines[j]
                try:
                    if len(_parse_line(nxt, sep)) >= ncol:
                        break  # a record of its own: the quote of line i is a damage, not a span
                except csv.Error:
                    pass
                buf += "\n" + nxt
                if nxt.count('"') % 2 == 1:
                    try:
                        joined = _parse_line(buf, sep)
                    except csv.Error:
                        break
                    if len(joined) == ncol:
                        span = j - i + 1
                        yield i + 1, joined, buf
                    break
        if span:
            spans.append(span - 1)
            i += span
            continue
        col, val, reason = _quote_problem(text, sep, headers)
        malformed.append((i + 1, col, val, reason))
        i += 1


def read_csv_text(path: Path) -> RawTable:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"Le fichier « {path.name} » est vide.")
    lines, encoding, notes = _decode_lines(raw, path)
    if lines:
        lines[0] = lines[0].lstrip("\ufeff")
    first_line = lines[0] if lines else ""
    if not first_line.strip():
        raise InputError(
            f"Le fichier « {path.name} » commence par une ligne vide : la ligne 1 doit porter les noms des colonnes."
        )
    sep = _detect_separator(first_line)
    try:
        header = _parse_line(first_line, sep)
    except csv.Error as exc:
        raise InputError(
            f"Le fichier « {path.name} » est illisible : la ligne d'en-tête contient un guillemet mal placé."
        ) from exc
    original, norm = _header(h.replace("\ufeff", "").strip() for h in header)
    norm = _dedupe_headers(norm, path)
    ncol = len(norm)
    malformed: list[tuple[int, str, str, str]] = []
    joined: list[int] = []
    rows, line_nos, empty, bad_rows = _collect_rows(
        _csv_records(lines, 1, sep, norm, malformed, joined),
        norm,
        lambda n: f"ligne mal formée : {n} champs pour {ncol} colonnes d'en-tête (séparateur « {sep} »)",
        pad_short=False,
    )
    malformed = sorted(malformed + bad_rows)
    return RawTable(
        path=path,
        data=_rows_frame(rows, norm, line_nos),
        original_headers=dict(zip(norm, original)),
        encoding=encoding,
        separator=sep,
        empty_lines=empty,
        malformed=malformed,
        notes=notes,
        joined_lines=sum(joined),
    )


def _rows_frame(rows: list, columns: list[str], line_nos: list[int]) -> pd.DataFrame:
    """Lignes lues (textes bruts) et leur numéro de ligne dans le fichier (CSV ou XLSX)."""
    df = pd.DataFrame(rows, columns=columns, dtype=object) if rows else pd.DataFrame(columns=columns, dtype=object)
    df[LINE_COL] = pd.Series(line_nos, dtype="int64")
    return df


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


_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')


def is_percent_format(number_format: object) -> bool:
    """True for an Excel number format that shows the value × 100 followed by ``%`` (``0.0%``)."""
    if not isinstance(number_format, str) or "%" not in number_format:
        return False
    return "%" in _FORMAT_LITERALS.sub("", number_format)


def _percent_to_str(value: float | int) -> str:
    """0.853 shown ``85,3 %`` → ``85.3`` (exact decimal arithmetic: no ``85.29999999999998``)."""
    d = Decimal(repr(value)) * 100
    text = format(d.normalize(), "f")
    return text[:-2] if text.endswith(".0") else text


def _xlsx_cell(cell) -> str:
    value = getattr(cell, "value", None)
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and is_percent_format(getattr(cell, "number_format", None))
    ):
        return _percent_to_str(value)
    return _cell_to_str(value)


def xlsx_sheet_names(path: Path) -> list[str]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def _has_formulas(path: Path) -> bool:
    import zipfile

    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                with z.open(name) as fh:
                    tail = b""
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        block = tail + chunk
                        if b"<f>" in block or b"<f " in block or b":f>" in block or b":f " in block:
                            return True
                        tail = block[-8:]
    return False


def _formula_cells(path: Path, title: str) -> dict[tuple[int, int], str]:
    """{(row, column index): formula} of the cells holding a formula (read without cached values)."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=False)
    try:
        ws = wb[title]
        ws.reset_dimensions()
        out = {}
        for i, row in enumerate(ws.iter_rows(values_only=True), start=1):
            for j, v in enumerate(row):
                if isinstance(v, str) and v.startswith("="):
                    out[(i, j)] = v
        return out
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
    title = sheet or ""
    try:
        ws = wb[wb.sheetnames[0]] if sheet is None else wb[sheet]
        title = ws.title
        # The <dimension> tag written by many exporters under-declares the sheet: never trust it.
        ws.reset_dimensions()
        records = [(i, row) for i, row in enumerate(ws.iter_rows(), start=1)]
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - XML of the sheet damaged, missing part...
        raise InputError(
            f"Le fichier « {path.name} » est illisible : la feuille « {title or '?'} » est endommagée "
            f"({type(exc).__name__} : {_shorten(str(exc), 160)}). Ouvrez-le dans un tableur et "
            "enregistrez-le de nouveau en XLSX, ou exportez-le en CSV."
        ) from exc
    finally:
        wb.close()
    header = None
    start = 0
    for k, (_i, row) in enumerate(records):
        if row and any(getattr(c, "value", None) is not None and str(c.value).strip() for c in row):
            header, start = row, k + 1
            break
    if header is None:
        raise InputError(f"Le fichier « {path.name} » (feuille « {title} ») est vide.")
    original, norm = _header(_cell_to_str(getattr(h, "value", None)) for h in header)
    norm = _dedupe_headers(norm, path)
    ncol = len(norm)

    cell_issues: list[tuple[int, str, str, str]] = []
    notes: list[str] = []
    formulas = _formula_cells(path, title) if _has_formulas(path) else {}

    def text_rows():
        for i, row in records[start:]:
            cells = [_xlsx_cell(c) for c in row]
            for j, c in enumerate(row):
                f = formulas.get((i, j))
                if f is not None and getattr(c, "value", None) is None and j < ncol:
                    cell_issues.append((
                        i, norm[j], _shorten(f),
                        "formule sans valeur calculée enregistrée (classeur produit par un programme qui "
                        "n'évalue pas les formules) : ouvrez-le dans un tableur et enregistrez-le, ou saisissez la valeur",
                    ))
            yield i, cells, ";".join(cells)

    rows, lines, empty, malformed = _collect_rows(
        text_rows(),
        norm,
        lambda n: f"ligne mal formée : valeurs hors des {ncol} colonnes d'en-tête",
        pad_short=True,
    )
    if cell_issues:
        cols = sorted({c for _, c, _, _ in cell_issues})
        notes.append(
            f"« {path.name} » : {len(cell_issues)} cellule(s) contiennent une formule sans valeur calculée "
            f"(colonne(s) {', '.join(cols)}) ; elles ne sont pas lues comme des valeurs."
        )
    return RawTable(
        path=path,
        data=_rows_frame(rows, norm, lines),
        original_headers=dict(zip(norm, original)),
        encoding="xlsx",
        separator="",
        sheet=title,
        empty_lines=empty,
        malformed=malformed,
        cell_issues=cell_issues,
        notes=notes,
    )


def take_cell_issues(table: RawTable, used_columns: set[str]) -> None:
    """Rows with an unreadable cell (``cell_issues``) in a column that the source uses leave the
    table and join ``malformed`` with that cell's column, value and reason; the others stay."""
    bad: dict[int, tuple[int, str, str, str]] = {}
    for issue in table.cell_issues:
        if issue[1] in used_columns and issue[0] not in bad:
            bad[issue[0]] = issue
    if not bad:
        return
    keep = ~table.data[LINE_COL].isin(list(bad))
    table.data = table.data[keep].reset_index(drop=True)
    table.malformed = sorted(table.malformed + list(bad.values()))


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
