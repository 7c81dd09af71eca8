"""Interprétation vectorisée des valeurs (chaînes → types), avec motif d'erreur en français.

Chaque fonction prend une série de chaînes et renvoie ``Parsed`` : les valeurs typées, le motif
d'erreur par ligne (``None`` si la valeur est valide ou vide) et le masque des valeurs réparées
(FINESS à 8 chiffres complété, département ``1`` → ``01``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .readers import normalize_name

_DEPT_RE = re.compile(r"^(0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97[1-6])$")
# FINESS: department (01…95, 2A, 2B) then 7 digits; overseas 97 (970 + rank: 9701… Guadeloupe…
# 9704… La Réunion) and Mayotte 98 (980501506), as the FINESS directory numbers them.
_FINESS_RE = r"^(0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97|98)[0-9]{7}$"
# FINESS writes overseas departments with a letter: 9A Guadeloupe … 9F Mayotte.
_DEPT_FINESS = {"9A": "971", "9B": "972", "9C": "973", "9D": "974", "9F": "976"}
_TRUE = {"oui", "o", "true", "vrai", "1", "yes", "y", "v", "t"}
_FALSE = {"non", "n", "false", "faux", "0", "no", "f"}


@dataclass
class Parsed:
    values: pd.Series
    errors: pd.Series  # object: str (French reason) or None
    repaired: pd.Series  # bool


def _clean_str(s: pd.Series) -> pd.Series:
    s = s.astype("object").where(s.notna(), "")
    return s.map(lambda v: str(v).replace("\u00a0", " ").replace("\u202f", " ").strip())


def _no_errors(s: pd.Series) -> pd.Series:
    return pd.Series([None] * len(s), index=s.index, dtype=object)


def _no_repairs(s: pd.Series) -> pd.Series:
    return pd.Series(False, index=s.index, dtype=bool)


def parse_text(s: pd.Series) -> Parsed:
    c = _clean_str(s)
    vals = c.where(c != "", pd.NA).astype("string")
    return Parsed(vals, _no_errors(s), _no_repairs(s))


def parse_finess(s: pd.Series) -> Parsed:
    c = _clean_str(s).str.replace(" ", "", regex=False).str.upper()
    # spreadsheet artefacts: "10000016.0"
    c = c.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    empty = c == ""
    eight = c.str.fullmatch(r"\d{8}")
    fixed = c.where(~eight, "0" + c)
    ok = fixed.str.fullmatch(_FINESS_RE)
    errors = _no_errors(s)
    bad = ~ok & ~empty
    errors[bad] = "numéro FINESS invalide (9 caractères attendus : le département puis 7 chiffres)"
    vals = fixed.where(ok, pd.NA).astype("string")
    return Parsed(vals, errors, eight & ok)


def parse_departement(s: pd.Series) -> Parsed:
    c = _clean_str(s).str.upper()
    c = c.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    empty = c == ""
    one = c.str.fullmatch(r"[1-9]")
    fixed = c.where(~one, "0" + c)
    fixed = fixed.map(lambda v: _DEPT_FINESS.get(v, v))
    ok = fixed.map(lambda v: bool(_DEPT_RE.match(v)))
    errors = _no_errors(s)
    errors[~ok & ~empty] = "code département invalide (attendu 01 à 95, 2A, 2B, 971 à 976 ou 9A à 9D, 9F)"
    return Parsed(fixed.where(ok, pd.NA).astype("string"), errors, one & ok)


def parse_region(s: pd.Series) -> Parsed:
    c = _clean_str(s)
    c = c.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    empty = c == ""
    one = c.str.fullmatch(r"[1-9]")
    fixed = c.where(~one, "0" + c)
    ok = fixed.str.fullmatch(r"\d{2}")
    errors = _no_errors(s)
    errors[~ok & ~empty] = "code région INSEE invalide (2 chiffres attendus, par exemple 84)"
    return Parsed(fixed.where(ok, pd.NA).astype("string"), errors, one & ok)


# French grouping of thousands: a space (or no-break space) between groups of three digits.
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?: \d{3})+(?:[.,]\d+)?%?$")
# In an integer count, one "." or "," followed by exactly three digits is ambiguous: 37.000 is
# 37 written with three decimals or 37 000 with a thousands separator. It is never guessed.
_AMBIGUOUS_INT = re.compile(r"^[+-]?\d{1,3}(?:[.,]\d{3})+$")
# Integers beyond 2**53 cannot be held exactly by the numeric columns; no real count comes near.
MAX_ABS_NUMBER = 1e15


def _to_number(c: pd.Series) -> pd.Series:
    has_space = c.str.contains(" ", regex=False)
    bad_space = has_space & ~c.str.fullmatch(_GROUPED.pattern).fillna(False).astype(bool)
    t = c.str.replace(" ", "", regex=False).str.replace(",", ".", regex=False)
    t = t.str.replace(r"%$", "", regex=True)
    t = t.where(~bad_space, "?")  # "1 2" or "12 34": not a grouping of thousands
    num = pd.to_numeric(t.where(t != "", None), errors="coerce")
    return num.astype("float64") if num.dtype != "float64" else num


def _too_big(num: pd.Series) -> pd.Series:
    return (num.abs() > MAX_ABS_NUMBER).fillna(False).astype(bool) & ~np.isinf(num.fillna(0))


def parse_float(s: pd.Series) -> Parsed:
    c = _clean_str(s)
    empty = c == ""
    num = _to_number(c)
    bad = num.isna() & ~empty | np.isinf(num.fillna(0))
    errors = _no_errors(s)
    errors[bad] = "nombre attendu"
    big = _too_big(num) & ~bad
    errors[big] = "nombre trop grand (au-delà d'un million de milliards) : valeur aberrante"
    bad = bad | big
    return Parsed(num.where(~bad).astype("Float64"), errors, _no_repairs(s))


def parse_int(s: pd.Series) -> Parsed:
    c = _clean_str(s)
    empty = c == ""
    ambiguous = c.str.fullmatch(_AMBIGUOUS_INT.pattern).fillna(False).astype(bool)
    num = _to_number(c)
    bad = (num.isna() & ~empty) | (num.notna() & (num != np.floor(num.fillna(0))))
    errors = _no_errors(s)
    errors[bad] = "nombre entier attendu"
    errors[ambiguous] = (
        "séparateur ambigu dans un nombre entier (37.000 ou 37,000 : 37 ou 37 000 ?) ; écrivez 37000 ou 37 000"
    )
    big = _too_big(num) & ~bad & ~ambiguous
    errors[big] = "nombre trop grand (au-delà d'un million de milliards) : valeur aberrante"
    bad = bad | ambiguous | big
    vals = num.where(~bad).round().astype("Int64")
    return Parsed(vals, errors, _no_repairs(s))


def parse_bool(s: pd.Series) -> Parsed:
    c = _clean_str(s).str.lower()
    c = c.str.replace(r"^([01])\.0+$", r"\1", regex=True)
    empty = c == ""
    t = c.isin(_TRUE)
    f = c.isin(_FALSE)
    bad = ~(t | f | empty)
    vals = pd.Series(pd.NA, index=s.index, dtype="boolean")
    vals[t] = True
    vals[f] = False
    errors = _no_errors(s)
    errors[bad] = "booléen attendu (oui/non, o/n, vrai/faux, true/false, 1/0)"
    return Parsed(vals, errors, _no_repairs(s))


def parse_date(s: pd.Series) -> Parsed:
    c = _clean_str(s)
    empty = c == ""
    iso = c.str.extract(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00)?)?$")
    fr = c.str.extract(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
    # where plutôt que fillna : pas de conversion implicite de type (FutureWarning de pandas)
    year = iso[0].where(iso[0].notna(), fr[2])
    month = iso[1].where(iso[1].notna(), fr[1])
    day = iso[2].where(iso[2].notna(), fr[0])
    frame = pd.DataFrame({"year": pd.to_numeric(year), "month": pd.to_numeric(month), "day": pd.to_numeric(day)})
    vals = pd.to_datetime(frame, errors="coerce")
    bad = vals.isna() & ~empty
    errors = _no_errors(s)
    errors[bad] = "date invalide (attendu AAAA-MM-JJ ou JJ/MM/AAAA)"
    return Parsed(vals.astype("datetime64[ns]"), errors, _no_repairs(s))


def parse_enum(s: pd.Series, choices: tuple[str, ...]) -> Parsed:
    c = _clean_str(s)
    empty = c == ""
    norm = c.map(normalize_name)
    ok = norm.isin(choices)
    bad = ~ok & ~empty
    errors = _no_errors(s)
    errors[bad] = "valeur non admise (attendu : " + ", ".join(choices) + ")"
    return Parsed(norm.where(ok, pd.NA).astype("string"), errors, _no_repairs(s))


PARSERS = {
    "finess": parse_finess,
    "text": parse_text,
    "int": parse_int,
    "float": parse_float,
    "bool": parse_bool,
    "date": parse_date,
    "departement": parse_departement,
    "region": parse_region,
}


def parse_column(s: pd.Series, kind: str, choices: tuple[str, ...] = ()) -> Parsed:
    if kind == "enum":
        return parse_enum(s, choices)
    return PARSERS[kind](s)
