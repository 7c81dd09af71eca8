"""Jeu de données de démonstration FICTIF (``python -m analysis demo``).

``generate_demo(out_dir)`` écrit dans ``out_dir`` les fichiers bruts d'entrée du contrat de données
(section 1) pour une région fictive (code INSEE 28, Normandie : départements 14, 27, 50, 61, 76,
environ 300 établissements, années 2017–2024) ou, avec ``national=True``, pour les 18 régions
(environ 3 000 établissements). Tout est inventé : raisons sociales, numéros FINESS (troisième
caractère « 9 », absent des numéros réels publiés par la HAS ; neuvième caractère = clé de Luhn
comme pour les vrais numéros) et indicateurs. La sortie est déterministe : même graine, mêmes
octets (aucune date courante, lignes triées, fin de ligne ``\\n``, classeur xlsx aux horodatages
fixes).

Fichiers écrits (noms exacts) et formats, pour exercer les règles de lecture :

- ``etablissements.csv`` : UTF-8 avec BOM, ``;``, en-têtes ``FINESS géo`` et ``Raison sociale``
  (accents et espaces), activités en ``1``/``0``.
- ``activite.csv``, ``audits.csv``, ``plan_epidemies.csv``, ``engagements.csv`` : UTF-8, ``;``,
  dates ISO.
- ``certification.csv`` : UTF-8, ``;``, dates françaises ``31/12/2021`` ; niveaux en lettres V2014
  avant 2021, puis surtout libellés V2020 (``certifie_mention``, ``certifie``,
  ``certifie_sous_conditions``, ``non_certifie``).
- ``qls.csv`` : UTF-8, ``;``, virgule décimale (``72,4``) ; secteur ``SSR`` écrit ``SMR`` pour la
  dernière campagne paire ; intervalles ``ic_bas``/``ic_haut`` fournis pour environ la moitié des
  établissements.
- ``esin.csv`` : UTF-8, ``;``, booléen ``responsable_connecte`` en ``Oui``/``Non``.
- ``formation.csv`` : Windows-1252, ``;``, en-têtes accentués (``Catégorie personnel``,
  ``Effectif``, ``Formés``) et deux colonnes informatives hors contrat (``Taux formés`` en virgule
  décimale, ``Date de saisie`` au format ``31/03/2025``).
- ``plans_actions.csv`` : UTF-8, séparateur ``,`` (libellés contenant des virgules, donc entre
  guillemets), dates ISO.
- ``esatis_ssr_<dernière année>.xlsx`` : feuille ``Resultats`` aux colonnes exactes du fichier HAS
  e-Satis SSR (mêmes types de cellules : certains nombres stockés en texte), établissements SMR
  adultes actifs la dernière année ; classes A–D et quelques ``DI``/``NR``/``NV``.
- ``qls_dossiers.csv`` (démo régionale) : UTF-8, ``;``, une campagne de contrôle qualité du recueil
  QLS de la dernière campagne : une douzaine d'établissements, 30 à 80 dossiers réaudités chacun
  (critères ``oui``/``non``/``NA``) ; deux établissements surcotent nettement (l'un suivi sur la lettre
  de liaison et déclaré au-dessus de la cible, l'autre déclaré juste au-dessus du seuil de ciblage
  mais à moins de 20 % au réaudit), les autres déclarent un score compatible avec le réaudit.
- ``DONNEES_FICTIVES.txt`` : marqueur (texte français) qui déclenche le bandeau « données
  fictives ».

Anomalies volontaires (démo régionale seulement, ``national=False``), réalistes, que la section
« qualité des données » du rapport doit montrer (années données pour 2017–2024 ; elles suivent
``first_year``/``last_year``) :

1. ``etablissements.csv`` — 2 lignes : ``finess_ej`` écrit sur 8 chiffres (``29xxxxxx``) pour deux
   SMR gérés par une fondation dont le siège est dans l'Aisne (02) : zéro initial perdu par un
   tableur. Attendu : réparé (complété à 9 caractères ``029xxxxxx``), compté dans la synthèse.
   (Aucun FINESS géographique de la région 28 ne commence par 0 : le cas « 8 chiffres » ne peut
   être réaliste que sur l'entité juridique d'un gestionnaire situé hors région.)
2. ``activite.csv`` — 1 ligne : ``sejours`` négatif (``-1520``, année N-3). Attendu : rejetée
   (valeur négative).
3. ``certification.csv`` — 1 ligne : ``date_decision`` impossible (``31/06/<année>``). Attendu :
   rejetée (date illisible).
4. ``qls.csv`` — 1 ligne : ``score`` à ``104`` (campagne N-2). Attendu : rejetée (hors 0–100).
5. ``qls.csv`` — 1 ligne : FINESS absent du référentiel (site fermé puis radié). Attendu : rejetée
   (« établissement inconnu du référentiel »).
6. ``esin.csv`` — 1 ligne : doublon exact de la ligne précédente (copier-coller). Attendu :
   fusionnée (avertissement, pas de rejet).
7. ``audits.csv`` — 2 lignes : même clé (FINESS, année N-1) avec des valeurs différentes, la
   seconde ajoutée en fin de fichier (ressaisie). Attendu : les deux rejetées, chaque motif citant
   l'autre ligne.
8. ``formation.csv`` — 1 ligne : ``formes`` supérieur à ``effectif`` (catégorie ``medical``, année
   N-1). Attendu : rejetée.

Cas limites volontaires (données valides) : un score QLS exactement égal à ``20,0`` lors de la
dernière campagne (non ciblé : le seuil est strict) ; un établissement sous 20 % aux deux dernières
campagnes (maintenu dans le ciblage) et un autre sous 20 % à l'avant-dernière seulement (sortie) ;
des établissements ouverts ou fermés en cours de période (lignes d'indicateurs seulement pour leurs
années d'activité, pas de décision de certification les premières années après l'ouverture) ; des
lignes annuelles manquantes (formation, audits, plan épidémies, campagnes QLS non recueillies) ;
deux engagements ``lettre_liaison`` avec une cible dérogatoire (``cible`` = 60 et 85).
"""

from __future__ import annotations

import io
import math
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["generate_demo", "DEMO_REGION", "REGIONS", "MARKER_FILE"]

DEMO_REGION = "28"
MARKER_FILE = "DONNEES_FICTIVES.txt"
NATIONAL_TARGET = 3000

# code INSEE -> nom, libellé HAS e-Satis, départements, départements des CHU, poids, nombre de CHU (national)
REGIONS: dict[str, dict] = {
    "01": dict(nom="Guadeloupe", has="Guadeloupe", deps=["971"], chu_deps=["971"], poids=0.008, n_chu=1),
    "02": dict(nom="Martinique", has="Martinique", deps=["972"], chu_deps=["972"], poids=0.006, n_chu=1),
    "03": dict(nom="Guyane", has="Guyane", deps=["973"], chu_deps=["973"], poids=0.004, n_chu=1),
    "04": dict(nom="La Réunion", has="Océan Indien", deps=["974"], chu_deps=["974"], poids=0.012, n_chu=1),
    "06": dict(nom="Mayotte", has="Océan Indien", deps=["976"], chu_deps=["976"], poids=0.003, n_chu=0),
    "11": dict(nom="Île-de-France", has="Ile de France", deps=["75", "77", "78", "91", "92", "93", "94", "95"],
               chu_deps=["75", "94", "92", "93"], poids=0.160, n_chu=4),
    "24": dict(nom="Centre-Val de Loire", has="Centre-Val de Loire", deps=["18", "28", "36", "37", "41", "45"],
               chu_deps=["37", "45"], poids=0.035, n_chu=2),
    "27": dict(nom="Bourgogne-Franche-Comté", has="Bourgogne-Franche-Comté",
               deps=["21", "25", "39", "58", "70", "71", "89", "90"], chu_deps=["21", "25"], poids=0.045, n_chu=2),
    "28": dict(nom="Normandie", has="Normandie", deps=["14", "27", "50", "61", "76"], chu_deps=["14", "76"],
               poids=0.045, n_chu=2),
    "32": dict(nom="Hauts-de-France", has="Hauts de France", deps=["02", "59", "60", "62", "80"],
               chu_deps=["59", "80"], poids=0.075, n_chu=2),
    "44": dict(nom="Grand Est", has="Grand Est", deps=["08", "10", "51", "52", "54", "55", "57", "67", "68", "88"],
               chu_deps=["51", "54", "67"], poids=0.080, n_chu=3),
    "52": dict(nom="Pays de la Loire", has="Pays de la Loire", deps=["44", "49", "53", "72", "85"],
               chu_deps=["44", "49"], poids=0.045, n_chu=2),
    "53": dict(nom="Bretagne", has="Bretagne", deps=["22", "29", "35", "56"], chu_deps=["35", "29"],
               poids=0.045, n_chu=2),
    "75": dict(nom="Nouvelle-Aquitaine", has="Nouvelle Aquitaine",
               deps=["16", "17", "19", "23", "24", "33", "40", "47", "64", "79", "86", "87"],
               chu_deps=["33", "86", "87"], poids=0.100, n_chu=3),
    "76": dict(nom="Occitanie", has="Occitanie",
               deps=["09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"],
               chu_deps=["31", "34", "30"], poids=0.110, n_chu=3),
    "84": dict(nom="Auvergne-Rhône-Alpes", has="Auvergne-Rhône-Alpes",
               deps=["01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74"],
               chu_deps=["69", "38", "63", "42"], poids=0.120, n_chu=4),
    "93": dict(nom="Provence-Alpes-Côte d'Azur", has="PACA", deps=["04", "05", "06", "13", "83", "84"],
               chu_deps=["13", "06"], poids=0.095, n_chu=3),
    "94": dict(nom="Corse", has="Corse", deps=["2A", "2B"], chu_deps=["2A"], poids=0.008, n_chu=0),
}
# Poids démographiques des départements normands (les autres régions : poids égaux)
DEP_WEIGHTS = {"14": 0.21, "27": 0.18, "50": 0.15, "61": 0.08, "76": 0.38}

