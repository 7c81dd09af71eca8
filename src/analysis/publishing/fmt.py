"""Mise en forme à la française des nombres, dates et tableaux du rapport.

Conventions (utilisées partout : rapport, fiches, figures) :

- séparateur décimal : virgule (``82,5``) ;
- séparateur de milliers : espace insécable U+00A0 (``1 500``) ;
- pourcentage : espace insécable U+00A0 avant ``%`` (``82,5 %``). On a choisi U+00A0 plutôt que
  l'espace fine insécable U+202F : elle est présente dans toutes les polices (DejaVu comprise),
  se copie correctement depuis le PDF et reste cohérente avec le séparateur de milliers ;
- valeur manquante (``None``, ``NaN``, ``pd.NA``, ``NaT``) : tiret cadratin ``—`` ;
- dates : ``JJ/MM/AAAA``.

``french_table`` produit un tableau HTML imprimable (``<table class="tableau">``) dont chaque
en-tête et chaque cellule est échappé avec :func:`html.escape`.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import numbers
import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

NBSP = "\u00a0"
MISSING = "—"

__all__ = [
    "NBSP",
    "MISSING",
    "is_missing",
    "fmt_num",
    "fmt_dec",
    "fmt_pct",
    "fmt_date",
    "fmt_value",
    "fmt_shortest",
    "fmt_pvalue",
    "fmt_machine",
    "decimals_for",
    "fmt_quantity",
    "fmt_target",
    "french_table",
]


def is_missing(value: Any) -> bool:
    """Vrai pour ``None``, ``NaN``, ``pd.NA``, ``NaT`` (et pas pour ``""`` ni ``0``)."""
    if value is None:
        return True
    if isinstance(value, (str, bytes, bool, np.bool_)) or not pd.api.types.is_scalar(value):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _group_thousands(int_part: str) -> str:
    """'1234567' -> '1 234 567' (U+00A0)."""
    out = []
    while len(int_part) > 3:
        out.append(int_part[-3:])
        int_part = int_part[:-3]
    out.append(int_part)
    return NBSP.join(reversed(out))


def fmt_dec(value: Any, decimals: int = 1, *, thousands: bool = True) -> str:
    """Nombre décimal à ``decimals`` chiffres après la virgule : ``fmt_dec(0.0004, 4) == "0,0004"``.

    Les milliers sont séparés par U+00A0 (sauf ``thousands=False``). Jamais de ``-0,0``.
    """
    if is_missing(value):
        return MISSING
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    decimals = max(0, int(decimals))
    # Arrondi « commercial » (demi vers le haut) sur l'écriture décimale la plus courte du
    # nombre, comme Excel : 82,45 -> 82,5 (et non 82,4 comme l'arrondi binaire de format()).
    quant = Decimal(1).scaleb(-decimals)
    text = format(Decimal(repr(abs(x))).quantize(quant, rounding=ROUND_HALF_UP), "f")
    negative = x < 0 and any(c not in "0." for c in text)
    if "." in text:
        int_part, frac = text.split(".")
    else:
        int_part, frac = text, ""
    if thousands:
        int_part = _group_thousands(int_part)
    out = int_part + ("," + frac if frac else "")
    return ("-" + out) if negative else out


def fmt_num(value: Any, decimals: int = 0) -> str:
    """Entier ou nombre arrondi avec séparateur de milliers : ``fmt_num(1500) == "1 500"``."""
    return fmt_dec(value, decimals)


def fmt_pct(value: Any, decimals: int = 1) -> str:
    """Pourcentage déjà exprimé en % : ``fmt_pct(82.5) == "82,5 %"`` (U+00A0 avant %).

    Attention : ``value`` est en points de pourcentage (0–100), pas une proportion (0–1).
    """
    if is_missing(value):
        return MISSING
    return fmt_dec(value, decimals) + NBSP + "%"


def fmt_date(value: Any) -> str:
    """Date au format ``JJ/MM/AAAA`` (accepte Timestamp, datetime, date, chaîne ISO)."""
    if is_missing(value):
        return MISSING
    if isinstance(value, str):
        if not value.strip():
            return MISSING
        try:
            value = pd.Timestamp(value)
        except (ValueError, TypeError):
            return value
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"
    return str(value)


def fmt_value(value: Any) -> str:
    """Mise en forme par défaut selon le type : entier → ``fmt_num``, réel → 1 décimale,
    booléen → oui/non, date → ``fmt_date``, le reste → ``str``."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "oui" if value else "non"
    if isinstance(value, numbers.Integral):
        return fmt_num(value)
    if isinstance(value, numbers.Real):
        return fmt_dec(value, 1)
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return fmt_date(value)
    return str(value)


