"""Contexte commun aux notebooks : tables nettoyées, règles, paramètres, résultats de lecture.

Les notebooks ne contiennent qu'un appel à :func:`load_context` puis des appels aux fonctions du
paquet ; ce module charge ce que l'étape de lecture a écrit dans ``data/processed/<empreinte>/``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..cache import read_parquet_once
from ..reading.cleaning import read_processed
from ..reading.regions import region_label
from ..rules.model import Rules, load_rules


@dataclass
class Context:
    annee: int
    region: str
    tables: dict[str, pd.DataFrame]
    rules: Rules
    out_dir: Path
    processed_dir: Path
    data_dir: Path
    fictif: bool = False
    files: pd.DataFrame = field(default_factory=pd.DataFrame)
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)
    absent_sources: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    other_region_rows: dict = field(default_factory=dict)  # lignes acceptées par fichier, autres régions
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def region_label(self) -> str:
        return region_label(self.region)

    @property
    def etablissements(self) -> pd.DataFrame:
        e = self.tables["etablissements"]
        return e[e["region"] == self.region]

    @property
    def data_fingerprint(self) -> str:
        """Empreinte des données de la région (voir :func:`data_fingerprint`)."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self)
        return self._fingerprint

    def results(self, upto: str | None = None):
        """Résultats de la région, déjà calculés par ``make report`` (jamais recalculés) : tous, ou
        ceux des étapes jusqu'à ``upto`` (``"ciblage"``, ``"suivi"``, ``"tendances"``), seuls lus par
        un notebook que ``make report`` lance dès que ces étapes sont faites.

        Notebook lancé seul : les étapes manquantes sont calculées ici, une fois."""
        from ..indicators import results as R

        return R.ensure_results(self, upto)


def load_context(
    annee: int, region: str, processed_dir: str, out_dir: str, rules: str, data_dir: str = "", fictif: bool = False
) -> Context:
    # make report passes the copy of the rules bytes validated (and hashed) at the start of the run
    rules_dict = load_rules(rules or None)
    if not processed_dir:
        # Notebook run on its own (outside ``make report``): read the raw folder directly.
        from ..reading.cleaning import clean_folder, region_finess, rows_of_other_regions

        res = clean_folder(data_dir, rules_dict)
        other = rows_of_other_regions(res.tables, region_finess(res.tables["etablissements"], str(region)))
        pdir = Path(data_dir)
        tables, files, rejects = res.tables, res.files_frame(), res.rejects
        lecture = {"avertissements": res.warnings, "sources_absentes": res.absent_sources,
                   "fichiers_ignores": res.ignored_files}
    else:
        pdir = Path(processed_dir)
        tables, other, lecture = _region_tables(pdir, str(region))
        files = read_parquet_once(pdir / "fichiers.parquet") if (pdir / "fichiers.parquet").is_file() else pd.DataFrame()
        rejects = read_parquet_once(pdir / "rejets.parquet") if (pdir / "rejets.parquet").is_file() else pd.DataFrame()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    # make report : les figures déjà dessinées sur les mêmes données sont reprises (mêmes octets).
    # Seulement si le module des figures est déjà chargé (notebooks) : le processus de make report,
    # qui ne dessine pas, n'importe pas matplotlib pour cela.
    figures = sys.modules.get("analysis.publishing.figures")
    if figures is not None:
        figures.use_cache(Path(processed_dir).parent / figures.FIGURE_CACHE if processed_dir else None)
    return Context(
        annee=int(annee),
        region=str(region),
        tables=tables,
        rules=rules_dict,
        out_dir=Path(out_dir),
        processed_dir=pdir,
        data_dir=Path(data_dir) if data_dir else pdir,
        fictif=bool(fictif),
        files=files,
        rejects=rejects,
        warnings=lecture.get("avertissements", []),
        absent_sources=lecture.get("sources_absentes", []),
        ignored_files=lecture.get("fichiers_ignores", []),
        other_region_rows=other,
    )


#: dans ce processus (noyau des notebooks) : tables de la région déjà lues, leurs comptes par fichier
#: des autres régions et la lecture, pour le dossier et les fichiers tels qu'ils étaient (une entrée)
_REGION_TABLES: dict = {}


