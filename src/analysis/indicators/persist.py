"""Calculs des étapes repris d'une exécution à l'autre (``<processed>/.cache-calculs``).

Après la correction d'une ligne, la plupart des calculs d'une région portent sur des lignes qui n'ont
pas changé : observations d'un indicateur une année, lignes du suivi d'un indicateur, ciblage d'un
risque une année. Chacun de ces calculs est une fonction de quelques tables (les lignes qu'il peut
lire, voir :func:`analysis.indicators.engine.scope_rows`), des règles et de l'année : ``make report``
le reprend du cache quand l'empreinte de tout cela (et du code, et des versions des bibliothèques) est
la même, et le calcule sinon. Un calcul repris donne les mêmes objets (mêmes valeurs, mêmes types) que
calculé : les sorties ont les mêmes octets qu'à froid (test).

Hors de ``make report`` (notebook lancé seul, tests des calculs), rien n'est repris : :func:`cached`
calcule. ``--force`` vide ce cache ; ``make clean`` aussi ; il est borné comme les autres.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..cache import ContentCache, table_fingerprint

#: sous-dossier de ``processed_dir``
CALC_CACHE = ".cache-calculs"
#: bornes : une région de démonstration en écrit environ 150 ; un jeu national 18 fois plus
CALC_CACHE_MAX_ENTRIES = 20000
CALC_CACHE_MAX_BYTES = 1 << 30

T = TypeVar("T")
_STATE: dict = {"store": None, "salt": ""}


def activate(folder: Path | str, salt: str) -> None:
    """Les calculs suivants de ce processus (et des processus qu'il crée ensuite) sont repris de
    ``folder`` (un chemin relatif l'est au dossier courant de l'appel : :class:`ContentCache`) ;
    ``salt`` : empreinte du code et des versions des bibliothèques."""
    _STATE.update(store=ContentCache(folder, suffix=".pickle"), salt=salt)


def deactivate() -> None:
    _STATE.update(store=None, salt="")


def active() -> bool:
    return _STATE["store"] is not None


def cached(kind: str, parts: list, compute: Callable[[], T]) -> T:
    """``compute()``, ou son résultat déjà calculé pour la même clé (``kind`` et ``parts`` : tout ce
    dont il dépend, empreintes des tables comprises) quand le cache est actif."""
    store: ContentCache | None = _STATE["store"]
    if store is None:
        return compute()
    key = hashlib.sha256(json.dumps([_STATE["salt"], kind, parts], default=str).encode()).hexdigest()
    data = store.get(key)
    if data is not None:
        with contextlib.suppress(Exception):  # entrée illisible (autre version) : calculée à nouveau
            return pickle.loads(data)
    value = compute()
    with contextlib.suppress(OSError):  # disque plein, dossier en lecture seule : rien n'est gardé
        store.put(key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return value


__all__ = ["CALC_CACHE", "activate", "active", "cached", "deactivate", "table_fingerprint"]