def fmt_shortest(value: Any) -> str:
    """Écriture la plus courte, sans zéros inutiles : ``20.0`` -> ``"20"``, ``0.025`` -> ``"0,025"``."""
    if is_missing(value):
        return MISSING
    x = float(value)
    text = np.format_float_positional(round(x, 10), trim="-")
    decimals = len(text.partition(".")[2])
    return fmt_dec(x, decimals)


def fmt_pvalue(p: Any) -> str:
    """Probabilité : ``"p = 0,0004"``, ``"p < 0,0001"``."""
    if is_missing(p):
        return MISSING
    if float(p) < 0.0001:
        return "p < 0,0001"
    return "p = " + fmt_dec(p, 4)


def fmt_machine(x: Any) -> str:
    """Nombre lisible par une machine (point décimal, sans zéros inutiles) : ``18.0`` -> ``"18"``.

    Booléen -> ``oui`` / ``non`` ; manquant -> ``""``."""
    if is_missing(x):
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "oui" if x else "non"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return np.format_float_positional(round(float(x), 6), trim="-")


def _rounded(x: float, d: int) -> float:
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP))


def decimals_for(value: Any, threshold: Any = None, base: int = 1, maximum: int = 6) -> int:
    """Décimales d'affichage : ``base``, ou davantage quand l'arrondi ferait passer la valeur de
    l'autre côté d'un seuil (ou l'y égaliserait) : 19,95 face à 20 s'écrit « 19,95 », jamais « 20,0 ».

    ``threshold`` : un seuil ou une liste de seuils (cible et seuils de ciblage de l'indicateur : la
    valeur s'écrit alors de la même façon partout)."""
    if is_missing(value):
        return base
    x = float(value)
    limits = threshold if isinstance(threshold, (list, tuple, set)) else [threshold]
    d = base
    for t in limits:
        if t is None or is_missing(t) or isinstance(t, (str, bool, np.bool_)):
            continue
        t = float(t)
        side = (x > t) - (x < t)
        while d < maximum:
            r = _rounded(x, d)
            if (r > t) - (r < t) == side:
                break
            d += 1
    return d


def _default_decimals(x: float, unite: str) -> int:
    if unite == "%":
        return 1
    return 0 if float(x).is_integer() else 1