def _region_tables(pdir: Path, region: str) -> tuple[dict, dict, dict]:
    """Tables nettoyées de ``pdir`` restreintes à la région, lignes des autres régions comptées par
    fichier et comptes de lecture (``lecture.json``) : lus et calculés une fois par noyau tant que les
    fichiers de ``pdir`` n'ont pas changé (même nom, inode, taille et date : ils sont écrits par
    renommage), puis copiés pour chaque notebook, qui peut les modifier. Les cinq notebooks d'un
    rapport chargent le même contexte : mesuré, 0,08 s de lecture et de filtrage chacun."""
    import copy

    from ..cache import file_identity
    from ..reading.cleaning import processed_columns, region_finess, rows_of_other_regions

    identity = []
    for p in sorted(pdir.glob("*.parquet")) + [pdir / "lecture.json"]:
        try:
            identity.append((p.name, *file_identity(p)))
        except FileNotFoundError:
            identity.append((p.name, None))
    key = (str(pdir.resolve()), region, tuple(identity))
    hit = _REGION_TABLES.get(key)
    if hit is None:
        tables = read_processed(pdir, region)  # lignes de la région seulement
        other = rows_of_other_regions(processed_columns(pdir, ["_fichier", "finess_geo"]),
                                      region_finess(tables["etablissements"], region))
        lecture = {}
        if (pdir / "lecture.json").is_file():
            lecture = json.loads((pdir / "lecture.json").read_text(encoding="utf-8"))
        hit = (tables, other, lecture)
        _REGION_TABLES.clear()
        _REGION_TABLES[key] = hit
    tables, other, lecture = hit
    copies = {}
    for name, df in tables.items():
        copies[name] = df.copy()
        copies[name].attrs = dict(df.attrs)
    return copies, dict(other), copy.deepcopy(lecture)


#: colonnes du tableau des fichiers d'entrée qui ne dépendent pas seulement des lignes lues : l'empreinte
#: du fichier entier change dès qu'une ligne d'une autre région change
_FILE_COLUMNS_EXCLUDED = ("sha256",)


def _frame_digest(h, name: str, df: pd.DataFrame) -> None:
    """Ajoute à ``h`` une table : nom, colonnes, types et empreinte de chaque ligne (pandas,
    clé fixe : même résultat sur toute machine)."""
    h.update(f"\n[{name}] {len(df)} ".encode())
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()], ensure_ascii=False).encode())
    if len(df):
        h.update(pd.util.hash_pandas_object(df.reset_index(drop=True), index=False).to_numpy().tobytes())


def data_fingerprint(ctx: Context) -> str:
    """SHA-256 de tout ce que lit le rapport d'une région : les lignes de ses établissements dans
    chaque table nettoyée (référentiel compris), les comptes de lecture de chaque fichier (sans son
    empreinte), les rejets, les avertissements et sources absentes, les lignes des autres régions
    comptées par fichier, les règles (contenu et nom), l'année, la région et le marquage « données fictives ».

    Deux rapports de même empreinte (et même code) sont identiques à l'octet : c'est ce qui permet de
    ne pas refaire une région que la correction d'une autre n'a pas touchée. Le calcul ne dépend pas
    de la façon dont le contexte a été chargé (tables nationales ou déjà restreintes à la région)."""
    import hashlib

    from ..reading.cleaning import region_finess

    h = hashlib.sha256()
    h.update(json.dumps({"annee": ctx.annee, "region": ctx.region, "fictif": ctx.fictif,
                         "regles": ctx.rules.sha256, "fichier_regles": ctx.rules.name}, sort_keys=True).encode())
    own = pd.Index(sorted(region_finess(ctx.tables["etablissements"], ctx.region)))
    for name in sorted(ctx.tables):
        df = ctx.tables[name]
        if "finess_geo" in df.columns:
            df = df.loc[df["finess_geo"].astype("string").isin(own)]
        _frame_digest(h, name, df)
    files = ctx.files.drop(columns=[c for c in _FILE_COLUMNS_EXCLUDED if c in ctx.files.columns])
    _frame_digest(h, "fichiers", files)
    _frame_digest(h, "rejets", ctx.rejects)
    h.update(json.dumps({"avertissements": ctx.warnings, "sources_absentes": ctx.absent_sources,
                         "fichiers_ignores": ctx.ignored_files,
                         "autres_regions": dict(sorted(ctx.other_region_rows.items()))},
                        ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()
