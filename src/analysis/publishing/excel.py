"""Classeur Excel des résultats (``cpom_<region>_<annee>.xlsx``), avec XlsxWriter.

- Une feuille par table, dans l'ordre donné (``ciblage``, ``suivi_engagements``, ``rejets``, puis
  ``Contrôle QLS`` quand des dossiers QLS réaudités sont fournis) ; en-tête
  en gras, figé, avec filtre automatique ; largeurs de colonnes ajustées.
- **Un texte reste un texte** : toute chaîne est écrite comme chaîne (``write_string``, options
  ``strings_to_formulas`` / ``strings_to_numbers`` désactivées), même si elle commence par ``=``,
  ``+``, ``-`` ou ``@`` : jamais de formule. Les caractères de contrôle interdits par le format XML
  sont remplacés par U+FFFD (« � ») ; au-delà de 32 767 caractères (limite d'Excel), le texte est
  tronqué et se termine par « … ».
- **Un nombre est un nombre** : les tables viennent des résultats typés (Parquet), jamais d'une
  relecture des CSV. Une colonne peut recevoir, ligne par ligne, un nombre de décimales d'affichage
  (``decimals``) : celui du formateur du rapport, pour qu'une valeur s'affiche comme dans le
  rapport et les fiches (19,95 face à un seuil de 20 garde ses deux décimales).
- ``NaN``/``NA``/``None`` → cellule vide ; booléens → VRAI/FAUX ; dates → ``JJ/MM/AAAA``.
- Reproductible à l'octet près : date de création fixée (``SOURCE_DATE_EPOCH`` s'il est défini, sinon
  2000-01-01), que XlsxWriter reprend aussi pour les horodatages de l'archive.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["write_cpom_xlsx", "excel_text"]

EXCEL_MAX_CHARS = 32767
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DEFAULT_DATE = _dt.datetime(2000, 1, 1)
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
    """(valeur, type) : type ∈ 's' (texte), 'n' (nombre), 'b' (booléen), 'd' (date), None (vide)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None, None
    if isinstance(value, str):
        return excel_text(value), "s"
    if isinstance(value, (bool, np.bool_)):
        return bool(value), "b"
    if isinstance(value, (int, np.integer)):
        return int(value), "n"
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return None, None
        if math.isinf(x):
            return ("+inf" if x > 0 else "-inf"), "s"
        return x, "n"
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
        raise ValueError(f"Nom de feuille Excel invalide : {name!r} (31 caractères au plus, sans []:*?/\\)")
    return name


def write_cpom_xlsx(path: Path, sheets: Mapping[str, pd.DataFrame],
                    decimals: Mapping[str, Mapping[str, list[int | None]]] | None = None) -> None:
    """Écrit le classeur ``path`` avec une feuille par ``DataFrame`` (ordre du dictionnaire).

    ``decimals[feuille][colonne]`` : décimales d'affichage de chaque ligne (``None`` : format général).
    Une table vide donne une feuille avec sa seule ligne d'en-tête.
    """
    import xlsxwriter

    if not sheets:
        raise ValueError("Aucune feuille à écrire dans le classeur Excel")
    decimals = decimals or {}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    wb = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_numbers": False,
                                        "strings_to_urls": False, "nan_inf_to_errors": False})
    stamp = _fixed_date()
    wb.set_properties({"author": "cpom-qualite", "created": stamp})
    bold = wb.add_format({"bold": True, "valign": "top"})
    date_fmt = wb.add_format({"num_format": "DD/MM/YYYY"})
    num_formats: dict[int, Any] = {}

    def num_format(d: int):
        if d not in num_formats:
            num_formats[d] = wb.add_format({"num_format": "0" if d == 0 else "0." + "0" * d})
        return num_formats[d]

    for name, df in sheets.items():
        ws = wb.add_worksheet(_check_sheet_name(str(name)))
        columns = [str(c) for c in df.columns]
        widths = [len(c) for c in columns]
        for j, col in enumerate(columns):
            ws.write_string(0, j, excel_text(col), bold)
        sheet_dec = decimals.get(name, {})
        col_dec = [sheet_dec.get(c) for c in columns]
        for i, row in enumerate(df.itertuples(index=False, name=None), start=1):
            for j, raw in enumerate(row):
                value, kind = _cell_value(raw)
                if value is None:
                    continue
                if kind == "s":
                    ws.write_string(i, j, value)  # jamais de formule : '=SOMME(A1)', '+33…', '@x'
                elif kind == "n":
                    d = col_dec[j][i - 1] if col_dec[j] is not None else None
                    if d is None:
                        ws.write_number(i, j, value)
                    else:
                        ws.write_number(i, j, value, num_format(int(d)))
                elif kind == "b":
                    ws.write_boolean(i, j, value)
                elif kind == "d":
                    ws.write_datetime(i, j, value, date_fmt)
                widths[j] = max(widths[j], _display_len(value, kind))
        for j, w in enumerate(widths):
            ws.set_column(j, j, max(MIN_WIDTH, min(MAX_WIDTH, w + 2)))
        ws.freeze_panes(1, 0)
        if columns:
            ws.autofilter(0, 0, max(0, len(df)), len(columns) - 1)
    wb.close()
    os.replace(tmp, path)


