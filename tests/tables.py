"""Petites tables nettoyées écrites à la main pour les tests des analyses."""

from __future__ import annotations

import pandas as pd

from analysis.rules.schema import SOURCES


def table(name: str, rows: list[dict]) -> pd.DataFrame:
    """Table nettoyée au format du lecteur (colonnes et types de ``schema.SOURCES``)."""
    src = SOURCES[name]
    df = pd.DataFrame([{c: r.get(c) for c in src.column_names} for r in rows], columns=src.column_names)
    for col in src.columns:
        values = df[col.name].tolist()
        if col.kind == "int":
            df[col.name] = pd.array(values, dtype="Int64")
        elif col.kind == "float":
            df[col.name] = pd.array(values, dtype="Float64")
        elif col.kind == "bool":
            df[col.name] = pd.array(values, dtype="boolean")
        elif col.kind == "date":
            df[col.name] = pd.to_datetime(pd.Series(values, dtype="object")).astype("datetime64[ns]")
        else:
            df[col.name] = pd.array([None if v is None else str(v) for v in values], dtype="string")
    df["_fichier"] = f"{name}.csv"
    df["_ligne"] = pd.array(range(2, len(df) + 2), dtype="Int64")
    return df
