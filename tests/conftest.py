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
def rules() -> dict:
    """Le fichier de règles du projet, tel qu'il est livré."""
    import yaml

    with open(PROJECT / "config" / "regles_cpom.yml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Rapport complet (notebooks, HTML, PDF, fiches, XLSX, manifeste) du petit jeu écrit à la main de
    test_pipeline.py, construit une seule fois pour la session : ``(tmp, data, out, final)``.
    Les tests qui l'utilisent ne modifient jamais ``final`` (ils travaillent sur des copies)."""
    from test_pipeline import params, write_fixture

    from analysis.orchestration.pipeline import build_report

    tmp = tmp_path_factory.mktemp("pipeline")
    data = write_fixture(tmp / "raw")
    out = tmp / "out"
    [final] = build_report(params(tmp, data, out))
    return tmp, data, out, final
