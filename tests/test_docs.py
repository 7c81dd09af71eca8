"""La documentation des sources et indicateurs est générée depuis le fichier de règles livré."""

from __future__ import annotations

from pathlib import Path

from analysis.publishing.docs import render_docs
from analysis.rules.model import load_rules

DOC = Path(__file__).resolve().parents[1] / "docs" / "sources-et-indicateurs.md"


def test_generated_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render_docs(load_rules()), (
        "docs/sources-et-indicateurs.md ne correspond plus au fichier de règles : lancez `python -m analysis doc`")


def test_doc_lists_every_declared_indicator_and_risk():
    rules = load_rules()
    text = render_docs(rules)
    for _, code, ind in rules.indicators():
        assert f"`{code}` | {ind.libelle}" in text
    for code, r in rules.risques.items():
        assert f"`{code}` | {r.libelle}" in text
