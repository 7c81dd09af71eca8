"""Écriture des fichiers CSV de sortie (contrat de données, section 3).

Format : UTF-8 avec BOM (accents corrects à l'ouverture dans Excel), séparateur ``;``, point
décimal (fichiers lisibles par machine : pas de virgule décimale), fins de ligne ``\\n``, sans
index, valeurs manquantes vides.

Formules neutralisées (règle OWASP « CSV injection ») : une cellule de texte qui commence par
``=``, ``+``, ``-``, ``@``, une tabulation ou un retour chariot serait exécutée comme formule par un
tableur ; elle est écrite précédée d'une apostrophe (``'=SOMME(A1)``), que le tableur n'affiche pas.
Les nombres (``-3``, ``+1.5``, y compris écrits dans une colonne de texte) ne sont pas touchés. Pour
que la règle soit réversible, un texte qui commence déjà par une apostrophe suivie de l'un de ces
caractères en reçoit une de plus. :func:`read_csv_output` relit les fichiers en retirant cette
apostrophe.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["write_csv", "neutralize", "unneutralize", "read_csv_output"]

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?%?$")


def _needs_quote(text: str) -> bool:
    body = text.lstrip("'")
    if body is text or not body:
        return text.startswith(_TRIGGERS) and not _NUMBER.match(text)
    return body.startswith(_TRIGGERS) and not _NUMBER.match(body)


def neutralize(value: object) -> object:
    """``'=1+1`` for ``=1+1`` (a formula a spreadsheet would run); numbers and other text untouched."""
    if isinstance(value, str) and value and _needs_quote(value):
        return "'" + value
    return value


def unneutralize(value: object) -> object:
    """Inverse of :func:`neutralize`."""
    if isinstance(value, str) and value.startswith("'") and _needs_quote(value[1:]):
        return value[1:]
    return value


def read_csv_output(path: Path) -> pd.DataFrame:
    """Relit une sortie CSV (types texte), apostrophes de neutralisation retirées."""
    df = pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    for col in df.columns:
        df[col] = df[col].map(unneutralize)
    return df


def write_csv(df: pd.DataFrame, path: Path, *, sort_by: Sequence[str] | None = None) -> None:
    """Écrit ``df`` en CSV (format ci-dessus), de façon atomique et reproductible.

    ``sort_by`` : colonnes de tri (tri stable) ; sinon l'ordre des lignes est conservé.
    Un tableau vide donne la seule ligne d'en-tête.
    """
    if sort_by:
        df = df.sort_values(list(sort_by), kind="mergesort", na_position="last")
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype):
            df[col] = df[col].map(neutralize, na_action="ignore")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as fh:
        df.to_csv(
            fh,
            sep=";",
            decimal=".",
            index=False,
            lineterminator="\n",
            quoting=csv.QUOTE_MINIMAL,
            na_rep="",
            date_format="%Y-%m-%d",
        )
    os.replace(tmp, path)
