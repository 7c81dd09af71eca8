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
