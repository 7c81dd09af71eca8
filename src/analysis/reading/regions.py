"""Régions et départements français (codes INSEE, découpage 2016).

- ``REGIONS`` : libellés des 18 régions, pour le rapport ;
- ``departements.csv`` (livré avec le paquet, d'après le code officiel géographique de l'INSEE) :
  département → région, avec le code que le répertoire FINESS donne aux départements d'outre-mer
  (``9A`` Guadeloupe 971, ``9B`` Martinique 972, ``9C`` Guyane 973, ``9D`` La Réunion 974,
  ``9F`` Mayotte 976). ``9E`` (Saint-Pierre-et-Miquelon) et ``9J`` (Wallis-et-Futuna) ne relèvent
  d'aucune ARS : ils n'y figurent pas.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

REGIONS = {
    "01": "Guadeloupe",
    "02": "Martinique",
    "03": "Guyane",
    "04": "La Réunion",
    "06": "Mayotte",
    "11": "Île-de-France",
    "24": "Centre-Val de Loire",
    "27": "Bourgogne-Franche-Comté",
    "28": "Normandie",
    "32": "Hauts-de-France",
    "44": "Grand Est",
    "52": "Pays de la Loire",
    "53": "Bretagne",
    "75": "Nouvelle-Aquitaine",
    "76": "Occitanie",
    "84": "Auvergne-Rhône-Alpes",
    "93": "Provence-Alpes-Côte d'Azur",
    "94": "Corse",
}

DEPARTEMENTS_FILE = Path(__file__).with_name("departements.csv")


def region_label(code: str) -> str:
    name = REGIONS.get(str(code))
    return f"{name} ({code})" if name else f"région {code}"


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    region: dict[str, str] = {}
    finess_code: dict[str, str] = {}
    label: dict[str, str] = {}
    with open(DEPARTEMENTS_FILE, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            region[row["departement"]] = row["region"]
            finess_code[row["code_finess"]] = row["departement"]
            label[row["departement"]] = row["libelle"]
    return region, finess_code, label


def departement_region() -> dict[str, str]:
    """Département INSEE (``01`` … ``95``, ``2A``, ``2B``, ``971`` … ``976``) → région INSEE."""
    return dict(_table()[0])


def finess_departements() -> dict[str, str]:
    """Code département du répertoire FINESS (``01``, ``2A``, ``9A`` …) → département INSEE."""
    return dict(_table()[1])


def departement_label(code: str) -> str:
    return _table()[2].get(str(code), str(code))


def region_of_departement(code: str | None) -> str | None:
    """Région INSEE d'un département (code INSEE ou code FINESS ``9A`` … ``9F``) ; ``None`` si inconnu."""
    if code is None:
        return None
    c = str(code).strip().upper()
    c = _table()[1].get(c, c)
    return _table()[0].get(c)


def departement_of_finess(finess: str | None) -> str | None:
    """Département INSEE d'un numéro FINESS (9 caractères).

    Métropole et Corse : les deux premiers caractères (``01`` … ``95``, ``2A``, ``2B``). Outre-mer :
    ``970`` suivi du rang du département (``9701…`` Guadeloupe 971, ``9702…`` 972, ``9703…`` 973,
    ``9704…`` La Réunion 974 ; ``9705…`` Saint-Pierre-et-Miquelon, hors ARS) ; Mayotte : ``9805…``
    (976 ; ``9800…`` est Monaco, hors ARS).
    """
    if finess is None:
        return None
    f = str(finess).strip().upper()
    if len(f) != 9:
        return None
    if f.startswith("98"):
        return "976" if f.startswith("9805") else None
    if f.startswith("97"):
        dep = "97" + (f[3] if f[2] == "0" else f[2])
        return dep if dep in _table()[0] else None
    dep = f[:2]
    return dep if dep in _table()[0] else None
