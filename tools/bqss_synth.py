"""Paire BQSS synthétique (``valeur.csv`` + ``metadata.csv``) au format documenté, de la taille réelle.

Format : ``../shared/real-data/bqss/README.md`` (colonnes, types de valeurs, ``missing_value``,
dates ``AAAA-MM-JJ 00:00:00``, booléens ``True``/``False``). Par défaut 3 798 334 lignes, 10 871 FINESS,
959 clés, années 2013–2025, comme l'édition 2025. Les clés que le projet utilise (certification V2014
et 2021, e-Satis, 55 clés QLS) y sont, les autres sont des clés de remplissage ; les valeurs sont
tirées au hasard (graine fixe) : c'est un banc de lecture, pas un jeu de démonstration.
Écrit aussi ``etablissements.csv`` (les FINESS géographiques, répartis sur les régions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from analysis.reading.regions import departement_region

N_ROWS = 3_798_334
N_FINESS = 10_871
N_KEYS = 959
META_COLS = ["name", "title", "description", "type", "source", "indicateur", "secteur", "theme", "acronyme",
             "version", "variable", "annee", "ancienne_variable", "url_rapport", "type_metier", "finess_type"]


def _metadata(n_keys: int) -> list[dict]:
    rows = [
        {"name": "certif_V2014_id_niveau", "type": "integer", "source": "Certification v2014"},
        {"name": "certif_date", "type": "date", "source": "Certification v2014"},
        {"name": "certif_V2014_id_demarche", "type": "integer", "source": "Certification v2014"},
        {"name": "certification_ref_2021_decision", "type": "string", "source": "Certification v2021"},
        {"name": "certification_ref_2021_date_decision", "type": "date", "source": "Certification v2021"},
        {"name": "score_all_rea_ajust_dp", "type": "float", "source": "IQSS questionnaire patient", "secteur": "MCO"},
        {"name": "score_all_ajust_dp_ca", "type": "float", "source": "IQSS questionnaire patient", "secteur": "MCO"},
    ]
    qls = []
    for sect in ("mco", "ssr", "psy", "had"):
        for camp in (2018, 2020, 2022):
            for tm, typ in (("resultat", "float"), ("intervalle_bas", "float"), ("intervalle_haut", "float"),
                            ("effectif", "integer"), ("classe", "string")):
                qls.append({"name": f"{sect}_dpa_qls_{camp}-qls_{tm}", "type": typ, "source": "IQSS dossier patient",
                            "acronyme": "QLS", "secteur": sect.upper(), "annee": str(camp), "type_metier": tm,
                            "indicateur": "QLS"})
    rows += qls[:55]
    i = 0
    while len(rows) < n_keys:
        rows.append({"name": f"cle_synthetique_{i:04d}", "type": ("boolean", "float", "integer", "string")[i % 4],
                     "source": "SAE"})
        i += 1
    for r in rows:
        r.setdefault("title", r["name"])
        r.setdefault("finess_type", "geo")
    return rows


def _finess(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    deps = sorted(departement_region())
    prefix = {d: (d if len(d) == 2 else {"971": "9701", "972": "9702", "973": "9703", "974": "9704",
                                          "976": "9805"}[d]) for d in deps}
    dep = rng.choice(deps, size=n)
    out = []
    seen = set()
    for k, d in enumerate(dep):
        p = prefix[d]
        f = f"{p}{k:0{9 - len(p)}d}"
        assert f not in seen and len(f) == 9
        seen.add(f)
        out.append(f)
    return np.array(out, dtype=object), dep


def write_bqss(dest: Path, n_rows: int = N_ROWS, n_finess: int = N_FINESS, n_keys: int = N_KEYS,
               seed: int = 2025) -> dict:
    """Écrit ``valeur.csv``, ``metadata.csv`` et ``etablissements.csv`` dans ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    meta = _metadata(n_keys)
    pcsv.write_csv(pa.table({c: [r.get(c, "") for r in meta] for c in META_COLS}), dest / "metadata.csv")

    finess, dep = _finess(n_finess, rng)
    regions = departement_region()
    with open(dest / "etablissements.csv", "w", encoding="utf-8") as fh:
        fh.write("finess_geo;raison_sociale;departement;region;statut\n")
        for f, d in zip(finess, dep):
            fh.write(f"{f};ETABLISSEMENT {f};{d};{regions[d]};public\n")

    names = np.array([r["name"] for r in meta], dtype=object)
    types = np.array([r["type"] for r in meta], dtype=object)
    k = rng.integers(0, len(meta), n_rows)
    ktype = types[k]
    kname = names[k]
    annee = rng.integers(2013, 2026, n_rows).astype(str).astype(object)
    fin = finess[rng.integers(0, n_finess, n_rows)]
    missing = rng.random(n_rows) < 0.12
    empty = np.full(n_rows, "", dtype=object)
    vb, vs, vi, vf, vd = (empty.copy() for _ in range(5))
    m = ~missing
    sel = m & (ktype == "boolean")
    vb[sel] = np.where(rng.random(int(sel.sum())) < 0.5, "True", "False")
    sel = m & (ktype == "float")
    vf[sel] = np.round(rng.uniform(0, 100, int(sel.sum())), 2).astype(str)
    sel = m & (ktype == "integer")
    level = kname == "certif_V2014_id_niveau"
    vi[sel & level] = rng.integers(1, 6, int((sel & level).sum())).astype(str)
    vi[sel & ~level] = rng.integers(0, 500, int((sel & ~level).sum())).astype(str)
    sel = m & (ktype == "string")
    dec = kname == "certification_ref_2021_decision"
    labels = np.array(["Certifié avec mention", "Certifié", "Certifié sous conditions", "Non certifié"], dtype=object)
    vs[sel & dec] = labels[rng.integers(0, 4, int((sel & dec).sum()))]
    vs[sel & ~dec] = np.array(list("ABCD"), dtype=object)[rng.integers(0, 4, int((sel & ~dec).sum()))]
    sel = m & (ktype == "date")
    days = rng.integers(0, 4000, int(sel.sum()))
    vd[sel] = (np.datetime64("2013-01-01") + days.astype("timedelta64[D]")).astype(str).astype(object) + " 00:00:00"
    mv = empty.copy()
    reasons = np.array(["Non concerné", "Non répondant", "Données insuffisantes", "Non validé"], dtype=object)
    mv[missing] = reasons[rng.integers(0, 4, int(missing.sum()))]
    table = pa.table({
        "annee": pa.array(annee, pa.string()), "finess": pa.array(fin, pa.string()),
        "finess_type": pa.array(np.full(n_rows, "geo", dtype=object), pa.string()),
        "key": pa.array(kname, pa.string()), "value_boolean": pa.array(vb, pa.string()),
        "value_string": pa.array(vs, pa.string()), "value_integer": pa.array(vi, pa.string()),
        "value_float": pa.array(vf, pa.string()), "missing_value": pa.array(mv, pa.string()),
        "value_date": pa.array(vd, pa.string()),
    })
    pcsv.write_csv(table, dest / "valeur.csv", pcsv.WriteOptions(quoting_style="none"))
    return {"lignes": n_rows, "finess": n_finess, "cles": len(meta),
            "octets": (dest / "valeur.csv").stat().st_size}
