"""Interface en ligne de commande : ``python -m analysis report|verify|demo|bench``."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from ..reading.files import InputError

YEAR_MIN, YEAR_MAX = 2000, 2100  # CPOM quality indicators exist since the 2000s


def _year(text: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) != 4:
        raise argparse.ArgumentTypeError(f"année invalide : « {text} » (4 chiffres attendus, par exemple 2024)")
    year = int(text)
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise argparse.ArgumentTypeError(
            f"année invalide : « {text} » (une année entre {YEAR_MIN} et {YEAR_MAX} est attendue, par exemple 2024)"
        )
    return year


#: textes d'argparse (aide, erreurs d'usage) en français : CPython n'en livre pas de traduction ;
#: argparse les passe par gettext (``argparse._``), remplacé ici par cette table (texte d'origine
#: gardé pour ceux qui n'y sont pas)
ARGPARSE_FR = {
    "usage: ": "utilisation : ",
    "positional arguments": "arguments",
    "options": "options",
    "show this help message and exit": "affiche cette aide et quitte",
    "%(prog)s: error: %(message)s\n": "%(prog)s : erreur : %(message)s\n",
    "argument %(argument_name)s: %(message)s": "argument %(argument_name)s : %(message)s",
    "the following arguments are required: %s": "arguments obligatoires manquants : %s",
    "unrecognized arguments: %s": "arguments non reconnus : %s",
    "expected one argument": "une valeur est attendue",
    "invalid choice: %(value)r (choose from %(choices)s)": "choix invalide : %(value)r (choix possibles : %(choices)s)",
    "invalid %(type)s value: %(value)r": "valeur invalide : %(value)r",
    "ambiguous option: %(option)s could match %(matches)s": "option ambiguë : %(option)s peut désigner %(matches)s",
}


def _french(text: str) -> str:
    return ARGPARSE_FR.get(text, text)


argparse._ = _french


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis", description="Suivi qualité des CPOM (ARS).")
    sub = p.add_subparsers(dest="command", required=True, metavar="commande")

    r = sub.add_parser("report", help="construit le rapport annuel d'une région")
    r.add_argument("--data", default="data/raw", help="dossier des fichiers d'entrée")
    r.add_argument("--out", default="reports", help="dossier de sortie")
    r.add_argument("--annee", type=_year, default=None, help="année du rapport (défaut : la dernière des données)")
    r.add_argument("--region", default="", help="code INSEE de la région (défaut : la seule présente)")
    r.add_argument("--rules", default="", help="fichier de règles (défaut : config/regles_cpom.yml)")
    r.add_argument("--processed", default="data/processed", help="dossier des tables nettoyées")
    r.add_argument("--jobs", type=int, default=1, help="processus pour les fiches (défaut 1)")
    r.add_argument("--sans-fiches", action="store_true", help="ne pas produire les fiches établissement")
    r.add_argument("--force", action="store_true", help="refaire même si rien n'a changé")
    r.add_argument("--quiet", action="store_true", help="n'affiche pas la progression")
    r.add_argument("--debug", action="store_true", help="affiche la trace Python complète en cas d'erreur")

    v = sub.add_parser("verify", help="refait un rapport publié d'après son manifeste et compare ses sorties")
    v.add_argument("rapport", help="dossier du rapport publié (<out>/<annee>/<region>)")
    v.add_argument("--data", default="", help="dossier des entrées (défaut : celui du manifeste)")
    v.add_argument("--rules", default="", help="fichier de règles (défaut : celui du manifeste)")
    v.add_argument("--jobs", type=int, default=2, help="processus pour les fiches (défaut 2)")
    v.add_argument("--quiet", action="store_true", help="n'affiche pas la progression de la nouvelle exécution")
    v.add_argument("--debug", action="store_true", help="affiche la trace Python complète en cas d'erreur")

    d = sub.add_parser("demo", help="régénère les données fictives de démonstration")
    d.add_argument("--out", default="data/raw")
    d.add_argument("--seed", type=int, default=2024)
    d.add_argument("--national", action="store_true", help="18 régions (jeu national synthétique)")

    doc = sub.add_parser("doc", help="régénère docs/sources-et-indicateurs.md depuis le fichier de règles")
    doc.add_argument("--rules", default="", help="fichier de règles (défaut : config/regles_cpom.yml)")
    doc.add_argument("--out", default="docs/sources-et-indicateurs.md")

    b = sub.add_parser("bench", help="mesure les performances (voir README)")
    b.add_argument("--out", default="reports")
    b.add_argument("--quick", action="store_true", help="répétitions réduites")
    b.add_argument("--bqss", action="store_true", help="seulement la lecture de la BQSS (paire synthétique)")
    return p


def _setup_logging() -> None:
    """Progression sur la sortie d'erreur, sans préfixe (messages déjà horodatés et en français)."""
    logger = logging.getLogger("analysis")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    _setup_logging()
    try:
        if args.command == "report":
            from .pipeline import Params, build_report

            params = Params(
                data_dir=Path(args.data),
                out_dir=Path(args.out),
                annee=args.annee,
                region=(args.region or "").strip() or None,
                rules=Path(args.rules) if args.rules else None,
                processed_dir=Path(args.processed),
                jobs=max(1, args.jobs),
                quiet=args.quiet,
                force=args.force,
                fiches=not args.sans_fiches,
            )
            build_report(params)
        elif args.command == "verify":
            from .verify import main as verify_main

            return verify_main(args.rapport, data=args.data, rules=args.rules, jobs=max(1, args.jobs),
                               quiet=args.quiet)
        elif args.command == "demo":
            from tools.demo import generate_demo

            counts = generate_demo(Path(args.out), seed=args.seed, national=args.national)
            for name, n in counts.items():
                print(f"{name}: {n} lignes")
        elif args.command == "doc":
            from ..publishing.docs import render_docs
            from ..rules.model import load_rules

            Path(args.out).write_text(render_docs(load_rules(args.rules or None)), encoding="utf-8")
            print(f"Documentation écrite dans « {args.out} ».")
        elif args.command == "bench":
            from tools.bench import run_bench

            run_bench(Path(args.out), quick=args.quick, only_bqss=args.bqss)
        return 0
    except InputError as exc:
        print(f"Erreur dans les données d'entrée : {exc}", file=sys.stderr)
        print("Aucun rapport précédent n'a été modifié.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrompu. Aucun rapport précédent n'a été modifié.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last-resort message for analysts
        if debug:
            traceback.print_exc()
        print(f"Erreur : {exc}", file=sys.stderr)
        print("Aucun rapport précédent n'a été modifié. Relancez avec --debug pour la trace complète.", file=sys.stderr)
        return 1
