"""Petites tables nettoyées écrites à la main pour les tests des analyses."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from analysis.rules.model import DEFAULT_RULES, load_rules, parse_rules

SOURCES = load_rules().source_specs


def rules_with(change) -> "Rules":  # noqa: F821
    """Règles par défaut modifiées par ``change(dict)`` (le YAML relu, modifié, revalidé)."""
    raw = yaml.safe_load(Path(DEFAULT_RULES).read_text(encoding="utf-8"))
    change(raw)
    return parse_rules(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "regles_test.yml")


def table(name: str, rows: list[dict]) -> pd.DataFrame:
    """Table nettoyée au format du lecteur (colonnes et types des sources déclarées)."""
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


def results_for(tables: dict, rules, annee: int, region: str, out_dir: Path):
    """Résultats d'une région calculés comme par les notebooks 02 à 04 (même code), puis relus."""
    from analysis.indicators.results import compute_region

    return compute_region(tables, rules, annee, region, out_dir)


def independent_levels(real_data: Path, sites: set[str], annee: int) -> pd.Series:
    """Décision de certification en vigueur au 31/12/``annee`` de chaque site, relue directement dans
    les fichiers HAS (``../shared/real-data``), sans le code du projet : la référence des tests."""
    dem = pd.read_csv(real_data / "has-certification-2021" / "demarche.csv", dtype=str)
    geo = pd.read_csv(real_data / "has-certification-2021" / "etablissement-geo.csv", dtype=str)
    m = geo.merge(dem, on="code_demarche")
    m = m[m["FINESS_EG"].isin(sites) & m["Decision_de_la_CCES"].notna()].copy()
    m["date"] = pd.to_datetime(m["date_de_decision"], format="%d/%m/%Y")
    m = m[m["date"] <= pd.Timestamp(f"{annee}-12-31")]
    return m.sort_values("date").groupby("FINESS_EG").tail(1).set_index("FINESS_EG")["Decision_de_la_CCES"]