def fmt_quantity(value: Any, unite: str = "", *, threshold: Any = None, decimals: int | None = None) -> str:
    """Valeur d'un indicateur avec son unité : ``fmt_quantity(19.95, "%", threshold=20) == "19,95 %"``.

    Booléen -> oui/non ; texte (niveau) tel quel ; unité autre que % ajoutée après une espace insécable.
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "oui" if value else "non"
    if isinstance(value, str):
        return value
    x = float(value)
    base = _default_decimals(x, unite) if decimals is None else decimals
    d = decimals_for(x, threshold, base)
    text = fmt_dec(x, d)
    if unite == "%":
        return text + NBSP + "%"
    return f"{text}{NBSP}{unite}" if unite else text


_OP_TEXT = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "==": ""}


def fmt_target(operateur: str | None, valeur: Any, unite: str = "", dans: list | None = None) -> str:
    """Cible lisible : ``≥ 80 %``, ``A ou B``, ``oui`` ; ``100 %`` (au moins 100 % = 100 %)."""
    if dans:
        return " ou ".join(str(v) for v in dans)
    if operateur is None or is_missing(valeur):
        return ""
    if isinstance(valeur, (bool, np.bool_)):
        return "oui" if valeur else "non"
    text = fmt_shortest(valeur) + ((NBSP + "%") if unite == "%" else (NBSP + unite if unite else ""))
    if operateur == ">=" and unite == "%" and float(valeur) >= 100:
        return text
    op = _OP_TEXT.get(operateur, operateur)
    return f"{op}{NBSP}{text}" if op else text


_DEC_RE = re.compile(r"^(dec|pct|num)(\d)$")


def _resolve_format(spec: str | Callable[[Any], str] | None) -> Callable[[Any], str]:
    if spec is None:
        return fmt_value
    if callable(spec):
        return spec
    if spec == "pct":
        return fmt_pct
    if spec == "num":
        return fmt_num
    if spec == "date":
        return fmt_date
    if spec == "text":
        return lambda v: MISSING if is_missing(v) else str(v)
    m = _DEC_RE.match(spec)
    if m:
        kind, d = m.group(1), int(m.group(2))
        if kind == "pct":
            return lambda v: fmt_pct(v, d)
        return lambda v: fmt_dec(v, d)
    raise ValueError(
        f"Format inconnu : {spec!r} (attendu : 'pct', 'pct0'…'pct4', 'num', 'dec0'…'dec9', "
        "'date', 'text' ou une fonction)"
    )


def _is_numeric_spec(spec: Any, series: pd.Series) -> bool:
    if isinstance(spec, str):
        return spec != "text" and spec != "date"
    if spec is None:
        return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return False


def french_table(
    df: pd.DataFrame,
    formats: Mapping[str, str | Callable[[Any], str]] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
    index: bool = False,
    classes: str = "tableau",
    numeric: set[str] | None = None,
) -> str:
    """Tableau HTML imprimable, à la française, entièrement échappé.

    - ``formats`` : par colonne, un nom (``'pct'`` / ``'pct0'``…``'pct4'``, ``'num'``,
      ``'dec0'``…``'dec9'``, ``'date'``, ``'text'``) ou une fonction ``valeur -> str``.
      Colonnes absentes de ``formats`` : :func:`fmt_value`.
    - ``labels`` : libellés d'en-tête (par défaut le nom de la colonne).
    - Les colonnes numériques reçoivent la classe ``num`` (alignées à droite).
    - ``<thead>`` est répété sur chaque page du PDF (et à l'impression depuis un navigateur) ; une
      ligne n'est jamais coupée.
    """
    formats = dict(formats or {})
    labels = dict(labels or {})
    numeric = set(numeric or ())
    data = df.reset_index() if index else df
    cols = list(data.columns)
    funcs = {c: _resolve_format(formats.get(c)) for c in cols}
    num_cols = {c for c in cols if c in numeric or _is_numeric_spec(formats.get(c), data[c])}

    parts = [f'<table class="{html.escape(classes)}">']
    if caption:
        parts.append(f"<caption>{html.escape(str(caption))}</caption>")
    parts.append("<thead><tr>")
    for c in cols:
        cls = ' class="num"' if c in num_cols else ""
        parts.append(f"<th{cls}>{html.escape(str(labels.get(c, c)))}</th>")
    parts.append("</tr></thead><tbody>")
    columns_values = [data[c].tolist() for c in cols]
    for i in range(len(data)):
        parts.append("<tr>")
        for c, values in zip(cols, columns_values):
            cls = ' class="num"' if c in num_cols else ""
            text = funcs[c](values[i])
            parts.append(f"<td{cls}>{html.escape(str(text))}</td>")
        parts.append("</tr>")
    if len(data) == 0:
        parts.append(
            f'<tr><td class="vide" colspan="{max(1, len(cols))}">Aucune ligne.</td></tr>'
        )
    parts.append("</tbody></table>")
    return "".join(parts)
