"""Signaux d'alerte : les établissements dont la situation s'est dégradée en N par rapport à N-1.

Les signaux sont déclarés dans la rubrique ``alertes`` du fichier de règles, dans l'ordre de gravité :

- ``entree_ciblage`` : ciblé en N sur un risque, pas en N-1 (preuve : le motif du ciblage) ;
- ``niveau_en_baisse`` : niveau d'un indicateur ``niveau`` (certification) moins bon qu'en N-1 ;
- ``nouveau_non_declarant`` : compte d'un risque de sous-déclaration au plus égal au seuil en N, au-dessus
  en N-1 ;
- ``sous_declaration`` : significativement sous le taux régional en N (faiblement déclarant), pas en N-1 ;
- ``degradation_ifaq`` : dernière valeur (mesurée en N) d'un indicateur à intervalle en dégradation
  selon la règle de non-chevauchement des intervalles (IFAQ) ;
- ``nouveau_non_atteint`` : indicateur d'engagement ``non_atteint`` en N alors qu'il était ``atteint``
  en N-1 (suivi en veille de l'année précédente, pour tous les établissements).

Une ligne par (établissement, signal, objet), la preuve en une ligne, triées par gravité puis
département et FINESS. Calculées une fois (notebook 04) à partir des résultats déjà persistés.
"""

from __future__ import annotations

import pandas as pd

from ..publishing import fmt
from .ciblage import exposure
from .engine import mask, observe, region_establishments
from .suivi import display_value

ALERT_COLUMNS = ["gravite", "signal", "type", "finess_geo", "raison_sociale", "departement", "objet", "preuve"]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="Int64" if c == "gravite" else "string") for c in ALERT_COLUMNS})


def compute_alertes(data, rules, annee: int, region, historique: pd.DataFrame, suivi: pd.DataFrame,
                    suivi_historique: pd.DataFrame, evolutions: dict, years=None) -> pd.DataFrame:
    """``historique`` : ciblage des années ``years`` (par défaut, les années qu'il contient)."""
    etabs = region_establishments(data, region)
    finess = etabs["finess_geo"]
    prev = int(annee) - 1
    rows: list[dict] = []
    for rank, a in enumerate(rules.model.alertes, start=1):
        def add(f, objet, preuve):
            rows.append({"gravite": rank, "signal": a.libelle, "type": a.type, "finess_geo": f, "objet": objet,
                         "preuve": preuve})

        if a.type == "entree_ciblage":
            h = historique
            cur = h[h["annee"] == annee]
            before = set(zip(h.loc[h["annee"] == prev, "finess_geo"], h.loc[h["annee"] == prev, "risque"]))
            if prev not in set(years if years is not None else h["annee"]):
                continue
            for r in cur.itertuples():
                if (r.finess_geo, r.risque) not in before:
                    add(r.finess_geo, rules.label("risque", r.risque), r.motif)
        elif a.type == "niveau_en_baisse":
            ind = rules.indicator(a.indicateur)
            n1 = observe(data, rules, a.indicateur, annee, finess)
            n0 = observe(data, rules, a.indicateur, prev, finess)
            m = n1.merge(n0, on=["finess_geo", "indicateur"], suffixes=("", "_prec"))
            m = m[mask(m["valeur_num"] > m["valeur_num_prec"])]  # rang plus élevé = moins bon
            for r in m.itertuples():
                when = f" (décision du {fmt.fmt_date(r.date_donnee)})" if ind.date else ""
                add(r.finess_geo, rules.indicator_label(r.indicateur),
                    f"{r.niveau_prec} au 31/12/{prev} → {r.niveau} au 31/12/{annee}{when}")
        elif a.type in ("nouveau_non_declarant", "sous_declaration"):
            risk = rules.risques[a.risque]
            m1 = exposure(data, rules, risk, annee, finess)
            m0 = exposure(data, rules, risk, prev, finess)
            m = m1.merge(m0, on="finess_geo", suffixes=("", "_prec"))
            m = m[m["compte"].notna() & m["compte_prec"].notna()]
            seuil = float(risk.seuil_non_declarant)
            if a.type == "nouveau_non_declarant":
                hit = m[(m["compte"] <= seuil) & (m["compte_prec"] > seuil)]
                for r in hit.itertuples():
                    add(r.finess_geo, risk.libelle,
                        f"{fmt.fmt_num(r.compte_prec)} en {prev} → {fmt.fmt_num(r.compte)} en {annee}")
            else:
                h = historique
                def faible(y):
                    sel = h[(h["annee"] == y) & (h["risque"] == a.risque)]
                    return dict(zip(sel["finess_geo"], sel["motif"]))
                now, before = faible(annee), faible(prev)
                for f, motif in now.items():
                    if str(motif).startswith("faiblement") and not str(before.get(f, "")).startswith(("faiblement", "non")):
                        add(f, risk.libelle, motif)
        elif a.type == "degradation_ifaq":
            ev = evolutions.get(a.indicateur)
            if ev is None or ev.empty:
                continue
            ind = rules.indicator(a.indicateur)
            d = ev[(ev["evolution"] == "dégradation") & (ev["annee"] == annee)]
            limits = rules.thresholds(a.indicateur)
            for r in d.itertuples():
                add(r.finess_geo, rules.indicator_label(r.indicateur),
                    f"{display_value(ind, r.valeur_precedente, None, limits)} en {int(r.annee_precedente)} "
                    f"(IC {fmt.fmt_dec(r.ic_bas_precedent, 1)}–{fmt.fmt_dec(r.ic_haut_precedent, 1)}) → "
                    f"{display_value(ind, r.valeur, None, limits)} en {int(r.annee)} "
                    f"(IC {fmt.fmt_dec(r.ic_bas, 1)}–{fmt.fmt_dec(r.ic_haut, 1)})")
        elif a.type == "nouveau_non_atteint":
            h = suivi_historique[suivi_historique["annee"] == prev] if len(suivi_historique) else suivi_historique
            if h.empty or suivi.empty:
                continue
            m = suivi.merge(h[["finess_geo", "indicateur", "statut", "valeur_texte"]], on=["finess_geo", "indicateur"],
                            suffixes=("", "_prec"))
            m = m[(m["statut"] == "non_atteint") & (m["statut_prec"] == "atteint")]
            for r in m.itertuples():
                add(r.finess_geo, r.libelle_indicateur,
                    f"{r.valeur_texte_prec} en {prev} → {r.valeur_texte} en {annee} (cible {r.cible})")
    if not rows:
        return _empty()
    out = pd.DataFrame(rows).merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    out = out.sort_values(["gravite", "departement", "finess_geo", "objet"], kind="mergesort")
    out = out[ALERT_COLUMNS].astype({c: "string" for c in ALERT_COLUMNS if c != "gravite"})
    out["gravite"] = out["gravite"].astype("Int64")
    return out.reset_index(drop=True)
