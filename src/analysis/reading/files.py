"""Ce qu'il faut savoir des fichiers d'entrée avant de les lire, sans pandas : l'erreur bloquante sur
les entrées, les extensions lues et l'empreinte SHA-256 d'un fichier.

Importé seul au lancement de ``make report`` (interface en ligne de commande, empreinte des entrées
« rien à refaire ») : le noyau des notebooks est lancé avant que ce processus importe pandas
(voir :meth:`analysis.orchestration.pipeline.NotebookKernel.launch`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: extensions des fichiers d'entrée lus dans le dossier des données
INPUT_SUFFIXES = (".csv", ".xlsx", ".xlsm")


class InputError(Exception):
    """Erreur bloquante sur les données d'entrée ; le message est en français et destiné à l'analyste."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
