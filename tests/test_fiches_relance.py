"""Relance après correction d'une ligne : seules les fiches dont le contenu change sont rendues à
nouveau, et le résultat est identique à l'octet près à un rendu à froid (petit jeu écrit à la main)."""

from __future__ import annotations

from tables import results_for, table

from analysis.publishing.fiches import render_fiches
from analysis.publishing.fiches_data import build_fiches
from analysis.rules.loader import load_rules

S1, S2, S3 = "140000011", "140000029", "140000037"


def _tables(connecte_s2: bool) -> dict:
    etabs = [dict(finess_geo=f, raison_sociale=f"Établissement {f}", departement="14", region="28",
                  statut="public", mco=True, ssr=False, psy=False, lits=100) for f in (S1, S2, S3)]
    esin = []
    for f, n in ((S1, 12), (S2, 9), (S3, 15)):
        esin.append(dict(finess_geo=f, annee=2023, signalements=n, responsable_connecte=True))
        esin.append(dict(finess_geo=f, annee=2024, signalements=n + 1,
                         responsable_connecte=connecte_s2 if f == S2 else True))
    activite = [dict(finess_geo=f, annee=y, sejours=10000) for f in (S1, S2, S3) for y in (2023, 2024)]
    engagements = [dict(finess_geo=f, engagement="signalement_esin", date_signature="2023-01-15",
                        annee_debut=2023, annee_fin=2027) for f in (S1, S2, S3)]
    return {"etablissements": table("etablissements", etabs), "esin": table("esin", esin),
            "activite": table("activite", activite), "engagements": table("engagements", engagements)}


def test_one_row_correction_rerenders_only_the_affected_sheet(tmp_path):
    rules = load_rules()
    kw = dict(region_label="Normandie (28)", annee=2024, fictif=True)
    cache = tmp_path / "cache"
    t_before = _tables(connecte_s2=True)
    before = build_fiches(t_before, rules, 2024, "28", results_for(t_before, rules, 2024, "28", tmp_path / "r1"))
    st: dict = {}
    render_fiches(before, tmp_path / "avant", cache_dir=cache, stats=st, **kw)
    assert (st["total"], st["rendues"], st["reprises"]) == (3, 3, 0)

    # correction d'une ligne d'esin.csv : S2 n'avait pas de responsable connecté en 2024
    t_after = _tables(connecte_s2=False)
    after = build_fiches(t_after, rules, 2024, "28", results_for(t_after, rules, 2024, "28", tmp_path / "r2"))
    changed = {a["finess_geo"] for a, b in zip(after, before) if a != b}
    assert changed == {S2}
    render_fiches(after, tmp_path / "apres", cache_dir=cache, stats=st, **kw)
    assert (st["rendues"], st["reprises"]) == (1, 2)

    cold = render_fiches(after, tmp_path / "froid", **kw)
    assert [p.name for p in cold] == sorted(p.name for p in (tmp_path / "apres").glob("*.pdf"))
    for p in cold:
        assert (tmp_path / "apres" / p.name).read_bytes() == p.read_bytes(), p.name
    assert (tmp_path / "apres" / f"{S2}.pdf").read_bytes() != (tmp_path / "avant" / f"{S2}.pdf").read_bytes()
