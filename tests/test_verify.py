"""``python -m analysis verify`` / ``make verify`` : un rapport publié refait d'après son manifeste.

Utilise le rapport du petit jeu construit une fois pour la session (``built``, tests/conftest.py) ;
chaque test refait ce rapport une fois, dans un dossier temporaire."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.orchestration import cli
from analysis.orchestration.verify import normalized_notebook, verify_report
from analysis.reading.readers import InputError

PROJECT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fresh_report_is_identique_from_other_folders(built, tmp_path):
    """Entrées et règles copiées ailleurs (autres dossiers, même contenu) : tout est identique,
    fiches comprises, et le dossier publié n'est pas touché."""
    _, data, _, final = built
    other_data = shutil.copytree(data, tmp_path / "ailleurs" / "donnees")
    rules = tmp_path / "autres-regles" / "regles_cpom.yml"
    rules.parent.mkdir()
    shutil.copy(PROJECT / "config" / "regles_cpom.yml", rules)
    before = _snapshot(final)
    lines: list[str] = []
    res = verify_report(final, data_dir=other_data, rules=rules, echo=lines.append)
    assert res.identical, res.differences
    assert lines[-1].startswith("identique : les ")
    manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
    assert res.compared == len(manifest["sorties"])
    assert {"rapport_annuel.pdf", "rapport_annuel.html", "cpom_28_2024.xlsx", "fiches/140000001.pdf"} <= {
        o["fichier"] for o in manifest["sorties"]}
    assert _snapshot(final) == before


def test_changed_audit_value_is_named_first(built, tmp_path, capsys):
    _, data, _, final = built
    copy = shutil.copytree(data, tmp_path / "donnees")
    audits = copy / "audits.csv"
    text = audits.read_text(encoding="utf-8")
    assert "140000001;2024;4;1" in text
    audits.write_text(text.replace("140000001;2024;4;1", "140000001;2024;4;0"), encoding="utf-8")
    before = _snapshot(final)
    code = cli.main(["verify", str(final), "--data", str(copy), "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "identique" not in out
    items = [line.strip()[2:] for line in out.splitlines() if line.strip().startswith("- ")]
    assert items[0].startswith("fichier d'entrée modifié : audits.csv"), items
    assert not any("fichier d'entrée" in i for i in items[1:])  # seul audits.csv a changé
    # 140000001 n'a plus d'audit sur les précautions : le suivi, le rapport et sa fiche changent
    assert "sortie différente : suivi_engagements.csv" in items
    assert "sortie différente : rapport_annuel.pdf" in items
    assert "sortie différente : fiches/140000001.pdf" in items
    assert "sortie différente : fiches/760000001.pdf" not in items
    assert "sortie différente : ciblage.csv" not in items
    assert _snapshot(final) == before


def test_missing_manifest_is_a_french_error(tmp_path):
    with pytest.raises(InputError, match="manifest.json introuvable"):
        verify_report(tmp_path)
    assert cli.main(["verify", str(tmp_path)]) == 2


def test_normalized_notebook_ignores_dates_and_folders(built, tmp_path):
    nb_path = built[3] / "notebooks" / "02_ciblage.ipynb"
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    source = "".join(injected[0]["source"])
    # publié sans les dossiers de la machine (analysis.orchestration.journal)
    assert 'data_dir = "<dossier des données : voir manifest.json>"' in source
    assert 'out_dir = "<dossier de sortie : voir manifest.json>"' in source
    assert str(built[1].resolve()) not in nb_path.read_text(encoding="utf-8")
    assert "start_time" not in nb_path.read_text(encoding="utf-8")
    nb["metadata"]["papermill"]["start_time"] = "2000-01-01T00:00:00"  # journal d'une version antérieure
    injected[0]["source"] = 'data_dir = "/ailleurs"\n'
    other = tmp_path / "x.ipynb"
    other.write_text(json.dumps(nb), encoding="utf-8")
    assert normalized_notebook(other) == normalized_notebook(nb_path)
    nb["cells"][-1]["source"] = "autre code"
    other.write_text(json.dumps(nb), encoding="utf-8")
    assert normalized_notebook(other) != normalized_notebook(nb_path)
