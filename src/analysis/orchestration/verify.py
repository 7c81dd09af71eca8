"""Vérification d'un rapport publié : ``python -m analysis verify <out>/<annee>/<region>``.

Relit le ``manifest.json`` du rapport, refait le rapport avec les mêmes entrées, règles et paramètres
dans un dossier temporaire (le dossier publié n'est jamais modifié), puis compare chaque sortie à
l'empreinte SHA-256 du manifeste. Affiche « identique » ou chaque différence, en nommant d'abord les
fichiers d'entrée (et les règles) dont l'empreinte a changé, puis le code s'il n'est plus le même.

Les notebooks exécutés (``notebooks/*.ipynb``) sont publiés sans dates ni dossiers de la machine
(:mod:`analysis.orchestration.journal`) et comparés à leur empreinte comme les autres sorties ; ceux
d'un rapport publié par une version antérieure (qui les gardait) sont comparés sans ces éléments.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..reading.readers import InputError, sha256_file

__all__ = ["Verification", "verify_report", "normalized_notebook"]


@dataclass
class Verification:
    """Résultat d'une vérification : ``differences`` vide si tout est identique."""

    report_dir: Path
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared: int = 0

    @property
    def identical(self) -> bool:
        return not self.differences


def normalized_notebook(path: Path) -> str:
    """Contenu d'un notebook exécuté sans ce qui dépend de la machine ou de l'instant : métadonnées
    Papermill (dates, durées, chemins), métadonnées d'exécution des cellules, cellule des paramètres
    injectés (ses valeurs sont celles du manifeste)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("papermill", None)
    cells = []
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        if "injected-parameters" in meta.get("tags", []):
            continue
        meta.pop("papermill", None)
        meta.pop("execution", None)
        cell.pop("id", None)
        cells.append(cell)
    nb["cells"] = cells
    return json.dumps(nb, sort_keys=True, ensure_ascii=False)


def _short(sha: str | None) -> str:
    return (sha or "?")[:12] + "…"


def _check_inputs(manifest: dict, data_dir: Path, rules_path: Path, res: Verification) -> None:
    from ..reading.cleaning import INPUT_SUFFIXES
    from .pipeline import FICTIF_MARKER

    published = {e["fichier"]: e.get("sha256") for e in manifest.get("entrees", [])}
    for name, sha in published.items():
        p = data_dir / name
        if not p.is_file():
            res.differences.append(f"fichier d'entrée absent : {name} (présent à la publication)")
        elif sha256_file(p) != sha:
            res.differences.append(
                f"fichier d'entrée modifié : {name} (empreinte SHA-256 publiée {_short(sha)}, actuelle {_short(sha256_file(p))})"
            )
    ignored = set(manifest.get("fichiers_ignores") or [])
    for p in sorted(data_dir.iterdir()):
        if (p.is_file() and p.suffix.lower() in INPUT_SUFFIXES and p.name not in published
                and p.name not in ignored and p.name != FICTIF_MARKER):
            res.differences.append(f"fichier d'entrée nouveau : {p.name} (absent à la publication)")
    sha_rules = sha256_file(rules_path)
    if sha_rules != manifest["regles"]["sha256"]:
        res.differences.append(
            f"fichier de règles modifié : {rules_path.name} (empreinte SHA-256 publiée "
            f"{_short(manifest['regles']['sha256'])}, actuelle {_short(sha_rules)})"
        )


def _check_code(manifest: dict, res: Verification) -> None:
    from .. import __version__
    from .pipeline import _git_commit, _versions, code_fingerprint

    code = manifest.get("code", {})
    now = {"version": __version__, "commit_git": _git_commit(), "empreinte": code_fingerprint()}
    if code.get("version") != now["version"]:
        res.notes.append(f"version du code différente : publiée {code.get('version')}, actuelle {now['version']}")
    if code.get("commit_git") and now["commit_git"] and code["commit_git"] != now["commit_git"]:
        res.notes.append(f"commit différent : publié {code['commit_git'][:12]}, actuel {now['commit_git'][:12]}")
    if code.get("empreinte") and code["empreinte"] != now["empreinte"]:
        res.notes.append("le code (paquet, notebooks, modèles ou requirements.lock) a changé depuis la publication")
    versions = manifest.get("versions", {})
    for pkg, v in _versions().items():
        if pkg in versions and versions[pkg] != v:
            res.notes.append(f"version de {pkg} différente : publiée {versions[pkg]}, actuelle {v}")


def _compare_outputs(manifest: dict, report_dir: Path, rerun: Path, res: Verification) -> None:
    published = {o["fichier"]: o["sha256"] for o in manifest.get("sorties", [])}
    produced = {
        str(p.relative_to(rerun)): p for p in sorted(rerun.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    for name, sha in published.items():
        p = produced.get(name)
        if p is None:
            res.differences.append(f"sortie absente de la nouvelle exécution : {name}")
            continue
        res.compared += 1
        if sha256_file(p) == sha:
            continue
        if name.startswith("notebooks/") and name.endswith(".ipynb"):
            # rapport publié par une version qui gardait dates et dossiers dans les notebooks
            old = report_dir / name
            if old.is_file() and sha256_file(old) == sha and normalized_notebook(old) == normalized_notebook(p):
                continue
            res.differences.append(f"notebook exécuté différent : {name}")
        else:
            res.differences.append(f"sortie différente : {name}")
    for name in produced:
        if name not in published and not (name.startswith("fiches/") and not manifest_has_fiches(manifest)):
            res.differences.append(f"sortie nouvelle, absente du manifeste : {name}")
    n_fiches = sum(1 for n in produced if n.startswith("fiches/"))
    if manifest.get("fiches") is not None and n_fiches != manifest["fiches"]:
        res.differences.append(f"nombre de fiches différent : {n_fiches} au lieu de {manifest['fiches']}")


def manifest_has_fiches(manifest: dict) -> bool:
    """Les manifestes antérieurs ne donnaient que le nombre de fiches, pas leurs empreintes."""
    return any(o["fichier"].startswith("fiches/") for o in manifest.get("sorties", []))


def verify_report(report_dir: Path, *, data_dir: Path | None = None, rules: Path | None = None,
                  jobs: int = 2, echo=print, quiet: bool = True) -> Verification:
    """Refait le rapport de ``report_dir`` d'après son manifeste et compare ses sorties.

    ``data_dir`` / ``rules`` : dossier des entrées et fichier de règles, si ce ne sont plus ceux du
    manifeste (un chemin relatif du manifeste s'entend depuis le dossier courant). Rien n'est écrit
    dans ``report_dir``. ``quiet=False`` : progression de la nouvelle exécution sur la sortie d'erreur.
    """
    from .pipeline import Params, build_report

    report_dir = Path(report_dir)
    mpath = report_dir / "manifest.json"
    if not mpath.is_file():
        raise InputError(f"« {report_dir} » n'est pas un rapport publié : manifest.json introuvable.")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        params = manifest["parametres"]
        annee, region = int(params["annee"]), str(params["region"])
        manifest["regles"]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"manifest.json de « {report_dir} » illisible ou incomplet ({exc}).") from exc

    data = Path(data_dir) if data_dir else Path(params.get("dossier_donnees") or "")
    if not data.is_dir():
        raise InputError(
            f"Dossier des données d'entrée « {data} » introuvable : précisez-le (make verify … DATA=… ou --data)."
        )
    recorded = params.get("fichier_regles") or manifest["regles"].get("fichier") or ""
    rules_path = Path(rules) if rules else Path(recorded)
    if not rules_path.is_file():
        from ..rules.loader import DEFAULT_RULES

        name = Path(str(manifest["regles"].get("fichier") or "")).name
        if rules is None and name == DEFAULT_RULES.name and DEFAULT_RULES.is_file():
            rules_path = DEFAULT_RULES
        else:
            raise InputError(
                f"Fichier de règles « {rules_path} » introuvable : précisez-le (make verify … RULES=… ou --rules)."
            )

    res = Verification(report_dir=report_dir)
    echo(f"Vérification du rapport « {report_dir} » (année {annee}, région {region}).")
    echo(f"Entrées : « {data} » ; règles : {rules_path.name} (version {manifest['regles'].get('version')}).")
    _check_inputs(manifest, data, rules_path, res)
    _check_code(manifest, res)
    for note in res.notes:
        echo(f"Attention : {note}.")
    echo("Nouvelle exécution dans un dossier temporaire…")
    with tempfile.TemporaryDirectory(prefix="cpom-verification-") as tmp:
        tmp = Path(tmp)
        rerun_params = Params(
            data_dir=data, out_dir=tmp / "sorties", annee=annee, region=region, rules=rules_path,
            processed_dir=tmp / "tables", jobs=max(1, jobs), quiet=quiet, force=True,
            fiches=bool(manifest.get("fiches")),
        )
        [rerun] = build_report(rerun_params)
        _compare_outputs(manifest, report_dir, rerun, res)
        shutil.rmtree(tmp, ignore_errors=True)
    if res.identical:
        echo(f"identique : les {res.compared} sorties du manifeste sont reproduites à l'octet près.")
    else:
        echo(f"{len(res.differences)} différence(s) :")
        for d in res.differences:
            echo(f"  - {d}")
    return res


def main(report: str, data: str = "", rules: str = "", jobs: int = 2, quiet: bool = False) -> int:
    res = verify_report(Path(report), data_dir=Path(data) if data else None,
                        rules=Path(rules) if rules else None, jobs=jobs,
                        echo=lambda s: print(s, flush=True), quiet=quiet)
    sys.stdout.flush()
    return 0 if res.identical else 1
