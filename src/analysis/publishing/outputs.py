"""Écriture des fichiers CSV de sortie (contrat de données, section 3).

Format : UTF-8 avec BOM (accents corrects à l'ouverture dans Excel), séparateur ``;``, point
décimal (fichiers lisibles par machine : pas de virgule décimale), fins de ligne ``\\n``, sans
index, valeurs manquantes vides. Les valeurs sont écrites telles quelles : une chaîne commençant
par ``=`` n'est pas neutralisée (le classeur ``.xlsx``, lui, ne contient jamais de formule).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["write_csv"]


def write_csv(df: pd.DataFrame, path: Path, *, sort_by: Sequence[str] | None = None) -> None:
    """Écrit ``df`` en CSV (format ci-dessus), de façon atomique et reproductible.

    ``sort_by`` : colonnes de tri (tri stable) ; sinon l'ordre des lignes est conservé.
    Un tableau vide donne la seule ligne d'en-tête.
    """
    if sort_by:
        df = df.sort_values(list(sort_by), kind="mergesort", na_position="last")
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