# Catégories : effectif de la démo régionale, statuts (public, privé non lucratif, privé lucratif),
# probabilités d'activité, lits, séjours annuels, personnel, parts (médical, paramédical, ASH).
CATEGORIES: dict[str, dict] = {
    "chu": dict(label="CHU", n=2, statut=(1, 0, 0), act=(1, 1, 0.8, 0.3), lits=(1100, 1900),
                sej=(80_000, 150_000), staff=(5000, 9000), parts=(0.16, 0.62, 0.22), esin=1.15),
    "ch": dict(label="CH", n=40, statut=(1, 0, 0), act=(1, 0.7, 0.4, 0.15), lits=(120, 750),
               sej=(10_000, 60_000), staff=(400, 2500), parts=(0.11, 0.63, 0.26), esin=1.0),
    "hl": dict(label="Hôpital local", n=14, statut=(0.9, 0.1, 0), act=(0.6, 1, 0, 0), lits=(20, 90),
               sej=(600, 3000), staff=(60, 200), parts=(0.05, 0.60, 0.35), esin=1.0),
    "clin": dict(label="Clinique MCO", n=45, statut=(0, 0.2, 0.8), act=(1, 0.15, 0, 0.05), lits=(40, 260),
                 sej=(5_000, 30_000), staff=(100, 600), parts=(0.06, 0.68, 0.26), esin=0.95),
    "clcc": dict(label="Centre de lutte contre le cancer", n=2, statut=(0, 1, 0), act=(1, 0, 0, 0.5),
                 lits=(120, 260), sej=(15_000, 30_000), staff=(800, 1500), parts=(0.14, 0.66, 0.20), esin=1.1),
    "smr": dict(label="SMR", n=100, statut=(0.2, 0.35, 0.45), act=(0, 1, 0, 0), lits=(30, 160),
                sej=(500, 3000), staff=(40, 250), parts=(0.05, 0.60, 0.35), esin=1.0),
    "psy": dict(label="Psychiatrie", n=30, statut=(0.5, 0.15, 0.35), act=(0, 0, 1, 0), lits=(30, 400),
                sej=(1000, 5000), staff=(80, 900), parts=(0.08, 0.70, 0.22), esin=1.0),
    "had": dict(label="HAD", n=18, statut=(0.15, 0.6, 0.25), act=(0, 0, 0, 1), lits=None,
                sej=(300, 2000), staff=(20, 120), parts=(0.08, 0.75, 0.17), esin=1.0),
    "dia": dict(label="Dialyse", n=40, statut=(0.1, 0.6, 0.3), act=(1, 0, 0, 0), lits=None,
                sej=(10_000, 40_000), staff=(15, 80), parts=(0.10, 0.80, 0.10), esin=1.0),
    "mecss": dict(label="MECSS", n=5, statut=(0, 0.8, 0.2), act=(0, 1, 0, 0), lits=(20, 60),
                  sej=(100, 400), staff=(25, 80), parts=(0.04, 0.56, 0.40), esin=1.0),
    "poup": dict(label="Pouponnière", n=2, statut=(0.5, 0.5, 0), act=(0, 1, 0, 0), lits=(15, 40),
                 sej=(40, 150), staff=(20, 60), parts=(0.03, 0.62, 0.35), esin=1.0),
}
CAT_CODES = list(CATEGORIES)
STATUTS = ("public", "prive_non_lucratif", "prive_lucratif")
EXCLUDED_QLS = {"had_pediatrique", "hemodialyse", "pouponniere", "hdj", "pedopsychiatrie"}
PERSONNEL = ("medical", "paramedical", "ash")

# --- toponymes fictifs --------------------------------------------------------------------------
SAINTS = ["Saint-Aubin", "Saint-Martin", "Saint-Pierre", "Sainte-Marie", "Saint-Laurent", "Saint-Germain",
          "Saint-Hilaire", "Saint-Julien", "Sainte-Croix", "Saint-Sauveur", "Saint-Rémy", "Saint-Vigor",
          "Sainte-Honorine", "Saint-Clair", "Saint-Ouen", "Saint-Georges", "Saint-Lambert", "Sainte-Colombe",
          "Saint-Éloi", "Saint-Symphorien"]
ROOTS = ["Beaumont", "Montfort", "Villeneuve", "Bellevue", "Le Mesnil", "Fontaine", "Clairval", "Rochefort",
         "Bonneville", "Blanchecourt", "Neuville", "Hautefeuille", "Bréval", "Courcelles", "Longpré",
         "Montigny", "Vauclair", "Mortemer", "Ferrières", "La Chapelle", "Le Plessis", "Les Essarts",
         "Briquemont", "Valcourt", "Hérouval", "Aubermont", "Les Authieux"]
RIVERS_28 = ["Vire", "Orne", "Touques", "Dives", "Risle", "Eure", "Andelle", "Sée", "Sélune", "Bresle", "Iton",
             "Aure", "Odon", "Seulles", "Douve", "Béthune", "Epte", "Charentonne", "Huisne", "Rouvre"]
PAYS_28 = ["Auge", "Caux", "Bray", "Bessin", "Cotentin", "Vexin", "Perche", "Ouche", "Lieuvin", "Roumois", "Bocage"]
RIVERS = ["Loire", "Marne", "Garonne", "Dordogne", "Lot", "Tarn", "Allier", "Cher", "Indre", "Vienne", "Creuse",
          "Saône", "Doubs", "Meuse", "Moselle", "Aisne", "Oise", "Somme", "Sarthe", "Mayenne", "Rance", "Aude",
          "Hérault", "Durance", "Isère", "Drôme", "Ardèche", "Yonne", "Aube", "Vilaine", "Charente", "Adour",
          "Orb", "Ource", "Armançon"]
PAYS = ["Brie", "Vexin", "Beauce", "Sologne", "Berry", "Forez", "Velay", "Quercy", "Vivarais", "Bugey", "Morvan",
        "Argonne", "Santerre", "Gâtinais", "Médoc", "Périgord", "Lauragais", "Comminges", "Bresse", "Chalosse"]
SUFFIXES = ["-la-Forêt", "-le-Château", "-les-Bains", "-la-Campagne", "-le-Vieux", "-la-Rivière"]
NATURE = ["Les Tilleuls", "Les Cèdres", "Les Glycines", "Les Hêtres", "Le Bois Joli", "Les Peupliers", "La Roseraie",
          "Les Charmilles", "Les Marronniers", "Le Clos Fleuri", "Les Bruyères", "Les Mouettes", "Les Embruns",
          "La Source", "Les Oyats", "Les Pommiers", "La Chênaie", "Les Sorbiers", "Les Saules", "Le Val Fleuri",
          "Les Lilas", "Les Acacias", "La Sapinière", "Les Rochers", "Le Parc", "Les Frênes", "La Pommeraie",
          "Les Ormes", "Les Iris", "La Clairière"]
PERSONS = ["Marguerite-Lefébure", "Jean-Baptiste-Delaunay", "Henriette-Morvan", "Paul-Émile-Garnier",
           "Louise-Hébert", "Émile-Roussel", "Suzanne-Bréhier", "Victor-Lemonnier", "Albertine-Caradec",
           "Octave-Vauquelin", "Jeanne-Malherbe", "Gustave-Lecornu"]

FAULT_IDS = ("finess_ej_8_chiffres", "sejours_negatif", "date_illisible", "score_104", "finess_inconnu",
             "doublon_exact_esin", "doublon_conflictuel_audits", "formes_sup_effectif")

_STREAMS = {"etab": 1, "design": 2, "activite": 3, "certif": 4, "qls": 5, "esin": 6, "formation": 7,
            "audits": 8, "plan": 9, "engagements": 10, "actions": 11, "esatis": 12, "faults": 13,
            "controle": 14}


def _rng(seed: int, national: bool, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(national), _STREAMS[stream]])


# --- utilitaires ---------------------------------------------------------------------------------

def _luhn_key(payload: np.ndarray) -> np.ndarray:
    """Clé de Luhn (9e caractère du FINESS) pour des chaînes de 8 caractères (lettres comptées 0)."""
    digits = np.array([[int(c) if c.isdigit() else 0 for c in p] for p in payload], dtype=int).reshape(-1, 8)
    rev = digits[:, ::-1].copy()
    dbl = rev[:, 0::2] * 2
    rev[:, 0::2] = np.where(dbl > 9, dbl - 9, dbl)
    return (10 - rev.sum(axis=1) % 10) % 10


def _finess_numbers(dep: str, k: int, rng: np.random.Generator, exclude: set[str]) -> list[str]:
    """k numéros FINESS fictifs uniques pour un département (3e caractère « 9 »)."""
    if len(dep) == 3:  # outre-mer : 97 + 9 + dernier chiffre du département + 4 chiffres + clé
        prefix, width = "979" + dep[2], 4
    else:
        prefix, width = dep + "9", 5
    out: list[str] = []
    while len(out) < k:
        n = rng.choice(10**width, size=min(10**width, (k - len(out)) * 2 + 4), replace=False)
        payload = np.array([f"{prefix}{v:0{width}d}" for v in n])
        keys = _luhn_key(payload)
        for p, key in zip(payload, keys):
            f = f"{p}{key}"
            if f not in exclude:
                exclude.add(f)
                out.append(f)
                if len(out) == k:
                    break
    return out


def _de(town: str) -> str:
    """« de » + nom de lieu avec l'élision ou la contraction française."""
    if town.startswith("Le "):
        return "du " + town[3:]
    if town.startswith("Les "):
        return "des " + town[4:]
    if town[0] in "AEIOUYÉÈÂÎ":
        return "d'" + town
    return "de " + town


def _ratio_split(n: int, weights: list[float]) -> list[int]:
    """Répartition entière de n proportionnelle aux poids (plus forts restes)."""
    w = np.asarray(weights, dtype=float)
    raw = n * w / w.sum()
    base = np.floor(raw).astype(int)
    rest = n - base.sum()
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return base.tolist()


_HOLIDAYS = np.array([f"{y}-{md}" for y in range(1990, 2101)
                      for md in ("01-01", "05-01", "05-08", "07-14", "08-15", "11-01", "11-11", "12-25")],
                     dtype="datetime64[D]")


