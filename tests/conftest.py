from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT.parent / "shared" / "real-data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip("données réelles HAS absentes (../shared/real-data n'existe que sur les machines du projet)")
    return REAL_DATA


@pytest.fixture(scope="module")
def rules():
    """Le fichier de règles du projet, tel qu'il est livré (validé)."""
    from analysis.rules.model import load_rules

    return load_rules(PROJECT / "config" / "regles_cpom.yml")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Le rapport complet (notebooks, PDF, fiches, classeur, manifeste), construit une seule fois sur le
    petit jeu de ``pipeline_data`` et partagé par tous les tests de bout en bout."""
    from pipeline_data import params, write_fixture

    from analysis.orchestration.pipeline import build_report

    tmp = tmp_path_factory.mktemp("pipeline")
    data = write_fixture(tmp / "raw")
    out = tmp / "out"
    [final] = build_report(params(tmp, data, out))
    return tmp, data, out, final
