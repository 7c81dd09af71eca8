"""Chargement du fichier de règles (seuils, cibles, correspondances) et de son empreinte."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..reading.readers import InputError, sha256_file

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "config" / "regles_cpom.yml"

_REQUIRED_KEYS = ("version", "certification", "secteurs_qls", "ciblage", "engagements")


def load_rules(path: str | Path | None = None) -> dict:
    """Lit le fichier de règles YAML ; ajoute ``_chemin`` et ``_sha256``."""
    p = Path(path) if path else DEFAULT_RULES
    if not p.is_file():
        raise InputError(f"Fichier de règles introuvable : « {p} ».")
    try:
        rules = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"Le fichier de règles « {p.name} » est illisible : {exc}") from exc
    if not isinstance(rules, dict):
        raise InputError(f"Le fichier de règles « {p.name} » doit contenir un dictionnaire YAML.")
    missing = [k for k in _REQUIRED_KEYS if k not in rules]
    if missing:
        raise InputError(
            f"Le fichier de règles « {p.name} » ne contient pas les rubriques obligatoires : {', '.join(missing)}."
        )
    rules["_chemin"] = str(p)
    rules["_sha256"] = sha256_file(p)
    return rules