def _days(years: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Dates (datetime64[D]) = 1er janvier de l'année + décalage en jours, ramenées au jour ouvré suivant
    (hors week-ends et jours fériés fixes)."""
    start = (np.asarray(years, dtype=int) - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    d = start + np.asarray(offsets, dtype=int).astype("timedelta64[D]")
    return np.busday_offset(d, 0, roll="forward", holidays=_HOLIDAYS)


def _iso(d: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.asarray(d, dtype="datetime64[D]"), unit="D")


def _fr(d: np.ndarray) -> list[str]:
    return [f"{s[8:10]}/{s[5:7]}/{s[0:4]}" for s in _iso(d)]


def _dec_comma(x: np.ndarray, nd: int = 1) -> list[str]:
    return [("" if (v is None or (isinstance(v, float) and math.isnan(v))) else f"{v:.{nd}f}".replace(".", ","))
            for v in x]


def _write_csv(df: pd.DataFrame, path: Path, *, sep: str = ";", encoding: str = "utf-8", bom: bool = False) -> None:
    text = df.to_csv(index=False, sep=sep, lineterminator="\n")
    data = text.encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)


# --- référentiel ---------------------------------------------------------------------------------

class _Names:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[tuple[str, str]] = set()

    def town(self, region: str) -> str:
        r = self.rng
        root = SAINTS[r.integers(len(SAINTS))] if r.random() < 0.45 else ROOTS[r.integers(len(ROOTS))]
        rivers, pays = (RIVERS_28, PAYS_28) if region == "28" else (RIVERS, PAYS)
        u = r.random()
        if u < 0.45:
            return f"{root}-sur-{rivers[r.integers(len(rivers))]}"
        if u < 0.7:
            return f"{root}-en-{pays[r.integers(len(pays))]}"
        if u < 0.85:
            return root + SUFFIXES[r.integers(len(SUFFIXES))]
        return root

    def river(self, region: str) -> str:
        rivers = RIVERS_28 if region == "28" else RIVERS
        return rivers[self.rng.integers(len(rivers))]

    def pick(self, seq: list[str]) -> str:
        return seq[self.rng.integers(len(seq))]

    def make(self, cat: str, statut: str, spec: str, region: str) -> str:
        """Raison sociale unique dans la région (les homonymes d'une région à l'autre sont réalistes)."""
        for attempt in range(40):
            name = self._make(cat, statut, spec, region)
            if attempt >= 10 and " de " not in name and " du " not in name and " des " not in name:
                name = f"{name} {_de(self.town(region))}"
            if (region, name) not in self.used:
                self.used.add((region, name))
                return name
        n = 2
        while (region, f"{name} – site {n}") in self.used:
            n += 1
        name = f"{name} – site {n}"
        self.used.add((region, name))
        return name

    def _make(self, cat: str, statut: str, spec: str, region: str) -> str:
        r, t = self.rng, self.town(region)
        nat = self.pick(NATURE)
        if cat == "chu":
            return f"Centre hospitalier universitaire {_de(t)}"
        if cat == "ch":
            u = r.random()
            if u < 0.75:
                return f"Centre hospitalier {_de(t)}"
            if u < 0.9:
                return f"Centre hospitalier intercommunal {_de(t)}"
            return f"Groupe hospitalier {_de(t)}"
        if cat == "hl":
            return (f"Hôpital local {_de(t)}" if r.random() < 0.6 else f"Centre hospitalier de proximité {_de(t)}")
        if cat == "clin":
            riv = self.river(region)
            val = f"du Val {_de(riv)}"
            options = [f"Clinique {self.pick(SAINTS)}", f"Polyclinique {val}", f"Clinique {val}",
                       f"Hôpital privé {_de(t)}", f"Clinique {nat}", f"Polyclinique {_de(t)}"]
            return self.pick(options)
        if cat == "clcc":
            return f"Centre de lutte contre le cancer {self.pick(PERSONS)}"
        if cat == "smr":
            if spec == "post_cure_alcoolique":
                return f"Centre de post-cure alcoolique {nat}"
            if statut == "public":
                return self.pick([f"Centre de soins médicaux et de réadaptation {_de(t)}",
                                  f"Centre de rééducation fonctionnelle {_de(t)}"])
            return self.pick([f"SMR {nat}", f"Centre de réadaptation {nat}", f"Clinique SMR {nat}",
                              f"Maison de convalescence {nat}", f"Clinique {self.pick(SAINTS)}"])
        if cat == "psy":
            if spec == "pedopsychiatrie":
                return f"Centre de pédopsychiatrie {nat}"
            if spec == "hdj":
                return f"Hôpital de jour {nat}"
            if statut == "public":
                return self.pick([f"Établissement public de santé mentale {_de(t)}",
                                  f"Centre hospitalier spécialisé {_de(t)}"])
            return self.pick([f"Clinique psychiatrique {nat}", f"Clinique {nat}", f"Clinique {self.pick(SAINTS)}"])
        if cat == "had":
            if spec == "had_pediatrique":
                return f"HAD pédiatrique {_de(t)}"
            return self.pick([f"HAD {_de(t)}", f"Hospitalisation à domicile {_de(t)}", f"HAD {nat}"])
        if cat == "dia":
            return self.pick([f"Centre d'hémodialyse {_de(t)}", f"Unité d'autodialyse {_de(t)}",
                              f"Unité de dialyse médicalisée {_de(t)}"])
        if cat == "mecss":
            return f"MECSS {nat}"
        if cat == "poup":
            return f"Pouponnière sanitaire {nat}"
        raise ValueError(cat)


def _category_counts(regions: list[str], national: bool) -> dict[str, dict[str, int]]:
    base = {c: CATEGORIES[c]["n"] for c in CAT_CODES}
    if not national:
        return {regions[0]: base}
    weights = [REGIONS[r]["poids"] for r in regions]
    sizes = _ratio_split(NATIONAL_TARGET, weights)
    out = {}
    others = [c for c in CAT_CODES if c != "chu"]
    for reg, n in zip(regions, sizes):
        n_chu = REGIONS[reg]["n_chu"]
        split = _ratio_split(n - n_chu, [base[c] for c in others])
        counts = {"chu": n_chu, **dict(zip(others, split))}
        if counts["ch"] == 0:
            counts["ch"] = 1
            big = max(others, key=lambda c: counts[c])
            counts[big] -= 1
        out[reg] = counts
    return out


def _build_establishments(seed: int, national: bool, first: int, last: int) -> pd.DataFrame:
    rng = _rng(seed, national, "etab")
    names = _Names(rng)
    regions = list(REGIONS) if national else [DEMO_REGION]
    counts = _category_counts(regions, national)
    used: set[str] = set()
    rows: list[dict] = []
    for reg in regions:
        info = REGIONS[reg]
        deps = info["deps"]
        dep_w = np.array([DEP_WEIGHTS.get(d, 1.0) for d in deps]) if reg == "28" else np.ones(len(deps))
        dep_w = dep_w / dep_w.sum()
        reg_rows: list[dict] = []
        for cat in CAT_CODES:
            n = counts[reg][cat]
            if n == 0:
                continue
            cfg = CATEGORIES[cat]
            if cat == "chu":
                dep = [info["chu_deps"][i % len(info["chu_deps"])] for i in range(n)]
            else:
                dep = list(rng.choice(deps, size=n, p=dep_w))
            statut = rng.choice(STATUTS, size=n, p=np.array(cfg["statut"]) / sum(cfg["statut"]))
            act = (rng.random((n, 4)) < np.array(cfg["act"])).astype(int)
            size = rng.beta(1.6, 2.2, size=n)
            size2 = np.clip(0.75 * size + 0.25 * rng.random(n), 0, 1)
            spec = np.array([""] * n, dtype=object)
            if cat == "dia":
                spec[:] = "hemodialyse"
            elif cat == "mecss":
                spec[:] = "mecss"
            elif cat == "poup":
                spec[:] = "pouponniere"
            elif cat == "had":
                spec[rng.random(n) < 0.06] = "had_pediatrique"
            elif cat == "psy":
                u = rng.random(n)
                spec[u < 0.12] = "pedopsychiatrie"
                spec[(u >= 0.12) & (u < 0.20)] = "hdj"
            elif cat == "smr":
                spec[rng.random(n) < 0.05] = "post_cure_alcoolique"
            for i in range(n):
                lo, hi = cfg["sej"]
                lits = None
                if cfg["lits"] is not None:
                    llo, lhi = cfg["lits"]
                    lits = int(round(llo + (lhi - llo) * size[i]))
                reg_rows.append(dict(
                    region=reg, dep=dep[i], cat=cat, categorie=cfg["label"], statut=str(statut[i]),
                    mco=int(act[i, 0]), ssr=int(act[i, 1]), psy=int(act[i, 2]), had=int(act[i, 3]),
                    spec=spec[i], lits=lits, size=float(size[i]),
                    sej_base=float(lo + (hi - lo) * size2[i]),
                    staff_base=float(cfg["staff"][0] + (cfg["staff"][1] - cfg["staff"][0]) * size2[i]),
                ))
        # au moins une occurrence de chaque spécificité rare dans la région (si la catégorie existe)
        for cat, sp in (("had", "had_pediatrique"), ("psy", "pedopsychiatrie"), ("psy", "hdj"),
                        ("smr", "post_cure_alcoolique")):
            cand = [r for r in reg_rows if r["cat"] == cat and r["spec"] == ""]
            if cand and not any(r["spec"] == sp for r in reg_rows) and len(cand) >= 4:
                cand[int(rng.integers(len(cand)))]["spec"] = sp
        for r in reg_rows:  # cohérence activités / spécificités
            if r["spec"] in ("pedopsychiatrie", "hdj"):
                r["psy"] = 1
            if r["spec"] == "had_pediatrique":
                r["had"] = 1
            if r["cat"] == "hl" and r["mco"] == 0 and r["ssr"] == 0:
                r["ssr"] = 1
            r["name"] = names.make(r["cat"], r["statut"], r["spec"], reg)
        rows.extend(reg_rows)

    est = pd.DataFrame(rows)
    # FINESS géographiques et juridiques, uniques, par département
    est["finess"] = ""
    est["finess_ej"] = ""
    for dep, idx in est.groupby("dep", sort=True).groups.items():
        idx = list(idx)
        nums = _finess_numbers(dep, 2 * len(idx), rng, used)
        est.loc[idx, "finess"] = nums[: len(idx)]
        est.loc[idx, "finess_ej"] = nums[len(idx):]
    est["ej_name"] = est["name"]
    # Entités juridiques partagées : association régionale de dialyse, hôpitaux locaux en direction commune
    for reg in regions:
        m = (est.region == reg) & (est.cat == "dia") & (est.statut == "prive_non_lucratif")
        if m.sum() >= 2:
            first_i = est.index[m][0]
            est.loc[m, "finess_ej"] = est.at[first_i, "finess_ej"]
            est.loc[m, "ej_name"] = ("Association pour le traitement de l'insuffisance rénale – "
                                     + REGIONS[reg]["nom"])
        chs = est.index[(est.region == reg) & (est.cat == "ch")]
        hls = est.index[(est.region == reg) & (est.cat == "hl") & (est.statut == "public")]
        for i in hls:
            if rng.random() < 0.35 and len(chs):
                j = chs[int(rng.integers(len(chs)))]
                est.at[i, "finess_ej"] = est.at[j, "finess_ej"]
                est.at[i, "ej_name"] = est.at[j, "ej_name"]
    # Ouvertures et fermetures en cours de période
    n = len(est)
    est["open_y"] = first
    est["close_y"] = last
    if last - first >= 3:
        u = rng.random(n)
        movable = (est.cat != "chu").to_numpy()
        opening = movable & (u < 0.03)
        closing = movable & (u >= 0.03) & (u < 0.05)
        est.loc[opening, "open_y"] = rng.integers(first + 1, last, size=int(opening.sum()))
        est.loc[closing, "close_y"] = rng.integers(first + 1, last - 1, size=int(closing.sum()))
    est = est.sort_values("finess", kind="stable").reset_index(drop=True)
    return est


# --- désignations (cibles attendues) --------------------------------------------------------------

def _campaigns(first: int, last: int) -> list[int]:
    return [y for y in range(first, last + 1) if y % 2 == 0]


def _designate(est: pd.DataFrame, seed: int, national: bool, first: int, last: int) -> dict[str, np.ndarray]:
    rng = _rng(seed, national, "design")
    n = len(est)
    stable = (est.open_y <= max(first, last - 4)) & (est.close_y == last)
    small = est.cat.isin(["smr", "psy", "had", "hl", "mecss", "poup", "dia"]).to_numpy()
    out: dict[str, np.ndarray] = {}
    taken = np.zeros(n, dtype=bool)

    def pick(mask: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
        idx = np.flatnonzero(mask)
        k = min(k, len(idx))
        if k == 0:
            return np.zeros(0, dtype=int)
        p = None
        if weights is not None:
            w = weights[idx].astype(float)
            p = w / w.sum()
        return np.sort(rng.choice(idx, size=k, replace=False, p=p))

    scale = n / 300.0
    # Non certifiés (niveau E en vigueur la dernière année)
    k_e = max(1, int(round(4 * scale)))
    out["cert_e"] = pick(stable.to_numpy() & ~est.cat.isin(["chu"]).to_numpy(), k_e)
    taken[out["cert_e"]] = True
    # Rupture de parcours : score QLS < 20 % lors de la dernière campagne
    camps = _campaigns(first, last)
    last_c = camps[-1] if camps else last
    has_sector = ((est.mco == 1) | (est.ssr == 1) | ((est.psy == 1) & (last_c >= 2022))).to_numpy()
    qls_ok = has_sector & ~est.spec.isin(EXCLUDED_QLS).to_numpy() & stable.to_numpy()
    k_q = max(3, int(round(5 * scale)))
    out["qls_low"] = pick(qls_ok & ~taken, k_q)
    taken[out["qls_low"]] = True
    out["qls_20"] = pick(qls_ok & ~taken, 1)  # score exactement 20,0 (non ciblé)
    taken[out["qls_20"]] = True
    out["qls_prev"] = pick(qls_ok & ~taken, 1)  # < 20 % à l'avant-dernière campagne seulement (sortie)
    taken[out["qls_prev"]] = True
    # Non déclarants e-SIN (plutôt petits établissements)
    k_nr = max(2, int(round(0.065 * n)))
    w = np.where(small, 3.0, 1.0) * (1.3 - est["size"].to_numpy())
    w[est.cat.isin(["chu", "clcc"]).to_numpy()] = 0
    out["non_decl"] = pick(stable.to_numpy() & ~taken, k_nr, w)
    taken[out["non_decl"]] = True
    # Faibles déclarants (gros volumes, très peu de signalements)
    k_low = max(1, int(round(3 * scale)))
    big = (est.sej_base >= 20_000).to_numpy() & est.cat.isin(["ch", "clin", "dia"]).to_numpy()
    out["low_decl"] = pick(stable.to_numpy() & big & ~taken, k_low)
    taken[out["low_decl"]] = True
    return out


# --- tables annuelles -----------------------------------------------------------------------------

def _panel(est: pd.DataFrame, years: list[int]) -> pd.DataFrame:
    n, k = len(est), len(years)
    i = np.repeat(np.arange(n), k)
    y = np.tile(np.asarray(years), n)
    keep = (y >= est.open_y.to_numpy()[i]) & (y <= est.close_y.to_numpy()[i])
    return pd.DataFrame({"i": i[keep], "annee": y[keep]})


COVID_ACT = {"mco": {2020: 0.86, 2021: 0.95}, "other": {2020: 0.9, 2021: 0.96}}


def _activite(est, panel, seed, national) -> pd.DataFrame:
    rng = _rng(seed, national, "activite")
    i, y = panel.i.to_numpy(), panel.annee.to_numpy()
    base = est.sej_base.to_numpy()[i]
    trend = 1.012 ** (y - 2020)
    is_mco = est.cat.isin(["chu", "ch", "clin", "clcc"]).to_numpy()[i]
    covid = np.ones(len(y))
    for yr, f in COVID_ACT["mco"].items():
        covid[(y == yr) & is_mco] = f
    for yr, f in COVID_ACT["other"].items():
        covid[(y == yr) & ~is_mco & (est.cat.to_numpy()[i] != "dia")] = f
    noise = rng.normal(1.0, 0.035, len(y))
    sej = np.round(base * trend * covid * noise).astype(int)
    # première année d'activité : montée en charge
    first_year = y == est.open_y.to_numpy()[i]
    opened = first_year & (est.open_y.to_numpy()[i] > y.min())
    sej[opened] = np.round(sej[opened] * rng.uniform(0.3, 0.7, opened.sum())).astype(int)
    return pd.DataFrame({"i": i, "annee": y, "sejours": sej})


ESIN_RATE = 2.4e-4  # signalements par séjour en 2020 (hors effet épidémique)
ESIN_YEAR = {2020: 1.5, 2021: 1.3, 2022: 1.2}


def _esin(est, act, design, seed, national, last) -> pd.DataFrame:
    rng = _rng(seed, national, "esin")
    i, y = act.i.to_numpy(), act.annee.to_numpy()
    n = len(est)
    u_i = rng.gamma(60.0, 1 / 60.0, n)
    mult = np.array([CATEGORIES[c]["esin"] for c in est.cat])
    yf = np.array([ESIN_YEAR.get(int(v), 1.0) for v in y]) * 1.04 ** (y - 2020)
    lam = act.sejours.to_numpy() * ESIN_RATE * mult[i] * u_i[i] * yf
    low = np.zeros(n, dtype=bool)
    low[design["low_decl"]] = True
    lowy = low[i] & (y >= last - 1)
    lam[lowy] *= 0.12
    s = rng.poisson(lam)
    # un établissement déclarant signale au moins un épisode par an
    s = np.maximum(s, 1)
    nr = np.zeros(n, dtype=bool)
    nr[design["non_decl"]] = True
    zero = (nr[i] & ((y == last) | (rng.random(len(y)) < 0.75)))
    # quelques années isolées sans signalement chez les petits établissements
    small = est.cat.isin(["smr", "psy", "had", "hl", "mecss", "poup"]).to_numpy()[i]
    zero |= small & (rng.random(len(y)) < 0.03) & (y < last)
    s[zero] = 0
    # responsable connecté : propension stable, en hausse avec le temps
    prop = rng.random(n)
    p_y = np.clip(0.70 + 0.035 * (y - 2017), 0.5, 0.95)
    conn = (prop[i] + rng.normal(0, 0.05, len(y))) < p_y
    conn[nr[i]] = (prop[i][nr[i]] + 0.3) < p_y[nr[i]]
    return pd.DataFrame({"i": i, "annee": y, "signalements": s, "responsable_connecte": conn})


def _certification(est, design, seed, national, first, last) -> pd.DataFrame:
    rng = _rng(seed, national, "certif")
    is_e = np.zeros(len(est), dtype=bool)
    is_e[design["cert_e"]] = True
    rows = []
    letters = np.array(["A", "B", "C", "D", "E"])
    p_first = np.array([0.22, 0.50, 0.19, 0.06, 0.03])
    p_follow = np.array([0.05, 0.62, 0.25, 0.05, 0.03])
    v2020 = {"A": "certifie_mention", "B": "certifie", "C": "certifie_sous_conditions", "D": "certifie_sous_conditions",
             "E": "non_certifie"}
    open_y, close_y = est.open_y.to_numpy(), est.close_y.to_numpy()
    for k in range(len(est)):
        if open_y[k] > first:
            y = open_y[k] + 1 + int(rng.integers(0, 2))
        else:
            y = first - 1 - int(rng.integers(0, 5))
        seq = []
        prev = "B"
        while y <= min(close_y[k], last):
            p = p_follow if prev in "CDE" else p_first
            lvl = str(rng.choice(letters, p=p))
            seq.append([y, int(rng.integers(15, 350)), lvl])
            prev = lvl
            y += int(rng.integers(1, 3)) if lvl in "CDE" else int(rng.integers(4, 7))
        if not seq:
            continue
        if is_e[k]:
            seq[-1][2] = "E"
            if seq[-1][0] < last - 1:  # décision récente
                seq.append([last - int(rng.integers(0, 2)), int(rng.integers(15, 330)), "E"])
        elif seq[-1][2] == "E":
            seq[-1][2] = "C"
        for y, off, lvl in seq:
            v2020_share = 0.0 if y < 2021 else (0.6 if y <= 2022 else 1.0)
            label = v2020[lvl] if rng.random() < v2020_share else lvl
            rows.append((k, y, off, label))
    df = pd.DataFrame(rows, columns=["i", "y", "off", "niveau"])
    df["date"] = _days(df.y.to_numpy(), df.off.to_numpy())
    df = df.drop_duplicates(["i", "date"], keep="last")
    return df[["i", "date", "niveau"]]


QLS_MEAN = lambda c: 48.0 + 3.3 * (c - 2016)  # noqa: E731 — médiane régionale attendue, en hausse
QLS_SECTOR = {"MCO": 0.0, "SSR": 3.0, "PSY": -6.0}


def _wilson(p: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    den = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return centre - half, centre + half


def _qls(est, design, seed, national, first, last) -> pd.DataFrame:
    rng = _rng(seed, national, "qls")
    camps = _campaigns(first, last)
    if not camps:
        return pd.DataFrame(columns=["i", "annee", "secteur", "score", "n_dossiers", "ic_bas", "ic_haut"])
    n = len(est)
    excluded = est.spec.isin(EXCLUDED_QLS).to_numpy()
    parts = []
    for sector, col in (("MCO", "mco"), ("SSR", "ssr"), ("PSY", "psy")):
        holds = (est[col].to_numpy() == 1) & ~excluded
        idx = np.flatnonzero(holds)
        for c in camps:
            if sector == "PSY" and c < 2022:
                continue
            active = (est.open_y.to_numpy()[idx] <= c - 1) & (est.close_y.to_numpy()[idx] >= c)
            parts.append(pd.DataFrame({"i": idx[active], "annee": c, "secteur": sector}))
    q = pd.concat(parts, ignore_index=True)
    i = q.i.to_numpy()
    eff = rng.normal(0, 10, n) + np.where(est.statut.to_numpy() == "prive_lucratif", 2.0, 0.0)
    sec_off = q.secteur.map(QLS_SECTOR).to_numpy()
    score = np.array([QLS_MEAN(c) for c in q.annee]) + sec_off + eff[i] + rng.normal(0, 5, len(q))
    score = np.clip(score, 3.0, 100.0)
    # non-participation ponctuelle
    drop = rng.random(len(q)) < 0.04
    last_c = camps[-1]
    low = np.zeros(n, dtype=bool)
    low[design["qls_low"]] = True
    eq20 = np.zeros(n, dtype=bool)
    eq20[design["qls_20"]] = True
    prev = np.zeros(n, dtype=bool)
    prev[design["qls_prev"]] = True
    persist = np.zeros(n, dtype=bool)
    persist[design["qls_low"][:1]] = True  # le premier reste sous 20 % deux campagnes de suite
    prev_c = camps[-2] if len(camps) >= 2 else None
    special = low | eq20 | prev
    drop &= ~(special[i] & q.annee.isin([last_c, prev_c]).to_numpy())
    # établissements en rupture : un secteur (le premier détenu) très bas
    first_sector = q[special[i]].groupby("i").secteur.first()
    target = special[i] & (q.secteur.to_numpy() == first_sector.reindex(i).to_numpy())
    is_last = q.annee.to_numpy() == last_c
    is_prev = q.annee.to_numpy() == prev_c
    m = target & low[i] & is_last
    score[m] = rng.uniform(6.0, 19.4, m.sum())
    m = target & low[i] & ~is_last
    score[m] = rng.uniform(22.0, 42.0, m.sum())
    m = target & persist[i] & is_prev
    score[m] = rng.uniform(10.0, 19.4, m.sum())
    m = target & eq20[i] & is_last
    score[m] = 20.0
    m = target & prev[i] & is_prev
    score[m] = rng.uniform(8.0, 19.4, m.sum())
    m = target & prev[i] & is_last
    score[m] = rng.uniform(42.0, 55.0, m.sum())
    score = np.round(score, 1)
    size = est["size"].to_numpy()[i]
    nd = np.where(q.secteur.to_numpy() == "MCO", 80, 60)
    small = size < 0.35
    nd = np.where(small, rng.integers(30, 61, len(q)), nd)
    with_ic = (rng.random(n) < 0.5)[i]
    lo, hi = _wilson(score / 100.0, nd.astype(float))
    ic_bas = np.where(with_ic, np.floor(lo * 1000) / 10, np.nan)
    ic_haut = np.where(with_ic, np.ceil(hi * 1000) / 10, np.nan)
    ic_bas = np.minimum(ic_bas, score)
    ic_haut = np.clip(np.maximum(ic_haut, score), None, 100.0)
    q["score"], q["n_dossiers"], q["ic_bas"], q["ic_haut"] = score, nd, ic_bas, ic_haut
    q = q[~drop].reset_index(drop=True)
    return q


def _formation(est, panel, seed, national) -> pd.DataFrame:
    rng = _rng(seed, national, "formation")
    n = len(est)
    keep = rng.random(len(panel)) >= 0.04
    p = panel[keep]
    i = np.repeat(p.i.to_numpy(), 3)
    y = np.repeat(p.annee.to_numpy(), 3)
    k = np.tile(np.arange(3), len(p))
    shares = np.array([CATEGORIES[c]["parts"] for c in est.cat])
    eff = est.staff_base.to_numpy()[i] * shares[i, k] * 1.01 ** (y - 2020) * rng.normal(1, 0.03, len(i))
    eff = np.maximum(1, np.round(eff)).astype(int)
    b = rng.normal(0.72, 0.08, n)
    off = np.array([-0.08, 0.03, -0.04])[k]
    rate = np.clip(b[i] + off + 0.025 * (y - 2020) + rng.normal(0, 0.03, len(i)), 0.5, 1.0)
    formes = rng.binomial(eff, rate)
    return pd.DataFrame({"i": i, "annee": y, "categorie_personnel": np.array(PERSONNEL)[k],
                         "effectif": eff, "formes": formes, "b": b[i]})


def _audits(est, panel, seed, national) -> pd.DataFrame:
    rng = _rng(seed, national, "audits")
    p = panel[rng.random(len(panel)) >= 0.05]
    i, y = p.i.to_numpy(), p.annee.to_numpy()
    lam = np.clip(2.2 + 5.0 * np.sqrt(est["size"].to_numpy()[i]) + 0.3 * (y - 2020), 0.5, None)
    total = np.minimum(rng.poisson(lam), 12)
    prec = rng.binomial(total, np.clip(0.6 + 0.03 * (y - 2020), 0.3, 0.9))
    return pd.DataFrame({"i": i, "annee": y, "audits_total": total, "audits_precautions": prec})


def _plan(est, panel, seed, national) -> pd.DataFrame:
    rng = _rng(seed, national, "plan")
    p = panel[rng.random(len(panel)) >= 0.06]
    i, y = p.i.to_numpy(), p.annee.to_numpy()
    b = rng.uniform(11.5, 17.5, len(est))
    r = np.clip(np.round(b[i] + 0.7 * (y - 2020) + rng.normal(0, 1.0, len(i))), 10, 20).astype(int)
    return pd.DataFrame({"i": i, "annee": y, "criteres_remplis": r, "criteres_total": 20})


# --- engagements et plans d'actions ----------------------------------------------------------------

ACTIONS = {
    "certification": [
        "Réaliser une auto-évaluation sur le référentiel de certification",
        "Mettre en place un comité de pilotage qualité et gestion des risques",
        "Traiter les écarts relevés lors de la dernière visite",
        "Préparer la visite de suivi de la HAS",
        "Former les pilotes de processus à la méthode du patient traceur",
    ],
    "lettre_liaison": [
        "Déployer un modèle unique de lettre de liaison dans le dossier patient informatisé",
        "Auditer chaque trimestre la remise de la lettre le jour de la sortie",
        "Sensibiliser les internes, les médecins et les cadres à la lettre de liaison",
        "Envoyer la lettre de liaison par messagerie sécurisée de santé",
        "Désigner un référent « parcours de sortie » par pôle",
    ],
    "signalement_esin": [
        "Désigner le responsable du signalement et ses suppléants",
        "Créer les comptes e-SIN du responsable et de l'équipe d'hygiène",
        "Rédiger la procédure interne de signalement des infections associées aux soins",
        "Présenter le bilan annuel des signalements en CME",
        "Former les cadres de santé, de jour comme de nuit, au circuit de signalement",
    ],
    "prevention_ias": [
        "Organiser des sessions de formation à l'hygiène des mains",
        "Réaliser l'audit national sur les précautions standard",
        "Mettre à jour le plan local de maîtrise des épidémies",
        "Intégrer les précautions complémentaires au plan de formation",
        "Conduire un exercice de gestion d'épidémie",
    ],
}
PILOTES = {
    "certification": ["Directeur qualité et gestion des risques", "Directeur de l'établissement",
                      "Président de la CME"],
    "lettre_liaison": ["Président de la CME", "Médecin DIM", "Directrice des soins"],
    "signalement_esin": ["Responsable du signalement", "Équipe opérationnelle d'hygiène", "Président de la CME"],
    "prevention_ias": ["Équipe opérationnelle d'hygiène", "Cadre de santé hygiéniste", "Directrice des soins"],
}


def _engagements(est, design, form, seed, national, last) -> pd.DataFrame:
    rng = _rng(seed, national, "engagements")
    n = len(est)
    active_last = (est.close_y == last).to_numpy()
    pairs: dict[tuple[int, str], str] = {}

    def add(idx, eng, period):
        for k in np.atleast_1d(idx):
            pairs.setdefault((int(k), eng), period)

    cur = lambda: "B" if rng.random() < 0.6 else "C"  # noqa: E731 — CPOM en cours la dernière année
    for k in design["cert_e"]:
        add(k, "certification", cur())
    for k in design["qls_low"]:
        add(k, "lettre_liaison", cur())
    for k in design["low_decl"]:
        add(k, "signalement_esin", cur())
    nd = design["non_decl"]
    for k in nd[rng.random(len(nd)) < 0.6]:
        add(k, "signalement_esin", cur())
    # prévention des IAS : établissements dont le taux de formation est le plus faible
    b = form.groupby("i").b.first().reindex(range(n)).fillna(1.0).to_numpy()
    weak = np.flatnonzero(active_last & (b < np.quantile(b, 0.12)))
    for k in weak:
        add(k, "prevention_ias", cur())
    # engagements complémentaires des établissements déjà suivis
    followed = sorted({k for k, _ in pairs})
    for k in followed:
        for eng in ("certification", "lettre_liaison", "prevention_ias"):
            if rng.random() < 0.18:
                add(k, eng, cur())
    # anciens CPOM échus (suivis les années précédentes seulement)
    old_ok = (~np.isin(np.arange(n), followed) & (est.open_y <= last - 5).to_numpy()
              & (est.close_y >= last - 1).to_numpy())
    old = rng.choice(np.flatnonzero(old_ok), size=min(int(old_ok.sum()), max(1, int(round(n * 0.03)))),
                     replace=False)
    for k in np.sort(old):
        add(k, str(rng.choice(["certification", "lettre_liaison", "prevention_ias"])), "A")
    periods = {"A": (last - 5, last - 1), "B": (last, last + 4), "C": (last - 2, last + 2)}
    keys = sorted(pairs, key=lambda t: (est.finess.iat[t[0]], t[1]))
    i = np.array([k for k, _ in keys], dtype=int)
    eng = [e for _, e in keys]
    deb = np.array([periods[pairs[t]][0] for t in keys])
    fin = np.array([periods[pairs[t]][1] for t in keys])
    deb = np.maximum(deb, est.open_y.to_numpy()[i])
    sig = _days(deb - 1, rng.integers(300, 420, len(keys)))
    cible = np.array([""] * len(keys), dtype=object)
    ll = [j for j, e in enumerate(eng) if e == "lettre_liaison" and periods[pairs[keys[j]]][1] >= last]
    if len(ll) >= 2:
        cible[ll[0]] = "60"
        cible[ll[-1]] = "85"
    return pd.DataFrame({"i": i, "engagement": eng, "date_signature": _iso(sig), "annee_debut": deb,
                         "annee_fin": fin, "cible": cible})


def _plans_actions(eng: pd.DataFrame, seed, national, last) -> pd.DataFrame:
    rng = _rng(seed, national, "actions")
    rows = []
    for r in eng.itertuples(index=False):
        k = int(rng.integers(1, 4))
        acts = rng.choice(len(ACTIONS[r.engagement]), size=k, replace=False)
        for a in np.sort(acts):
            y = int(rng.integers(r.annee_debut, min(r.annee_fin, last + 2) + 1))
            ech = _days(np.array([y]), np.array([int(rng.integers(30, 360))]))[0]
            u = rng.random()
            if y < last:
                st = "realise" if u < 0.68 else ("en_cours" if u < 0.92 else "abandonne")
            elif y == last:
                st = "en_cours" if u < 0.5 else ("realise" if u < 0.8 else "a_faire")
            else:
                st = "a_faire" if u < 0.6 else "en_cours"
            pil = PILOTES[r.engagement][int(rng.integers(len(PILOTES[r.engagement])))]
            rows.append((r.i, r.engagement, ACTIONS[r.engagement][a], pil, str(ech), st))
    return pd.DataFrame(rows, columns=["i", "engagement", "action", "pilote", "echeance", "statut"])


# --- e-Satis --------------------------------------------------------------------------------------

ESATIS_COLUMNS = [
    "finess", "rs_finess", "finess_geo", "rs_finess_geo", "region", "type", "participation", "Depot",
    "nb_rep_score_ALL_ssr_ajust", "score_ALL_ssr_ajust", "classement", "evolution",
    "score_ACCUEIL_ssr_ajust", "nb_rep_score_ACCUEIL_ssr_ajust", "score_PEC_ssr_ajust",
    "nb_rep_score_PEC_ssr_ajust", "score_LIEU_ssr_ajust", "nb_rep_score_LIEU_ssr_ajust",
    "score_REPAS_ssr_ajust", "nb_rep_score_REPAS_ssr_ajust", "score_SORTIE_ssr_ajust",
    "nb_rep_score_SORTIE_ssr_ajust", "score_ALL_ssr_ajust_dp", "taux_reco_brut", "nb_reco_brut",
    "SCORE_AJUST_ESATIS_REGION", "SCORE_AJUST_ESATIS_TYPE",
]
ESATIS_TYPE = {"public": "Centre Hospitaliers",
               "prive_non_lucratif": "Etablissements de santé privés à but non lucratif",
               "prive_lucratif": "Etablissements de santé privés à but lucratif"}


def _num_text(v: float) -> str:
    """Nombre écrit en texte comme dans le fichier HAS (``91.18``, ``76``)."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return s


def _esatis_rows(est, seed, national, last) -> list[list]:
    rng = _rng(seed, national, "esatis")
    m = ((est.ssr == 1) & (est.close_y == last) & (est.open_y <= last - 1)
         & ~est.spec.isin(["mecss", "pouponniere"])).to_numpy()
    idx = np.flatnonzero(m)
    k = len(idx)
    cls_u = rng.random(k)
    # DI 32 %, NV 3 %, NR 1 %, sinon score ajusté -> classe A–D (seuils du fichier HAS 2024)
    base = rng.normal(75.5, 4.2, k)
    nb = np.maximum(30, np.round(rng.lognormal(4.1, 0.6, k))).astype(int)
    rows_num = []
    for j, k_i in enumerate(idx):
        r = est.iloc[k_i]
        typ = "Centre Hospitalo-Universitaires" if r["cat"] == "chu" else ESATIS_TYPE[r.statut]
        common = [r.finess_ej, str(r.ej_name).upper(), r.finess, str(r["name"]).upper(), REGIONS[r.region]["has"], typ]
        u = cls_u[j]
        if not national and j < 2:  # au moins un NR et un NV dans la démo régionale
            u = 0.345 if j == 0 else 0.355
        if u < 0.32:
            rows_num.append((common + ["2- Facultatif", "1- Oui"], "DI", None))
        elif u < 0.35:
            rows_num.append((common + ["1- Obligatoire", "1- Oui"], "NV", None))
        elif u < 0.36:
            rows_num.append((common + ["1- Obligatoire", "2- Non"], "NR", None))
        else:
            s = float(np.round(np.clip(base[j], 50.0, 90.0), 2))
            part = "1- Obligatoire" if nb[j] >= 60 and rng.random() < 0.6 else "2- Facultatif"
            rows_num.append((common + [part, "1- Oui"], "score", s))
    # moyennes régionales et par type des scores publiés
    scores = [(row[4], row[5], s) for row, c, s in rows_num if c == "score"]
    reg_mean: dict[str, list[float]] = {}
    typ_mean: dict[str, list[float]] = {}
    for reg, typ, s in scores:
        reg_mean.setdefault(reg, []).append(s)
        typ_mean.setdefault(typ, []).append(s)
    out = []
    for j, (row, c, s) in enumerate(rows_num):
        if c != "score":
            out.append(row + ["", None, c, "", "", None, "", None, "", None, "", None, "", None,
                              None, None, None, None, None])
            continue
        cl = "A" if s >= 76.62 else ("B" if s >= 72.9 else ("C" if s >= 68.7 else "D"))
        evo_p = {"A": ([0.6, 0.25, 0.15, 0.0]), "B": ([0.4, 0.25, 0.2, 0.15]), "C": ([0.3, 0.2, 0.3, 0.2]),
                 "D": ([0.35, 0.0, 0.4, 0.25])}[cl]
        evo = str(rng.choice(["2-Stable", "3-Amélioration", "4-Non calculable", "1-Diminution"], p=evo_p))
        n = int(nb[j])
        subs = np.clip(s + np.array([8.0, 3.5, 0.0, -9.0, -4.0]) + rng.normal(0, 3, 5), 30, 100)
        reco = float(np.round(np.clip(s - 5 + rng.normal(0, 10), 20, 98), 1))
        out.append(row + [str(n), s, cl, evo,
                          _num_text(subs[0]), n, _num_text(subs[1]), n, _num_text(subs[2]), n,
                          _num_text(subs[3]), n, _num_text(subs[4]), n, int(math.floor(s)),
                          (int(reco) if reco == int(reco) else reco), max(1, n - int(rng.integers(0, 3))),
                          float(np.round(np.mean(reg_mean[row[4]]), 2)),
                          float(np.round(np.mean(typ_mean[row[5]]), 2))])
    return out


def _write_esatis(rows: list[list], path: Path, last: int) -> None:
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    wb = Workbook()
    ws = wb.active
    ws.title = "Resultats"
    ws.append(ESATIS_COLUMNS)
    for r in rows:
        ws.append(r)
    fixed = datetime(last, 10, 29, 12, 0, 0)
    wb.properties.creator = "analysis.demo (données fictives)"
    wb.properties.lastModifiedBy = "analysis.demo"
    wb.properties.created = fixed
    wb.properties.modified = fixed
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    # ré-emballage avec des horodatages fixes et sans compression (indépendant de la version de zlib)
    # pour un fichier identique octet pour octet
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in src.namelist():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o600 << 16
            dst.writestr(info, src.read(name))
    path.write_bytes(out.getvalue())


# --- contrôle qualité du recueil QLS ---------------------------------------------------------------

QLS_CONTROLES = 12  # établissements dont la délégation départementale réaudite des dossiers
QLS_CRITERES = 10
# facilité de chaque critère de contenu (écart à la probabilité moyenne d'être rempli) et part de
# dossiers où il ne s'applique pas : les examens en attente et les modifications de traitement
# manquent le plus souvent
QLS_FACILITE = np.array([0.07, 0.09, 0.03, 0.06, 0.02, -0.04, -0.09, -0.02, -0.12, -0.06])
QLS_NA = np.array([0.0, 0.0, 0.0, 0.0, 0.01, 0.0, 0.22, 0.03, 0.30, 0.02])
CONTROLEURS = ["Dr Anne Lefrançois", "Dr Pierre Guérin", "Dr Claire Lemaître", "Dr Yann Le Bihan",
               "Dr Sophie Vautier"]


def _t_upper(scores: np.ndarray, conf: float = 0.95) -> tuple[float, float, float]:
    from scipy import stats as sps

    n = len(scores)
    m = float(scores.mean())
    half = float(sps.t.ppf(0.5 + conf / 2, n - 1)) * float(scores.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half


def _dossiers(rng: np.random.Generator, target: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` dossiers dont le score moyen attendu est ``target`` (0–100) : (lettre retrouvée, datée du
    jour de la sortie, critères 1 à 10 en 1 / 0 / -1 pour non applicable) et score de chaque dossier
    (règle par défaut : 0 si un critère indispensable manque, sinon critères remplis / applicables,
    indispensables compris)."""
    t = min(max(target / 100.0, 0.02), 0.99)
    p_fail = min(max(1.0 - t - 0.08, 0.02), 0.85)
    r = min(t / (1.0 - p_fail), 0.995)
    m = float(QLS_CRITERES - QLS_NA.sum())
    q = np.clip((r * (2 + m) - 2) / m + QLS_FACILITE, 0.0, 1.0)
    fail = rng.random(n) < p_fail
    lost = fail & (rng.random(n) < 0.45)  # lettre introuvable (donc non datée) ; sinon non datée du jour
    found, dated = ~lost, ~fail
    met = (rng.random((n, QLS_CRITERES)) < q).astype(int)
    na = rng.random((n, QLS_CRITERES)) < QLS_NA
    crit = np.where(na, -1, met)
    app = (crit >= 0).sum(axis=1)
    ok = (crit == 1).sum(axis=1)
    score = np.where(found & dated, 100.0 * (ok + 2) / (app + 2), 0.0)
    return np.column_stack([found, dated]), crit, score


def _qls_dossiers(est, tables, design, seed, national, last) -> pd.DataFrame:
    """Campagne de contrôle du recueil QLS de la dernière campagne : une douzaine d'établissements de
    la région, 30 à 80 dossiers chacun ; deux surcotent nettement (l'un suivi sur la lettre de
    liaison et déclaré au-dessus de la cible, l'autre déclaré juste au-dessus du seuil de ciblage),
    les autres déclarent un score compatible avec le réaudit."""
    rng = _rng(seed, national, "controle")
    q = tables["qls"].copy()
    q["v"] = pd.to_numeric(q["score"].str.replace(",", "."), errors="coerce")
    camp = int(pd.to_numeric(q["annee"]).max())
    fin = est.finess.to_numpy()
    special = set().union(*[set(fin[v]) for v in design.values()])
    q = q[(pd.to_numeric(q["annee"]) == camp) & q["v"].between(0, 100) & q["finess_geo"].isin(fin)
          & ~q["finess_geo"].isin(special)]
    q = q.drop_duplicates("finess_geo").reset_index(drop=True)  # un secteur contrôlé par établissement
    e = tables["engagements"]
    ll = set(e.loc[(e.engagement == "lettre_liaison") & (pd.to_numeric(e.annee_debut) <= last)
                   & (pd.to_numeric(e.annee_fin) >= last), "finess_geo"])
    cand1 = (q.index[q["finess_geo"].isin(ll) & (q["v"] >= 80)].tolist() or q.index[q["v"] >= 75].tolist()
             or [int(q["v"].idxmax())])
    over1 = int(rng.choice(cand1))
    cand2 = ([k for k in q.index[q["v"].between(26, 45)].tolist() if k != over1]
             or [k for k in q.index[q["v"] >= 26].tolist() if k != over1])
    over2 = int(rng.choice(cand2))
    rest = [k for k in q.index if k not in (over1, over2)]
    others = sorted(int(k) for k in rng.choice(rest, size=QLS_CONTROLES - 2, replace=False))
    chosen = sorted([over1, over2] + others)
    rows = []
    for k in chosen:
        r = q.loc[k]
        declared = float(r["v"])
        n = int(rng.integers(30, 81))
        over = k in (over1, over2)
        target = declared - 28.0 if k == over1 else (12.0 if k == over2 else declared)
        for _ in range(50):  # tirage refait tant que le réaudit ne dit pas ce qui est voulu
            crit2, crit, score = _dossiers(rng, target, n)
            _, lo, hi = _t_upper(score)
            if (declared > hi) == over and (over or declared >= lo - 3):
                break
        ctrl = CONTROLEURS[int(rng.integers(len(CONTROLEURS)))]
        day = _days(np.array([camp + 1]), np.array([int(rng.integers(20, 150))]))[0]
        words = {1: "oui", 0: "non", -1: "NA"}
        for j in range(n):
            rows.append([r["finess_geo"], str(camp), r["secteur"], f"{camp}-{r['secteur']}-{j + 1:03d}",
                         "oui" if crit2[j, 0] else "non", "oui" if crit2[j, 1] else "non",
                         *[words[int(x)] for x in crit[j]], ctrl, str(day)])
    cols = (["finess_geo", "annee", "secteur", "dossier", "lettre_retrouvee", "datee_jour_sortie"]
            + [f"critere_{c + 1:02d}" for c in range(QLS_CRITERES)] + ["controleur", "date_controle"])
    return pd.DataFrame(rows, columns=cols)


# --- anomalies volontaires ------------------------------------------------------------------------

def _inject_faults(est, tables, design, seed, last, first) -> dict[str, str]:
    """Modifie les tables (chaînes déjà formatées) ; renvoie une description par anomalie."""
    rng = _rng(seed, False, "faults")
    designated = set().union(*[set(map(int, v)) for v in design.values()])
    stable = np.flatnonzero(((est.open_y == first) & (est.close_y == last)).to_numpy())
    pool = [k for k in stable if k not in designated]
    order = list(rng.permutation(pool))
    fin = est.finess.to_numpy()
    notes: dict[str, str] = {}

    def take(cond=lambda k: True) -> int:
        for j, k in enumerate(order):
            if cond(int(k)):
                order.pop(j)
                return int(k)
        raise RuntimeError("aucun établissement disponible pour l'anomalie")

    # 1. finess_ej sur 8 chiffres : fondation dont le siège est dans l'Aisne (02)
    e = tables["etablissements"]
    k1 = take(lambda k: est.cat.iat[k] == "smr" and est.statut.iat[k] == "prive_non_lucratif")
    k2 = take(lambda k: est.cat.iat[k] == "smr" and est.statut.iat[k] == "prive_non_lucratif")
    ej = _finess_numbers("02", 1, rng, set(est.finess) | set(est.finess_ej))[0]
    for k in (k1, k2):
        e.loc[e["FINESS géo"] == fin[k], "finess_ej"] = ej.lstrip("0")
        est.at[k, "finess_ej"] = ej
        est.at[k, "ej_name"] = "Fondation Sainte-Colombe de l'Aisne"
    notes["finess_ej_8_chiffres"] = (f"etablissements.csv : finess_ej {ej.lstrip('0')} (8 chiffres) "
                                     f"pour {fin[k1]} et {fin[k2]}")
    # 2. séjours négatifs
    a = tables["activite"]
    k = take(lambda k: est.cat.iat[k] == "smr")
    j = a.index[(a.finess_geo == fin[k]) & (a.annee == str(last - 3))][0]
    a.at[j, "sejours"] = "-1520"
    notes["sejours_negatif"] = f"activite.csv : {fin[k]} {last - 3} sejours = -1520"
    # 3. date de décision illisible
    c = tables["certification"]
    cand = c[c.finess_geo.isin(fin[[o for o in order]]) & c.date_decision.str[-4:].astype(int).between(first, last - 2)]
    j = cand.index[0]
    y = c.at[j, "date_decision"][-4:]
    c.at[j, "date_decision"] = f"31/06/{y}"
    notes["date_illisible"] = f"certification.csv : {c.at[j, 'finess_geo']} date_decision 31/06/{y}"
    order[:] = [o for o in order if fin[o] != c.at[j, "finess_geo"]]
    # 4. score QLS à 104 (campagne N-2)
    q = tables["qls"]
    camps = _campaigns(first, last)
    c2 = camps[-2] if len(camps) >= 2 else camps[-1]
    cand = q[q.finess_geo.isin(fin[[o for o in order]]) & (q.annee == str(c2))]
    j = cand.index[0]
    q.at[j, "score"], q.at[j, "ic_bas"], q.at[j, "ic_haut"] = "104", "", ""
    notes["score_104"] = f"qls.csv : {q.at[j, 'finess_geo']} {c2} {q.at[j, 'secteur']} score = 104"
    order[:] = [o for o in order if fin[o] != q.at[j, "finess_geo"]]
    # 5. FINESS inconnu du référentiel (site fermé et radié)
    unknown = _finess_numbers("76", 1, rng, set(est.finess) | set(est.finess_ej) | {ej})[0]
    row = {"finess_geo": unknown, "annee": str(c2), "secteur": "MCO", "score": "58,3", "n_dossiers": "80",
           "ic_bas": "", "ic_haut": ""}
    tables["qls"] = pd.concat([q, pd.DataFrame([row])], ignore_index=True)
    tables["qls"] = tables["qls"].sort_values(["finess_geo", "annee", "secteur"], kind="stable").reset_index(drop=True)
    notes["finess_inconnu"] = f"qls.csv : FINESS {unknown} absent du référentiel ({c2}, MCO)"
    # 6. doublon exact dans esin (copier-coller de la ligne précédente)
    s = tables["esin"]
    k = take()
    j = s.index[(s.finess_geo == fin[k]) & (s.annee == str(last))][0]
    s = pd.concat([s.iloc[: j + 1], s.iloc[[j]], s.iloc[j + 1:]], ignore_index=True)
    tables["esin"] = s
    notes["doublon_exact_esin"] = f"esin.csv : ligne {fin[k]} {last} présente deux fois à l'identique"
    # 7. doublon conflictuel dans audits (ressaisie ajoutée en fin de fichier)
    au = tables["audits"]
    k = take(lambda k: ((au.finess_geo == fin[k]) & (au.annee == str(last - 1))).any())
    j = au.index[(au.finess_geo == fin[k]) & (au.annee == str(last - 1))][0]
    dup = au.loc[[j]].copy()
    tot = int(dup.audits_total.iat[0])
    dup["audits_total"] = str(tot + 2)
    dup["audits_precautions"] = str(int(dup.audits_precautions.iat[0]) + 1)
    tables["audits"] = pd.concat([au, dup], ignore_index=True)
    notes["doublon_conflictuel_audits"] = (f"audits.csv : {fin[k]} {last - 1} en double avec des valeurs "
                                           f"différentes ({tot}/{au.at[j, 'audits_precautions']} puis "
                                           f"{tot + 2}/{dup.audits_precautions.iat[0]})")
    # 8. formés > effectif
    f = tables["formation"]
    col_e, col_f = "Effectif", "Formés"
    k = take(lambda k: ((f.finess_geo == fin[k]) & (f.annee == str(last - 1))).any())
    j = f.index[(f.finess_geo == fin[k]) & (f.annee == str(last - 1)) & (f["Catégorie personnel"] == "medical")][0]
    eff = int(f.at[j, col_e])
    f.at[j, col_f] = str(eff + 2)
    f.at[j, "Taux formés"] = _dec_comma([100.0 * (eff + 2) / eff])[0]
    notes["formes_sup_effectif"] = f"formation.csv : {fin[k]} {last - 1} medical formés {eff + 2} > effectif {eff}"
    return notes


# --- point d'entrée --------------------------------------------------------------------------------

def _marker_text(seed: int, national: bool, first: int, last: int, counts: dict[str, int],
                 notes: dict[str, str]) -> str:
    perimetre = ("les 18 régions (codes INSEE 01 à 94)" if national
                 else f"une région fictive (code INSEE {DEMO_REGION}, {REGIONS[DEMO_REGION]['nom']})")
    lines = [
        "DONNÉES FICTIVES — NE PAS UTILISER POUR UNE DÉCISION",
        "",
        "Les fichiers de ce dossier forment un jeu de démonstration entièrement fictif, produit par",
        "la commande « python -m analysis demo » (module analysis.demo).",
        f"Graine du générateur : {seed}. Périmètre : {perimetre}. Années : {first} à {last}.",
        f"Établissements : {counts['etablissements.csv']}.",
        "",
        "Raisons sociales, numéros FINESS (troisième caractère « 9 », absent des numéros réels publiés)",
        "et valeurs des indicateurs sont inventés ; toute ressemblance avec un établissement existant",
        "serait fortuite. Le fichier esatis reprend seulement la disposition des colonnes du fichier",
        "e-Satis SSR publié par la HAS.",
    ]
    if notes:
        lines += ["", "Anomalies volontaires, pour illustrer le contrôle de la qualité des données :"]
        lines += [f"- {notes[k]}" for k in FAULT_IDS if k in notes]
    lines += ["", "La présence de ce fichier déclenche le bandeau « données fictives » du rapport.", ""]
    return "\n".join(lines)


def generate_demo(out_dir: Path, *, seed: int = 2024, national: bool = False,
                  first_year: int = 2017, last_year: int = 2024) -> dict[str, int]:
    """Écrit les fichiers bruts de démonstration dans ``out_dir`` ; renvoie {nom de fichier: lignes de données}."""
    first, last = int(first_year), int(last_year)
    if first > last:
        raise ValueError(f"Première année ({first}) postérieure à la dernière ({last}).")
    if last - first < 3:
        raise ValueError("La démonstration demande au moins quatre années (first_year ≤ last_year - 3).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    years = list(range(first, last + 1))

    est = _build_establishments(seed, national, first, last)
    design = _designate(est, seed, national, first, last)
    panel = _panel(est, years)
    act = _activite(est, panel, seed, national)
    esin = _esin(est, act, design, seed, national, last)
    cert = _certification(est, design, seed, national, first, last)
    qls = _qls(est, design, seed, national, first, last)
    form = _formation(est, panel, seed, national)
    aud = _audits(est, panel, seed, national)
    plan = _plan(est, panel, seed, national)
    eng = _engagements(est, design, form, seed, national, last)
    pa = _plans_actions(eng, seed, national, last)

    fin = est.finess.to_numpy()
    s = str
    tables: dict[str, pd.DataFrame] = {}
    tables["etablissements"] = pd.DataFrame({
        "FINESS géo": fin, "finess_ej": est.finess_ej.to_numpy(), "Raison sociale": est["name"].to_numpy(),
        "departement": est.dep.to_numpy(), "region": est.region.to_numpy(), "statut": est.statut.to_numpy(),
        "categorie": est.categorie.to_numpy(), "mco": est.mco.astype(s).to_numpy(),
        "ssr": est.ssr.astype(s).to_numpy(), "psy": est.psy.astype(s).to_numpy(),
        "had": est.had.astype(s).to_numpy(), "specificite": est.spec.to_numpy(),
        "lits": ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v)) for v in est.lits],
    })
    tables["activite"] = pd.DataFrame({"finess_geo": fin[act.i], "annee": act.annee.astype(s).to_numpy(),
                                       "sejours": act.sejours.astype(s).to_numpy()})
    cert = cert.assign(f=fin[cert.i]).sort_values(["f", "date"], kind="stable")
    tables["certification"] = pd.DataFrame({"finess_geo": cert.f.to_numpy(), "date_decision": _fr(cert.date.to_numpy()),
                                            "niveau": cert.niveau.to_numpy()}).reset_index(drop=True)
    camps = _campaigns(first, last)
    sect = qls.secteur.to_numpy().copy()
    sect[(qls.annee.to_numpy() == camps[-1]) & (sect == "SSR") & (camps[-1] >= 2023)] = "SMR"
    tables["qls"] = pd.DataFrame({"finess_geo": fin[qls.i], "annee": qls.annee.astype(s).to_numpy(),
                                  "secteur": sect, "score": _dec_comma(qls.score.to_numpy()),
                                  "n_dossiers": qls.n_dossiers.astype(s).to_numpy(),
                                  "ic_bas": _dec_comma(qls.ic_bas.to_numpy()),
                                  "ic_haut": _dec_comma(qls.ic_haut.to_numpy())})
    tables["qls"] = tables["qls"].sort_values(["finess_geo", "annee", "secteur"], kind="stable").reset_index(drop=True)
    tables["esin"] = pd.DataFrame({"finess_geo": fin[esin.i], "annee": esin.annee.astype(s).to_numpy(),
                                   "signalements": esin.signalements.astype(s).to_numpy(),
                                   "responsable_connecte": np.where(esin.responsable_connecte, "Oui", "Non")})
    saisie = _days(form.annee.to_numpy() + 1, np.full(len(form), 89))
    tables["formation"] = pd.DataFrame({
        "finess_geo": fin[form.i], "annee": form.annee.astype(s).to_numpy(),
        "Catégorie personnel": form.categorie_personnel.to_numpy(), "Effectif": form.effectif.astype(s).to_numpy(),
        "Formés": form.formes.astype(s).to_numpy(),
        "Taux formés": _dec_comma(100.0 * form.formes.to_numpy() / form.effectif.to_numpy()),
        "Date de saisie": _fr(saisie)})
    tables["audits"] = pd.DataFrame({"finess_geo": fin[aud.i], "annee": aud.annee.astype(s).to_numpy(),
                                     "audits_total": aud.audits_total.astype(s).to_numpy(),
                                     "audits_precautions": aud.audits_precautions.astype(s).to_numpy()})
    tables["plan_epidemies"] = pd.DataFrame({"finess_geo": fin[plan.i], "annee": plan.annee.astype(s).to_numpy(),
                                             "criteres_remplis": plan.criteres_remplis.astype(s).to_numpy(),
                                             "criteres_total": plan.criteres_total.astype(s).to_numpy()})
    tables["engagements"] = pd.DataFrame({"finess_geo": fin[eng.i], "engagement": eng.engagement.to_numpy(),
                                          "date_signature": eng.date_signature.to_numpy(),
                                          "annee_debut": eng.annee_debut.astype(s).to_numpy(),
                                          "annee_fin": eng.annee_fin.astype(s).to_numpy(),
                                          "cible": eng.cible.to_numpy()})
    tables["plans_actions"] = pd.DataFrame({"finess_geo": fin[pa.i.to_numpy().astype(int)],
                                            "engagement": pa.engagement.to_numpy(), "action": pa.action.to_numpy(),
                                            "pilote": pa.pilote.to_numpy(), "echeance": pa.echeance.to_numpy(),
                                            "statut": pa.statut.to_numpy()})
    notes: dict[str, str] = {}
    if not national:
        notes = _inject_faults(est, tables, design, seed, last, first)
        tables["qls_dossiers"] = _qls_dossiers(est, tables, design, seed, national, last)

    formats = {
        "etablissements": dict(bom=True), "formation": dict(encoding="cp1252"), "plans_actions": dict(sep=","),
    }
    counts: dict[str, int] = {}
    for name in ("etablissements", "activite", "certification", "qls", "esin", "formation", "audits",
                 "plan_epidemies", "engagements", "plans_actions", "qls_dossiers"):
        if name not in tables:
            continue
        _write_csv(tables[name], out_dir / f"{name}.csv", **formats.get(name, {}))
        counts[f"{name}.csv"] = len(tables[name])
    rows = _esatis_rows(est, seed, national, last)
    xlsx = f"esatis_ssr_{last}.xlsx"
    _write_esatis(rows, out_dir / xlsx, last)
    counts[xlsx] = len(rows)
    (out_dir / MARKER_FILE).write_bytes(_marker_text(seed, national, first, last, counts, notes).encode("utf-8"))
    return counts