def _base_decimals(x: float, unite: str, declared: int | None) -> int:
    if declared is not None:
        return declared
    if unite == "%":
        return 1
    return 0 if float(x).is_integer() else 1


def results_sheets(results, rejects: pd.DataFrame, rules) -> tuple[dict, dict]:
    """Feuilles ``ciblage``, ``suivi_engagements``, ``rejets`` (et ``Contrôle QLS``) tirées des résultats
    typés, et les décimales d'affichage de ``valeur`` (celles du formateur du rapport)."""
    from ..indicators.ciblage import CIBLAGE_COLUMNS
    from ..indicators.suivi import SUIVI_COLUMNS
    from .fmt import decimals_for

    c = results.ciblage[CIBLAGE_COLUMNS].copy()
    cnum = pd.to_numeric(c["valeur"], errors="coerce")
    c_dec = []
    values = []
    for v, num, risque in zip(c["valeur"], cnum, c["risque"]):
        if pd.isna(num):
            values.append(v)
            c_dec.append(None)
            continue
        r = rules.risques.get(str(risque))
        ind = rules.indicator(r.indicateur) if r is not None else None
        unite = ind.unite if ind is not None else ""
        base = _base_decimals(num, unite, ind.decimales if ind is not None else None)
        thr = rules.thresholds(r.indicateur) if r is not None and r.regle == "seuil" else None
        c_dec.append(decimals_for(float(num), thr, base))
        values.append(float(num))
    c["valeur"] = pd.Series(values, index=c.index, dtype=object)

    s = results.suivi
    sv = s[SUIVI_COLUMNS].copy()
    s_dec, values = [], []
    for v, num, seuil, code in zip(s["valeur"], s["valeur_num"], s["seuil"], s["indicateur"]):
        base_code, _ = rules.base_indicator(str(code))
        ind = rules.model.indicator_codes().get(base_code)
        if ind is None or ind.calcul in ("booleen", "niveau") or pd.isna(num):
            values.append(None if pd.isna(v) else v)
            s_dec.append(None)
            continue
        base = _base_decimals(float(num), ind.unite, ind.decimales)
        values.append(round(float(num), 6))
        limits = rules.thresholds(base_code) + ([] if pd.isna(seuil) else [float(seuil)])
        s_dec.append(decimals_for(float(num), limits, base))
    sv["valeur"] = pd.Series(values, index=sv.index, dtype=object)
    sv.insert(sv.columns.get_loc("cible") + 1, "seuil", s["seuil"].astype("Float64"))
    sv.insert(sv.columns.get_loc("seuil") + 1, "unite", s["unite"])
    sheets = {"ciblage": c, "suivi_engagements": sv, "rejets": rejects}
    decimals = {"ciblage": {"valeur": c_dec}, "suivi_engagements": {"valeur": s_dec}}
    ctrl = getattr(results, "controle_qls", None)
    if ctrl is not None:  # dossiers réaudités fournis : feuille du contrôle qualité du recueil QLS
        from ..indicators.controle_qls import CONTROLE_COLUMNS

        q = ctrl[CONTROLE_COLUMNS].copy()
        sheets[CONTROLE_SHEET] = q
        decimals[CONTROLE_SHEET] = {col: [1] * len(q) for col in
                                    ("score_declare", "score_recalcule", "ic_bas", "ic_haut")}
    return sheets, decimals


#: feuille du contrôle qualité du recueil QLS (présente quand des dossiers réaudités sont fournis)
CONTROLE_SHEET = "Contrôle QLS"
