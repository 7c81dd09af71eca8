"""Notebooks exécutés publiés sans dates ni dossiers de la machine (mêmes octets partout).

Papermill inscrit dans chaque notebook exécuté l'heure et la durée de chaque cellule, ainsi que les
chemins absolus des notebooks et des paramètres (dossier des données, des règles, dossier de sortie
temporaire). Le rapport publié garde le notebook exécuté comme journal de calcul, mais sans ces
éléments : les chemins utilisés restent dans ``manifest.json`` (seule sortie qui en contient).

- dossier des données, fichier de règles et dossier de sortie (temporaire) → un libellé renvoyant
  au manifeste (un notebook publié relancé tel quel s'arrête donc sans rien écrire : il faut lui
  redonner ces paramètres, voir le README) ;
- dossier des tables nettoyées → ``""`` : le notebook relit alors lui-même ``data_dir`` ;
- ``input_path`` / ``output_path`` de Papermill → ``notebooks/<nom>`` ;
- dates et durées (Papermill, nbclient) supprimées ; identifiant fixe pour la cellule des
  paramètres injectés (aléatoire sinon).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["PLACEHOLDERS", "strip_machine_details"]

#: valeur publiée de chaque paramètre qui désigne un chemin de la machine
PLACEHOLDERS = {
    "out_dir": "<dossier de sortie : voir manifest.json>",
    "processed_dir": "",
    "data_dir": "<dossier des données : voir manifest.json>",
    "rules": "<fichier de règles : voir manifest.json>",
}
_TIME_KEYS = ("start_time", "end_time", "duration")


def _replace(obj, pairs: list[tuple[str, str]]):
    if isinstance(obj, str):
        for old, new in pairs:
            if old in obj:
                obj = obj.replace(old, new)
        return obj
    if isinstance(obj, list):
        return [_replace(x, pairs) for x in obj]
    if isinstance(obj, dict):
        return {k: _replace(v, pairs) for k, v in obj.items()}
    return obj


def strip_machine_details(path: Path, parameters: dict, *, name: str | None = None) -> None:
    """Réécrit le notebook exécuté ``path`` sans dates ni chemins de la machine (voir le module).

    ``parameters`` : les paramètres passés à Papermill (chemins absolus)."""
    path = Path(path)
    name = name or path.name
    nb = json.loads(path.read_text(encoding="utf-8"))
    pairs: list[tuple[str, str]] = []
    for key, placeholder in PLACEHOLDERS.items():
        value = parameters.get(key)
        if isinstance(value, str) and value:
            pairs.append((value, placeholder))
            # Papermill writes the injected values as Python literals: "entr\xe9es" for "entrées"
            escaped = value.encode("unicode_escape").decode("ascii").replace('"', '\\"')
            if escaped != value:
                pairs.append((escaped, placeholder))
    # the longest first: a path inside another one is replaced whole
    pairs.sort(key=lambda p: -len(p[0]))
    pm = nb.get("metadata", {}).get("papermill")
    if isinstance(pm, dict):
        for k in _TIME_KEYS:
            pm.pop(k, None)
        pm["input_path"] = f"notebooks/{name}"
        pm["output_path"] = f"notebooks/{name}"
        if isinstance(pm.get("parameters"), dict):
            for key, placeholder in PLACEHOLDERS.items():
                if key in pm["parameters"]:
                    pm["parameters"][key] = placeholder
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        if "injected-parameters" in meta.get("tags", []) and "id" in cell:
            cell["id"] = "injected-parameters"  # aléatoire sinon
        if isinstance(meta.get("papermill"), dict):
            for k in _TIME_KEYS:
                meta["papermill"].pop(k, None)
    nb = _replace(nb, pairs)
    # same layout as nbformat (indent=1, keys sorted, final newline)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
