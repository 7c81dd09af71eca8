"""Orchestration du rapport annuel : lecture, notebooks Papermill, rendus, manifeste, remplacement atomique.

Étapes de ``build_report`` :

1. empreinte des entrées (fichiers, règles, code, paramètres) : si elle n'a pas changé depuis la
   dernière exécution réussie, rien n'est refait ;
2. lecture et validation du dossier d'entrée (erreur claire et arrêt avant toute écriture) ;
3. tables nettoyées en Parquet dans ``data/processed/<empreinte>/`` ;
4. notebooks exécutés dans l'ordre par Papermill dans un dossier temporaire ;
5. rapport HTML et PDF, fiches établissement, classeur XLSX, manifeste ;
6. le dossier temporaire remplace ``<out>/<annee>/<region>/`` seulement si tout a réussi.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..reading.files import InputError

log = logging.getLogger("analysis")

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = PACKAGE_DIR.parents[1]
NOTEBOOKS_DIR = PROJECT_DIR / "notebooks"
NOTEBOOKS = [
    "01_qualite_donnees.ipynb",
    "02_ciblage.ipynb",
    "03_suivi_engagements.ipynb",
    "04_tendances.ipynb",
    "05_rapport_annuel.ipynb",
]
#: ordre d'exécution. Les résultats sont calculés étape par étape (ciblage, suivi, tendances) pendant
#: que le noyau exécute le notebook 01 (qui n'en a pas besoin), puis 02 dès que le ciblage est fait et
#: 03 dès que le suivi l'est ; le notebook du rapport passe avant 04 : avec ``--jobs`` > 1, le rapport
#: HTML et PDF est composé par ce processus pendant que le noyau exécute 04. Le contenu de chaque
#: notebook ne dépend pas de l'ordre : chacun ne lit que les étapes qu'il attend (:data:`NOTEBOOK_STAGE`).
EXECUTION_ORDER = [NOTEBOOKS[0], NOTEBOOKS[1], NOTEBOOKS[2], NOTEBOOKS[4], NOTEBOOKS[3]]
#: dernière étape des résultats que lit chaque notebook (``ctx.results(étape)`` ; ``None`` : aucune)
NOTEBOOK_STAGE = {NOTEBOOKS[0]: None, NOTEBOOKS[1]: "ciblage", NOTEBOOKS[2]: "suivi",
                  NOTEBOOKS[3]: "tendances", NOTEBOOKS[4]: "tendances"}
KERNEL_NAME = "cpom-qualite"
FICTIF_MARKER = "DONNEES_FICTIVES.txt"


@dataclass
class Params:
    data_dir: Path
    out_dir: Path
    annee: int | None = None
    region: str | None = None
    rules: Path | None = None
    processed_dir: Path = Path("data/processed")
    jobs: int = 1
    quiet: bool = False
    force: bool = False
    fiches: bool = True


@dataclass
class Progress:
    quiet: bool = False
    t0: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    #: fiches de la région : moteur, rendues, reprises du cache ; avertissements (textes nettoyés)
    fiches: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: régions dont le rapport publié a été repris tel quel (empreinte de la région inchangée)
    reused: list[str] = field(default_factory=list)
    #: chronologie de la construction : moment (s depuis le lancement) où chaque étape finit ou commence,
    #: écrite dans le manifeste (``chronologie_s``) : ce qui attend quoi, et donc ce qui limite la durée
    events: dict[str, float] = field(default_factory=dict)

    def say(self, msg: str) -> None:
        if not self.quiet:
            log.info("[%6.1f s] %s", time.perf_counter() - self.t0, msg)

    def timed(self, name: str):
        prog = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                prog.timings[name] = prog.timings.get(name, 0.0) + time.perf_counter() - self.t

        return _T()

    def mark(self, name: str) -> None:
        """Note le moment de ``name`` (la première fois seulement ; appelable d'un autre fil)."""
        self.events.setdefault(name, round(time.perf_counter() - self.t0, 2))


# ------------------------------------------------------------------------------------------
# Fingerprints (kept import-light: the unchanged re-run must answer fast)


def _sha_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 du code : paquet (sources, modèles, feuilles de style), notebooks et verrou des
    versions. Calculée une fois par processus (une exécution ne change pas de code en cours de
    route ; elle sert aux clés des caches, à la clé de la région et au manifeste)."""
    h = hashlib.sha256()
    files = sorted(
        [p for p in PACKAGE_DIR.rglob("*") if p.is_file() and p.suffix in (".py", ".j2", ".css", ".js", ".csv", ".tpl", ".json", ".html", ".typ")]
        + list(NOTEBOOKS_DIR.glob("*.ipynb"))
        + [PROJECT_DIR / "requirements.lock"]
    )
    for p in files:
        if p.exists() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(PROJECT_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def input_fingerprint(params: Params) -> dict:
    from ..reading.files import INPUT_SUFFIXES, sha256_file

    files = []
    if params.data_dir.is_dir():
        for p in sorted(params.data_dir.iterdir()):
            if p.is_file() and (p.suffix.lower() in INPUT_SUFFIXES or p.name == FICTIF_MARKER):
                files.append([p.name, sha256_file(p)])
    rules_path = params.rules or (PROJECT_DIR / "config" / "regles_cpom.yml")
    return {
        "fichiers": files,
        "regles": sha256_file(rules_path) if Path(rules_path).is_file() else None,
        "code": code_fingerprint(),
        "annee": params.annee,
        "region": params.region,
        "fiches": params.fiches,
    }


def _state_file(params: Params) -> Path:
    key = json.dumps(
        [str(params.data_dir.resolve()), params.annee, params.region, str(params.rules or ""), params.fiches]
    )
    return params.out_dir / ".etat" / f"{_sha_bytes(key.encode())[:16]}.json"


def up_to_date(params: Params) -> tuple[bool, str, dict]:
    fp = input_fingerprint(params)
    digest = _sha_bytes(json.dumps(fp, sort_keys=True).encode())
    state = _state_file(params)
    if params.force or not state.is_file():
        return False, digest, fp
    try:
        saved = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, digest, fp
    targets = [Path(d) for d in saved.get("dossiers", [])]
    if saved.get("empreinte") != digest or not targets:
        return False, digest, fp
    for target in targets:
        manifest = target / "manifest.json"
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
            if m.get("empreinte") != digest:
                return False, digest, fp
            if not outputs_intact(target, m):
                return False, digest, {**fp, "sorties_modifiees": str(target)}
        except (OSError, ValueError, TypeError, KeyError):
            return False, digest, fp
    return True, digest, {"dossiers": [str(t) for t in targets]}


def fiches_digest(folder: Path) -> str:
    """One SHA-256 over every sheet PDF of ``folder/fiches`` (names and contents)."""
    from ..reading.files import sha256_file

    h = hashlib.sha256()
    fiches = folder / "fiches"
    if fiches.is_dir():
        for p in sorted(fiches.glob("*.pdf")):
            h.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def outputs_intact(target: Path, manifest: dict) -> bool:
    """Every output recorded in the manifest is still there with the recorded SHA-256 (an output
    deleted or damaged since the last run makes the report to be rebuilt)."""
    from ..reading.files import sha256_file

    for o in manifest["sorties"]:
        p = target / o["fichier"]
        if not p.is_file() or sha256_file(p) != o["sha256"]:
            return False
    if "fiches_empreinte" in manifest and fiches_digest(target) != manifest["fiches_empreinte"]:
        return False
    n = len(list((target / "fiches").glob("*.pdf"))) if (target / "fiches").is_dir() else 0
    return n == manifest.get("fiches", n)


# ------------------------------------------------------------------------------------------
# Parameters resolved from data


def resolve_year(tables: dict, annee: int | None, rules=None) -> int:
    """Année demandée, sinon la dernière année des sources annuelles (données datées à défaut).

    Une année demandée dont aucune source annuelle n'a de ligne arrête le travail (rapport vide de sens)."""
    annual = {name: df for name, df in tables.items()
              if name not in ("etablissements", "engagements") and df is not None and len(df) and "annee" in df.columns}
    present: set[int] = set()
    for df in annual.values():
        present.update(int(y) for y in df["annee"].dropna().unique())
    if annee is not None:
        if present and int(annee) not in present:
            names = ", ".join(annual)
            raise InputError(
                f"Aucune donnée pour l'année {int(annee)} dans les sources annuelles ({names}) : un rapport "
                f"{int(annee)} serait vide de sens. Années présentes : {min(present)} à {max(present)}. "
                f"Choisissez une de ces années avec ANNEE=…, ou déposez les fichiers de {int(annee)}."
            )
        return int(annee)
    years = [int(df["annee"].max()) for df in annual.values()]
    dated = []
    if rules is not None:
        for _, _, ind in rules.indicators():
            df = tables.get(ind.source)
            if ind.date and df is not None and len(df):
                dated.append(int(df[ind.date].dt.year.max()))
    if years:
        return max(years)
    if dated:
        return max(dated)
    raise InputError("Aucune donnée annuelle trouvée : précisez l'année du rapport avec ANNEE=….")


def resolve_region(tables: dict, region: str | None) -> str:
    regions = sorted(tables["etablissements"]["region"].dropna().unique().tolist())
    if region:
        region = str(region).strip()
        if len(region) == 1 and region.isdigit():
            region = "0" + region
        if region not in regions:
            raise InputError(
                f"La région « {region} » n'apparaît pas dans le référentiel des établissements "
                f"(régions présentes : {', '.join(regions) or 'aucune'})."
            )
        return region
    if len(regions) == 1:
        return regions[0]
    if not regions:
        raise InputError("Le référentiel des établissements ne contient aucune région valide.")
    raise InputError(
        "Le référentiel contient plusieurs régions ("
        + ", ".join(regions)
        + ") : un rapport couvre une seule région. Choisissez-la avec REGION=… (par exemple "
        + f"make report REGION={regions[0]})."
    )


# ------------------------------------------------------------------------------------------
# Kernel


def ensure_kernel() -> str:
    """Install (in this environment) a kernelspec pointing at this interpreter, so that a stale
    user-level ``python3`` kernelspec can never be used instead."""
    kdir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec = {
        # sans historique IPython : rien n'est écrit dans ~/.ipython, et chaque remise à zéro du
        # noyau partagé n'ouvre pas une session dans sa base SQLite
        "argv": [sys.executable, "-m", "ipykernel_launcher", "--HistoryManager.enabled=False",
                 "-f", "{connection_file}"],
        "display_name": "CPOM qualité",
        "language": "python",
        "env": {"PYTHONHASHSEED": "0", "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    text = json.dumps(spec, indent=1, sort_keys=True)
    target = kdir / "kernel.json"
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        from ..cache import write_atomic

        kdir.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text.encode("utf-8"))  # d'un coup : des tests en parallèle le lisent
    return KERNEL_NAME


SHARED_ENGINE = "cpom-noyau-partage"
_ENGINE_REGISTERED: list[bool] = []


def _register_shared_engine() -> str:
    """Moteur Papermill identique au moteur ``nbclient`` par défaut, mais qui exécute le notebook
    dans un noyau déjà démarré (``km=…``) et ferme ensuite les canaux du client."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    if _ENGINE_REGISTERED:
        return SHARED_ENGINE

    class SharedKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs,
                timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
            )
            kc = final_kwargs.pop("kc", None)
            client = PapermillNotebookClient(nb_man, **final_kwargs)
            # client du noyau partagé, prêt une fois pour toutes : nbclient en créerait un par
            # notebook et attendrait à chaque fois qu'il soit prêt (0,2 s d'attente fixe chacun)
            client.kc = kc
            # Papermill réécrit le notebook entier au début et à la fin de chaque cellule (85 fois
            # pour le rapport : plus d'une seconde de sérialisation, noyau à l'arrêt) : écrit une
            # seule fois ici, à la fin (``notebook_complete``), y compris en cas d'échec.
            output_path, nb_man.output_path = nb_man.output_path, None
            try:
                return client.execute()
            finally:
                nb_man.output_path = output_path
                if kc is None and client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(SHARED_ENGINE, SharedKernelEngine)
    _ENGINE_REGISTERED.append(True)
    return SHARED_ENGINE


async def wait_until_ready(client, km, timeout: float) -> None:
    """Attend que le noyau réponde à ``client`` sur ses deux canaux : réponse à une demande
    ``kernel_info`` sur le canal « shell », puis, sur le canal IOPub, le statut « idle » de cette même
    demande (le noyau publie ses messages dans l'ordre : tout ce qui précède est alors reçu et
    écarté). ``client.wait_for_ready`` de jupyter_client fait le même contrôle mais vide ensuite
    IOPub jusqu'à 0,2 s de silence : 0,2 s d'attente fixe par client, deux fois par construction
    (mesuré : 0,4 s d'une relance, noyau inactif). Si IOPub n'est pas encore abonné (message
    manqué), la demande est renvoyée."""
    import time
    from queue import Empty

    from jupyter_core.utils import ensure_async

    deadline = time.monotonic() + timeout
    while True:
        msg_id = client.kernel_info()
        try:
            while True:  # réponse à cette demande (une réponse à une demande précédente est écartée)
                reply = await ensure_async(client.shell_channel.get_msg(timeout=1))
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            while True:
                msg = await ensure_async(client.iopub_channel.get_msg(timeout=1))
                if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                        and msg["content"].get("execution_state") == "idle"):
                    return
        except Empty:
            if not await ensure_async(km.is_alive()):
                raise RuntimeError("Le noyau des notebooks s'est arrêté avant de répondre.") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"Le noyau des notebooks n'a pas répondu en {timeout:.0f} s.") from None


class NotebookKernel:
    """Un noyau Jupyter réutilisé par les notebooks successifs (d'une ou plusieurs régions).

    Démarrer un noyau puis y importer pandas, matplotlib et le paquet coûte 1,5 à 2 s : une fois
    par noyau plutôt qu'une fois par notebook (SciPy n'est importé qu'au premier
    calcul statistique, que le noyau ne fait pas quand les résultats sont déjà calculés). Le processus du noyau est lancé au tout début
    (:meth:`launch`, avant que le processus principal importe pandas) et importe ces modules dès son
    démarrage, pendant que le processus principal lit les données ; ses canaux ZMQ sont ouverts
    ensuite (:meth:`connect`), après la création des autres processus. Avant chaque notebook,
    l'espace de noms est remis à zéro (``reset(new_session=True)`` : variables effacées, compteur
    d'exécution à 1, comme dans un noyau neuf) et le dossier courant fixé ; seuls les modules
    déjà importés restent en mémoire (chaque notebook les importe et configure matplotlib
    lui-même). Les registres « avertissement déjà affiché » sont invalidés pour que chaque
    notebook affiche ses avertissements comme dans un noyau neuf.
    """

    # modules importés d'avance par le noyau dès son démarrage (lignes ``exec_lines`` d'IPython, avant
    # qu'il ne réponde), puis gelés pour le ramasse-miettes (ses passages complets ne les parcourent
    # plus : les notebooks créent beaucoup d'objets)
    WARM_UP = ("import analysis.orchestration.context, analysis.publishing.figures, analysis.publishing.report, "
               "analysis.indicators.results",
               "__import__('gc').freeze()")

    def __init__(self) -> None:
        self.km = None
        self._kc = None
        self.client = None  # client asynchrone prêt, passé à nbclient pour chaque notebook
        self._ready = False
        self._connected = False

    def launch(self) -> "NotebookKernel":
        """Lance le processus du noyau, qui importe aussitôt :data:`WARM_UP`, sans rien ouvrir de
        ZMQ dans ce processus (fichier de connexion et processus seulement) : appelé avant que ce
        processus importe pandas, et avant de créer par « fork » les processus des résultats et des
        fiches, qui n'héritent ainsi d'aucun contexte ZMQ. :meth:`connect` ouvre ensuite les canaux."""
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        class _LaunchOnlyKernelManager(AsyncKernelManager):
            # la fin du démarrage (socket de contrôle, ZMQ) est faite par connect()
            async def _async_post_start_kernel(self, **kw):
                self.cpom_post_start = kw

        self.km = _LaunchOnlyKernelManager(kernel_name=ensure_kernel())
        run_sync(self.km.start_kernel)(
            extra_arguments=[f"--IPKernelApp.exec_lines={line}" for line in self.WARM_UP])
        return self

    def connect(self) -> "NotebookKernel":
        """Fin du démarrage : socket de contrôle du gestionnaire et client des demandes du rapport
        (canaux ouverts sans attendre : le noyau importe pendant que l'appelant continue)."""
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        if self.km is None:
            self.launch()
        if not self._connected:
            run_sync(AsyncKernelManager._async_post_start_kernel)(self.km, **self.km.cpom_post_start)
            self._kc = self.km.blocking_client()
            self._kc.start_channels(hb=False)
            self._connected = True
        return self

    def start(self) -> "NotebookKernel":
        return self.launch().connect()

    def reset(self, cwd: Path) -> None:
        """Remet le noyau dans l'état d'un noyau neuf démarré dans ``cwd`` (modules importés mis à part)."""
        self.connect()
        if not self._ready:
            from jupyter_core.utils import run_sync

            run_sync(wait_until_ready)(self._kc, self.km, timeout=120)
            self.client = self.km.client()
            self.client.allow_stdin = False  # comme les clients de nbclient : input() échoue, ne bloque pas
            self.client.start_channels()
            run_sync(wait_until_ready)(self.client, self.km, timeout=120)
            self._ready = True
        code = (
            f"__import__('os').chdir({str(cwd)!r})\n"
            "__import__('warnings').filterwarnings('default', append=True)\n"
            "get_ipython().reset(new_session=True)\n"
            "__import__('gc').collect()\n"
        )
        reply = self._kc.execute_interactive(code, silent=True, store_history=False, timeout=600)
        if reply["content"].get("status") != "ok":
            c = reply["content"]
            raise RuntimeError(f"Le noyau n'a pas pu être réinitialisé : {c.get('ename')} : {c.get('evalue')}")

    def stop(self) -> None:
        from jupyter_core.utils import run_sync

        for client in (self._kc, self.client):
            if client is not None:
                client.stop_channels()
        self._kc = self.client = None
        if self.km is not None:
            try:
                # arrêté sans attendre (0,4 s d'arrêt « poli » sinon) : le noyau n'a rien à écrire
                # (historique IPython désactivé, voir ensure_kernel), et un noyau jamais utilisé
                # (entrées invalides) s'arrête sans l'interruption et la trace d'un arrêt poli
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - noyau déjà arrêté
                pass
            self.km = None
        self._ready = self._connected = False

    def __enter__(self) -> "NotebookKernel":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_notebook(name: str, out_path: Path, parameters: dict, cwd: Path,
                 kernel: NotebookKernel | None = None) -> None:
    """Exécute ``notebooks/<name>`` avec Papermill ; dans ``kernel`` (réinitialisé) s'il est donné,
    sinon dans un noyau neuf."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    cwd = Path(cwd).resolve()  # the shared kernel changes directory: never pass it a relative path
    extra: dict = {}
    if kernel is not None:
        kernel.reset(cwd)
        extra = {"engine_name": _register_shared_engine(), "km": kernel.km, "kc": kernel.client}
    try:
        pm.execute_notebook(
            str(NOTEBOOKS_DIR / name),
            str(out_path),
            parameters=parameters,
            kernel_name=ensure_kernel(),
            progress_bar=False,
            log_output=False,
            cwd=str(cwd),
            report_mode=False,
            **extra,
        )
    except PapermillExecutionError as exc:
        raise NotebookFailed(name, Path(out_path), f"(cellule {exc.exec_count}) : {exc.ename} : {exc.evalue}") from exc


class NotebookFailed(RuntimeError):
    """Échec d'un notebook ; ``path`` : le notebook exécuté (avec la trace de l'erreur)."""

    def __init__(self, name: str, path: Path, detail: str) -> None:
        self.name, self.path, self.detail = name, path, detail
        super().__init__(f"Le notebook « {name} » a échoué {detail}. Le notebook exécuté est conservé dans « {path} ».")

    def __reduce__(self):  # renvoyée telle quelle par un processus de région (REGION=toutes)
        return (type(self), (self.name, self.path, self.detail))


def keep_failed_notebook(exc: NotebookFailed, out_dir: Path, annee, region: str) -> NotebookFailed:
    """Copie le notebook exécuté qui a échoué dans ``<out>/.echecs/<annee>-<region>/`` (le dossier
    temporaire est effacé) et renvoie l'erreur qui pointe vers cette copie."""
    dest_dir = out_dir / ".echecs" / f"{annee}-{region}"
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / exc.path.name
        shutil.copyfile(exc.path, dest)
    except OSError:
        return exc
    return NotebookFailed(exc.name, dest, exc.detail)


# ------------------------------------------------------------------------------------------
# Atomic replacement


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False when the
    system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(tmp: Path, final: Path) -> None:
    """``tmp`` remplace ``final``. Avec un échange atomique, il n'existe aucun instant sans rapport
    à l'emplacement attendu ; sinon l'ancien est mis de côté (``.ancien-<nom>-<pid>``) puis le neuf
    mis en place, et une exécution interrompue entre les deux est réparée au lancement suivant
    (:func:`recover_leftovers`)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.parent / f".ancien-{final.name}-{os.getpid()}"
    if final.exists() and _exchange(tmp, final):
        os.replace(tmp, old)  # tmp now holds the previous report
        shutil.rmtree(old, ignore_errors=True)
        return
    if final.exists():
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        if old.exists():
            os.replace(old, final)
        raise
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


_LEFTOVER = re.compile(r"^\.(tmp|ancien)-(.+)-(\d+)$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def recover_leftovers(out_dir: Path, processed_dir: Path) -> list[str]:
    """Après un arrêt brutal (kill, disque plein) : dossiers temporaires ``.tmp-*`` effacés, rapport
    précédent laissé de côté (``<out>/<annee>/.ancien-<region>-<pid>``) remis à sa place s'il
    n'y a plus de rapport, effacé sinon. Les dossiers d'une exécution encore en cours (son numéro
    de processus existe) ne sont pas touchés. Renvoie ce qui a été fait."""
    done: list[str] = []
    for folder in (out_dir, processed_dir):
        if not folder.is_dir():
            continue
        for p in folder.glob(".tmp-*"):
            m = _LEFTOVER.match(p.name)
            if m and p.is_dir() and not _pid_alive(int(m.group(3))):
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"dossier temporaire effacé : {p}")
    if out_dir.is_dir():
        for p in out_dir.glob("*/.ancien-*"):
            m = _LEFTOVER.match(p.name)
            if not m or not p.is_dir() or _pid_alive(int(m.group(3))):
                continue
            final = p.parent / m.group(2)
            if final.exists():
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"ancien rapport effacé : {p}")
            else:
                os.replace(p, final)
                done.append(f"rapport précédent remis en place : {final}")
    return done


# ------------------------------------------------------------------------------------------
# Build


def _versions() -> dict:
    """Versions installées (copie de :func:`_installed_versions`, lues une fois par processus)."""
    return dict(_installed_versions())


@functools.lru_cache(maxsize=1)
def _installed_versions() -> dict:
    # lues dans les métadonnées des paquets (0,02 s par appel) ; appelé par les clés des caches, la
    # clé de la région et le manifeste
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in (
        "cpom-qualite", "pandas", "numpy", "scipy", "matplotlib", "seaborn", "papermill",
        "nbconvert", "nbformat", "ipykernel", "weasyprint", "typst", "openpyxl", "pyarrow", "pypdf", "PyYAML", "Jinja2",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _git_commit() -> str | None:
    """Commit du code (``git rev-parse HEAD``), ``None`` hors d'un dépôt git ou sans git."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


#: sous-dossier du dossier des tables nettoyées où sont gardées les sources déjà validées
VALIDATION_CACHE = ".cache-lecture"
#: sous-dossier de ``processed_dir`` : fichiers d'entrée déjà lus (clé : nom et octets du fichier)
READ_CACHE = ".cache-fichiers"
#: sous-dossier de ``processed_dir`` : tables nettoyées déjà écrites en Parquet (clé : leur contenu)
TABLE_CACHE = ".cache-tables"


def cache_salt() -> str:
    """Ce dont dépend toute entrée des caches de lecture et de calcul en plus de ses propres
    données : le code (empreinte) et les versions des bibliothèques."""
    return json.dumps([code_fingerprint(), _versions()], sort_keys=True)


def clean_inputs(params: Params, rules: dict, progress: Progress):
    """Lit et valide les entrées. Un fichier dont le nom et les octets n'ont pas changé n'est pas relu
    (``<processed>/.cache-fichiers``) ; une source dont la table lue de ses fichiers, le référentiel,
    les règles, le code et les versions n'ont pas changé est reprise validée
    (``<processed>/.cache-lecture``) ; avec ``--force``, tout est lu et validé à nouveau."""
    from ..cache import ContentCache
    from ..reading.cleaning import VALIDATION_CACHE_MAX_BYTES, VALIDATION_CACHE_MAX_ENTRIES, clean_folder

    cache = ContentCache(params.processed_dir / VALIDATION_CACHE, suffix=".pickle")
    read_cache = ContentCache(params.processed_dir / READ_CACHE, suffix=".pickle")
    if params.force:
        for folder in (cache.folder, read_cache.folder, params.processed_dir / TABLE_CACHE):
            shutil.rmtree(folder, ignore_errors=True)
    salt = cache_salt()
    with progress.timed("lecture"):
        result = clean_folder(params.data_dir, rules, cache=cache, cache_salt=salt, read_cache=read_cache)
    cache.prune(VALIDATION_CACHE_MAX_ENTRIES, VALIDATION_CACHE_MAX_BYTES)
    read_cache.prune(VALIDATION_CACHE_MAX_ENTRIES, VALIDATION_CACHE_MAX_BYTES)
    return result


ALL_REGIONS = ("toutes", "all", "*")


@dataclass
class Prepared:
    rules: dict
    result: object  # CleanResult
    annee: int
    fictif: bool
    processed: Path
    lecture_s: float = 0.0


def prepare(params: Params, progress: Progress) -> Prepared:
    """Read and validate the inputs once; write the cleaned tables (shared by every region)."""
    from ..reading.cleaning import write_processed
    from ..rules.loader import load_rules

    rules = load_rules(params.rules)
    # the rules are read once (load_rules): the bytes hashed in the manifest are the ones validated,
    # and a copy of them in the cache entry is what the notebooks load
    progress.say(f"Lecture des données de « {params.data_dir} »…")
    result = clean_inputs(params, rules, progress)
    _check_referential(result)
    annee = resolve_year(result.tables, params.annee, rules)
    fictif = (params.data_dir / FICTIF_MARKER).is_file()
    progress.say(
        f"{sum(f.lignes_lues for f in result.files)} lignes lues, {len(result.rejects)} rejet(s) ; "
        f"rapport {annee}{' (données fictives)' if fictif else ''}."
    )
    # The cleaned tables depend on the inputs, the rules and the code only (not on year/region).
    # le nom du fichier de règles compte aussi : sa copie « regles/<nom> » est ce que lisent les notebooks
    key = json.dumps([[f.fichier, f.sha256] for f in result.files] + [rules.name, rules.sha256, code_fingerprint()])
    digest = _sha_bytes(key.encode())[:16]
    processed = params.processed_dir / digest
    if params.force or not cache_intact(processed):
        tmp_proc = params.processed_dir / f".tmp-{digest}-{os.getpid()}"
        shutil.rmtree(tmp_proc, ignore_errors=True)
        from ..cache import ContentCache
        from ..reading.cleaning import VALIDATION_CACHE_MAX_BYTES, VALIDATION_CACHE_MAX_ENTRIES

        tables = ContentCache(params.processed_dir / TABLE_CACHE, suffix=".parquet")
        write_processed(result, tmp_proc, cache=tables, cache_salt=cache_salt())
        tables.prune(VALIDATION_CACHE_MAX_ENTRIES, VALIDATION_CACHE_MAX_BYTES)
        _write_json(tmp_proc / "lecture.json", {"avertissements": result.warnings,
                                                 "sources_absentes": result.absent_sources,
                                                 "fichiers_ignores": result.ignored_files,
                                                 "regles": {"fichier": rules.name, "sha256": rules.sha256}})
        # les octets des règles validées, lus une seule fois : les notebooks appliquent exactement
        # les règles dont le manifeste donne l'empreinte, même si le fichier change pendant l'exécution
        (tmp_proc / "regles").mkdir()
        (tmp_proc / "regles" / rules.name).write_text(rules.text, encoding="utf-8")
        _write_json(tmp_proc / CACHE_SUMS, {p.relative_to(tmp_proc).as_posix(): _sha_bytes(p.read_bytes())
                                            for p in sorted(tmp_proc.rglob("*")) if p.is_file()})
        if processed.exists():  # damaged, or --force: set aside, then replaced
            aside = params.processed_dir / f".tmp-ancien-{digest}-{os.getpid()}"
            try:
                os.replace(processed, aside)
            except OSError:
                pass
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp_proc, processed)
        except OSError:  # written meanwhile by a parallel run: identical content
            shutil.rmtree(tmp_proc, ignore_errors=True)
    return Prepared(rules=rules, result=result, annee=annee, fictif=fictif, processed=processed,
                    lecture_s=progress.timings.get("lecture", 0.0))


CACHE_SUMS = "sommes.json"


def cache_intact(processed: Path) -> bool:
    """The cleaned tables of ``processed`` are complete and undamaged (SHA-256 recorded at writing)."""
    try:
        sums = json.loads((processed / CACHE_SUMS).read_text(encoding="utf-8"))
        if not isinstance(sums, dict) or "fichiers.parquet" not in sums \
                or not any(name.startswith("regles/") for name in sums):
            return False
        return all(_sha_bytes((processed / name).read_bytes()) == sha for name, sha in sums.items())
    except (OSError, ValueError, TypeError):
        return False


def _check_referential(result) -> None:
    etab = result.tables.get("etablissements")
    if etab is not None and len(etab):
        return
    files = [f for f in result.files if f.source == "etablissements"]
    read = sum(f.lignes_lues for f in files)
    names = ", ".join(f.fichier for f in files)
    if not read:
        detail = "il ne contient aucune ligne de données (en-tête seul)"
    else:
        rej = result.rejects[result.rejects["fichier"].isin([f.fichier for f in files])]
        motifs = "; ".join(f"ligne {r.ligne}, {r.colonne or 'ligne'} : {r.motif}" for r in rej.head(3).itertuples())
        detail = f"ses {read} ligne(s) ont toutes été rejetées (par exemple : {motifs})"
    raise InputError(
        f"Le référentiel des établissements « {names} » est vide : {detail}. Aucun rapport ne peut être "
        "produit sans établissement."
    )


def build_region(params: Params, prep: Prepared, region: str, digest: str, progress: Progress,
                 kernel: NotebookKernel | None = None, pool=None, release_kernel: bool = True,
                 stages=None) -> Path:
    """Notebooks, renderings and manifest of one region, written atomically.

    Déroulement : empreinte des données de la région (rapport publié gardé tel quel si elle n'a pas
    changé, voir :func:`region_key`) ; résultats calculés étape par étape (dans le processus des
    résultats ``stages``, sinon dans un fil) pendant que le noyau exécute le notebook 01, puis 02 dès
    que le ciblage est fait et 03 dès que le suivi l'est ; puis le notebook du rapport, dont le HTML et
    le PDF sont composés dans un fil pendant que le noyau exécute 04 ; fiches préparées (après les
    résultats qu'elles seules lisent : suivi en veille, historique) et classeur écrits dans un second
    fil dès que les résultats du rapport sont prêts (voir :data:`EXECUTION_ORDER`).

    ``kernel`` : noyau déjà démarré à réutiliser (sinon un noyau pour cette région) ; arrêté dès
    la fin des notebooks sauf ``release_kernel=False`` (noyau gardé pour la région suivante).
    ``pool`` : processus des fiches, créés avant tout noyau ; les fiches sont alors rendues pendant
    que les notebooks s'exécutent (sinon un pool est créé ici quand ``params.jobs > 1``).
    ``stages`` : processus des résultats (:class:`StageWorker`) ; les étapes et les résultats des
    fiches y sont calculés, et non dans un fil de ce processus, dont l'interpréteur reste au client
    des notebooks, aux fiches et au rendu.
    """
    import concurrent.futures
    import contextlib
    import functools

    from ..publishing import outputs

    # this region's timings (the shared reading counted once in each manifest)
    outer, progress = progress, Progress(quiet=progress.quiet, t0=progress.t0,
                                         timings={"lecture": prep.lecture_s}, events=dict(progress.events))
    annee, rules, result = prep.annee, prep.rules, prep.result
    final = params.out_dir / str(annee) / region
    # chemins absolus, fixés ici : pendant qu'un notebook s'exécute, Papermill change le dossier
    # courant du processus, et les travaux en arrière-plan (fiches, classeur, rapport) tournent alors
    tmp = (params.out_dir / f".tmp-{annee}-{region}-{os.getpid()}").resolve()
    cache_dir = fiches_cache_dir(params).resolve()
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "notebooks").mkdir(parents=True)
    nb_params = {
        "annee": int(annee),
        "region": str(region),
        "data_dir": str(params.data_dir.resolve()),
        "processed_dir": str(prep.processed.resolve()),
        "out_dir": str(tmp.resolve()),
        "rules": str((prep.processed / "regles" / rules.name).resolve()),
        "fictif": bool(prep.fictif),
    }
    from concurrent.futures.process import BrokenProcessPool

    from ..indicators.results import STAGES

    stage_names = [name for name, _, _ in STAGES]
    early: dict | None = None  # étapes envoyées au processus des résultats avant le contexte
    try:
        if stages is not None:
            # étapes envoyées tout de suite : le processus des résultats charge son contexte pendant que
            # celui-ci charge le sien (0,15 s de moins avant le notebook du rapport) ; abandonnées si le
            # rapport de la région est repris tel quel
            with contextlib.suppress(BrokenProcessPool):  # arrêté : voir plus bas
                early = {name: stages.submit(_stage_in_worker, nb_params, name) for name in stage_names}
        # le contexte des notebooks (tables de la région) : son empreinte dit si la région a changé
        ctx = _context(nb_params)
        key = region_key(ctx.data_fingerprint, params)
        if not params.force and _reuse_region(final, key, params, rules, result, annee, region, prep.fictif,
                                              digest, ctx.data_fingerprint):
            if early:
                stages.cancel(list(early.values()))
            shutil.rmtree(tmp, ignore_errors=True)
            if kernel is not None and release_kernel:
                kernel.stop()
            outer.say(f"[{region}] Rapport repris tel quel : les données de la région, les règles et le code "
                      "n'ont pas changé depuis sa construction (empreinte des données de la région identique).")
            outer.reused.append(region)
            return final
        with contextlib.ExitStack() as stack:
            if pool is None and params.fiches and params.jobs > 1:
                from ..publishing.fiches import fiche_pool

                pool = stack.enter_context(fiche_pool(params.jobs, background=True))
            if kernel is None:
                kernel = stack.enter_context(NotebookKernel())
                kernel.start()
                release_kernel = True
            outputs.write_csv(result.rejects, tmp / "rejets.csv")
            # Résultats de la région (ciblage, suivi, tendances, alertes) calculés une fois, sur les
            # tables que lisent les notebooks, pendant que le noyau exécute le notebook 01 (qui n'en a
            # pas besoin) : dans le processus des résultats (``stages``), sinon dans le premier fil ;
            # les notebooks 02 à 05, les fiches et le classeur les relisent.
            # Avec --jobs 1 (et dans chaque processus de région avec REGION=toutes), tout se fait dans
            # ce fil, à son tour : pas de fil de plus, dont l'allocateur garderait sa propre mémoire.
            # deux fils : les résultats (sans processus des résultats) puis le rapport HTML et PDF ; en
            # arrière-plan, les fiches et le classeur (le rapport n'attend pas que les fiches soient
            # préparées)
            computing, behind = ((concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
                                  for name in ("resultats", "arriere-plan")) if params.jobs > 1
                                 else (_InlineExecutor(), _InlineExecutor()))
            # en cas d'échec, les travaux pas encore commencés sont abandonnés ; ceux en cours finissent
            # avant que le dossier temporaire soit effacé
            for executor in (computing, behind):
                stack.callback(executor.shutdown, wait=True, cancel_futures=True)
            # une étape après l'autre : chaque notebook part dès que les étapes qu'il lit sont faites
            pending = None
            if stages is not None and early is None:  # arrêté (mémoire…) avant même les étapes : ici, dans un fil
                log.warning("Avertissement : le processus des résultats s'est arrêté ; les résultats sont "
                            "calculés dans le processus principal.")
                stages = None
            if stages is not None:
                # envoyées au processus des résultats (ci-dessus), calculées dans l'ordre ; wait_stages :
                # attend qu'elles soient toutes finies, en échec ou non
                pending, early = early, None  # leur abandon en cas d'échec est confié à la pile
                wait_stages = functools.partial(concurrent.futures.wait, list(pending.values()))
                # sortie en échec (notebook, Ctrl-C) : étapes pas encore faites abandonnées, celle
                # en cours attendue (elle écrit dans le dossier temporaire)
                stack.push(lambda kind, *_, jobs=list(pending.values()), worker=stages: kind is not None
                           and worker.abandon(jobs))
            if pending is None:
                pending = {name: concurrent.futures.Future() for name in stage_names}
                wait_stages = computing.submit(_run_stages, ctx, dict(pending)).result
            for name, job in pending.items():
                job.add_done_callback(lambda _job, name=name: progress.mark(f"etape_{name}"))
            # Papermill importé d'abord, dans ce fil : importé par le premier notebook pendant que le fil
            # du rendu importe nbconvert, il en partageait le verrou de l'interpréteur, et le notebook 01
            # partait 0,3 s plus tard (le noyau, prêt, attendait)
            _register_shared_engine()
            warming: list = []  # moteurs du rendu en cours de chargement (voir la boucle ci-dessous)
            background: list = []  # travaux lancés quand les résultats sont prêts : fiches, classeur

            def start_background(pool_=pool) -> None:
                # pendant que le noyau exécute les notebooks 05 et 04, ce processus prépare les fiches
                # (rendues par le pool) et écrit le classeur
                if params.fiches:
                    background.append(behind.submit(_start_fiches, ctx, tmp, result.tables, rules, annee,
                                                    region, prep.fictif, params, progress, pool_, cache_dir,
                                                    stages=stages, nb_params=nb_params))
                background.append(behind.submit(_write_workbook, tmp, rules, result, annee, region, progress))

            from .journal import strip_machine_details

            rendering = None
            for i, nb in enumerate(EXECUTION_ORDER, start=1):
                need = NOTEBOOK_STAGE[nb]
                if pending and need is not None:
                    wanted = [pending.pop(n) for n in stage_names[:stage_names.index(need) + 1] if n in pending]
                    if not warming and need != "tendances" and not all(job.done() for job in wanted):
                        # ce processus va attendre le ciblage ou le suivi : les moteurs du rendu (nbconvert
                        # et son modèle, Typst) sont chargés pendant cette attente, dans la file du rendu.
                        # Sinon (relance après une correction : étapes faites avant que le noyau les
                        # demande), ils le sont par le rendu lui-même : chargés pendant les notebooks
                        # 01 à 03, ils prenaient au client des notebooks le verrou de l'interpréteur et
                        # aux processus les deux cœurs (mesuré sur six paires alternées de relances :
                        # 9 % de moins sans ce chargement ; le rapport à froid, qui attend ses étapes,
                        # reste 10 à 15 % plus court avec)
                        warming.append(computing.submit(_warm_renderers))
                    with progress.timed("resultats_attente"):
                        ready = _results_or_notebooks(wanted, wait_stages, tmp)
                    if not ready:
                        pending = {}  # les notebooks calculent eux-mêmes ce qui manque
                    elif not pending:
                        start_background()
                progress.say(f"[{region}] Notebook {i}/{len(NOTEBOOKS)} : {nb}…")
                progress.mark(f"debut_{Path(nb).stem}")  # les résultats qu'il lit sont prêts
                with progress.timed("notebooks"):
                    run_notebook(nb, tmp / "notebooks" / nb, nb_params, cwd=tmp, kernel=kernel)
                progress.mark(f"fin_{Path(nb).stem}")
                strip_machine_details(tmp / "notebooks" / nb, nb_params)  # publié sans dates ni dossiers
                if nb == NOTEBOOKS[-1]:
                    if not background:  # résultats calculés par le notebook du rapport lui-même
                        start_background()
                    if params.jobs > 1:
                        # le rapport HTML et PDF est composé pendant que le noyau exécute 04
                        rendering = computing.submit(_render_report, tmp, annee, region, prep.fictif, progress)
            if release_kernel:
                kernel.stop()
            if rendering is None:
                # un seul processus pour cette région (régions en parallèle : --jobs par région = 1) :
                # rapport composé après l'arrêt du noyau, dont la mémoire est rendue avant le rendu
                rendering = computing.submit(_render_report, tmp, annee, region, prep.fictif, progress)
            for job in [rendering, *background]:  # rapport, classeur, puis la dernière fiche (erreurs comprises)
                finish = job.result()
                if callable(finish):
                    finish()
            progress.mark("fiches_et_classeur")
        _write_manifest(tmp, params, rules, result, annee, region, prep.fictif, digest, progress,
                        extra={"empreinte_region": key, "empreinte_donnees_region": ctx.data_fingerprint})
        replace_dir(tmp, final)
    except NotebookFailed as exc:
        kept = keep_failed_notebook(exc, params.out_dir, annee, region)
        shutil.rmtree(tmp, ignore_errors=True)
        raise kept from exc
    except BaseException:
        if early:  # échec avant les notebooks : les étapes envoyées d'avance écrivent dans tmp
            stages.abandon(list(early.values()))
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress.say(f"Rapport écrit dans « {final} ».")
    for k, v in progress.timings.items():
        if k != "lecture":
            outer.timings[k] = outer.timings.get(k, 0.0) + v
    return final


class _InlineExecutor:
    """Exécuteur qui fait chaque travail tout de suite, dans le fil appelant (même interface que
    ``concurrent.futures`` pour :func:`build_region`)."""

    def submit(self, fn, *args, **kwargs):
        import concurrent.futures

        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - rendue par future.result(), comme un fil ; pas Ctrl-C
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def _context(nb_params: dict):
    """Le contexte que chargent les notebooks (:func:`analysis.orchestration.context.load_context`)."""
    from .context import load_context

    return load_context(nb_params["annee"], nb_params["region"], nb_params["processed_dir"],
                        nb_params["out_dir"], nb_params["rules"], nb_params["data_dir"], nb_params["fictif"])


def _compute_results(ctx, upto: str | None = None) -> None:
    """Les étapes de résultats de la région (jusqu'à ``upto``), dans le dossier du rapport en
    construction, sur le même contexte que les notebooks."""
    from ..indicators.results import compute_missing

    compute_missing(ctx, upto)


def _run_stages(ctx, futures: dict) -> None:
    """Calcule les étapes dans l'ordre et signale chacune dans ``futures`` (nom -> Future) dès qu'elle
    est faite ; à la première en échec, elle et les suivantes reçoivent l'erreur, et rien d'autre
    n'est calculé."""
    names = list(futures)
    for i, name in enumerate(names):
        try:
            _compute_results(ctx, name)
        except BaseException as exc:  # rendue à qui attend l'étape (voir _results_or_notebooks)
            for later in names[i:]:
                futures[later].set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        futures[name].set_result(None)


#: dans le processus des résultats : dossier du rapport en construction, son contexte, l'erreur d'une
#: étape en échec (les suivantes la reçoivent sans être calculées)
_STAGE_STATE: dict = {}
#: dans le processus des résultats : signal « travaux abandonnés » (:meth:`StageWorker.abandon`)
_STAGE_ABANDON: list = []


class StageWorker:
    """Processus des résultats d'une construction (un processus, ``concurrent.futures``) : les
    étapes (:func:`_stage_in_worker`) et les résultats des fiches (:func:`_sheet_results_in_worker`)
    de chaque région y sont calculés, sur le contexte que lisent les notebooks, qu'il charge
    lui-même. Le processus principal tenait sinon son verrou d'interpréteur pendant toute une
    relance (calcul des résultats, client des notebooks, fiches, rendu) : mesuré avec py-spy, les
    résultats en prenaient plus du tiers.

    Créé par « fork » avant les processus des fiches et tout client ZMQ (le processus du noyau est
    déjà lancé, mais ce processus n'a encore rien ouvert de ZMQ : :meth:`NotebookKernel.launch`), après
    l'import de pandas et pyarrow, dont il hérite ; en priorité
    normale (il est sur le chemin des notebooks), ses imports faits tout de suite, pendant la lecture
    des données. Il ne se sert pas de Typst : le créer après un rendu Typst de ce processus est sans
    risque. Les processus des fiches sont ensuite créés alors que le fil de gestion de l'exécuteur
    existe ; ce fil attend sur des tubes et ne tient aucun verrou dont ils se servent (CPython
    réinitialise les siens au « fork »).
    """

    def __init__(self) -> None:
        import concurrent.futures
        import multiprocessing as mp

        fork = mp.get_context("fork")
        self._abandoned = fork.Event()
        self.executor = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=fork, initializer=_init_stage_worker, initargs=(self._abandoned,))
        self.executor.submit(_warm_stage_worker)  # crée le processus maintenant (avant le noyau)

    @classmethod
    def create(cls) -> "StageWorker | None":
        """``None`` sans « fork » (les étapes sont alors calculées dans un fil)."""
        import multiprocessing as mp

        return cls() if "fork" in mp.get_all_start_methods() else None

    def submit(self, fn, *args):
        return self.executor.submit(fn, *args)

    def abandon(self, jobs: list) -> None:
        """Sortie en échec (notebook en échec, Ctrl-C) : les travaux en attente sont abandonnés (ceux
        déjà transmis au processus, que ``cancel()`` n'arrête plus, rendent aussitôt une erreur), et
        celui en cours est attendu, car il écrit dans le dossier temporaire."""
        import concurrent.futures

        self._abandoned.set()
        for job in jobs:
            job.cancel()
        concurrent.futures.wait(jobs)

    def cancel(self, jobs: list) -> None:
        """Abandonne ``jobs`` (rapport de la région repris tel quel) comme :meth:`abandon`, puis
        laisse le processus prêt pour les travaux suivants (région suivante)."""
        self.abandon(jobs)
        self._abandoned.clear()

    def sheet_results(self, nb_params: dict) -> bool:
        """Calcule les résultats que seules les fiches lisent (:func:`_sheet_results_in_worker`) ;
        faux, avec un avertissement, si ce processus n'a pas pu : à calculer alors dans le processus
        principal (une vraie erreur y apparaît de nouveau). Lève :class:`StageAbandoned`."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            self.submit(_sheet_results_in_worker, nb_params).result()
            return True
        except BrokenProcessPool:  # processus arrêté (mémoire…)
            why = "le processus des résultats s'est arrêté"
        except StageAbandoned:
            raise
        except StageFailed as exc:
            why = f"résultats des fiches impossibles dans le processus des résultats ({exc})"
        log.warning("Avertissement : %s ; les résultats des fiches sont calculés dans le processus principal.", why)
        return False

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _init_stage_worker(abandoned) -> None:
    from ..publishing.fiches import ignore_interrupt

    ignore_interrupt()
    _STAGE_ABANDON[:] = [abandoned]


def _warm_stage_worker() -> None:
    """Imports du calcul des résultats (``scipy.special`` compris), dans le processus des résultats."""
    from ..indicators import results, stats  # noqa: F401

    stats.scipy_special()
    from . import context  # noqa: F401


class StageFailed(RuntimeError):
    """Erreur d'une étape dans le processus des résultats, rendue au processus principal sous ce
    seul type (toute exception ne se reconstruit pas après avoir changé de processus)."""


class StageAbandoned(StageFailed):
    """Travail du processus des résultats abandonné : la construction s'arrête."""


def _abandoned() -> bool:
    """Dans le processus des résultats : la construction a abandonné ses travaux."""
    return bool(_STAGE_ABANDON) and _STAGE_ABANDON[0].is_set()


def _failure(exc: Exception) -> StageFailed:
    return StageFailed(f"{type(exc).__name__} : {exc}")


def _stage_context(nb_params: dict, after_failure: bool = False):
    """Contexte de la région dans le processus des résultats, chargé une fois par rapport. Lève
    l'erreur d'une étape précédente en échec (les suivantes ne sont pas calculées), sauf
    ``after_failure`` (résultats des fiches : les notebooks ont alors calculé les étapes)."""
    if _abandoned():
        raise StageAbandoned("travail abandonné (construction interrompue)")
    st = _STAGE_STATE
    if st.get("dossier") != nb_params["out_dir"]:
        st.clear()
        st.update(dossier=nb_params["out_dir"], ctx=None, echec=None)
        try:
            st["ctx"] = _context(nb_params)
        except Exception as exc:  # noqa: BLE001 - rendue par chaque étape, sans recharger
            st["echec"] = _failure(exc)
    if st["echec"] is not None and (not after_failure or st["ctx"] is None):
        raise st["echec"]
    return st["ctx"]


def _stage_in_worker(nb_params: dict, name: str) -> None:
    """Une étape des résultats (jusqu'à ``name``), dans le processus des résultats."""
    ctx = _stage_context(nb_params)
    try:
        _compute_results(ctx, name)
    except Exception as exc:
        _STAGE_STATE["echec"] = _failure(exc)
        raise _STAGE_STATE["echec"] from None


def _sheet_results_in_worker(nb_params: dict) -> None:
    """Résultats que seules les fiches lisent, dans le processus des résultats."""
    from ..indicators.results import compute_sheet_results

    ctx = _stage_context(nb_params, after_failure=True)
    try:
        compute_sheet_results(ctx)
    except Exception as exc:
        if _abandoned():
            raise StageAbandoned("travail abandonné (construction interrompue)") from None
        raise _failure(exc) from None


def _warm_renderers() -> None:
    """Importe nbconvert et son modèle et charge le compilateur Typst et ses polices, sans rien
    rendre."""
    from ..publishing import render

    render.warm_up()


def region_key(data_fingerprint: str, params: Params) -> str:
    """Clé de reprise d'un rapport régional : empreinte des données de la région, code (paquet,
    notebooks, versions verrouillées), versions installées des bibliothèques et de Python, fiches
    demandées et date de production éventuelle (``SOURCE_DATE_EPOCH``, écrite dans les PDF). Les
    polices et la bibliothèque Pango du système n'y sont pas : après leur mise à jour, ``--force``."""
    key = [data_fingerprint, code_fingerprint(), _versions(), sys.version, bool(params.fiches),
           os.environ.get("SOURCE_DATE_EPOCH")]
    return _sha_bytes(json.dumps(key, sort_keys=True).encode())


def _reuse_region(final: Path, key: str, params, rules, result, annee, region, fictif, digest,
                  data_fp: str) -> bool:
    """Le rapport déjà publié dans ``final`` a la même clé (:func:`region_key`) et des sorties
    intactes : il est gardé tel quel, et son manifeste réécrit pour nommer les entrées actuelles
    (dont les lignes de la région sont celles d'où il a été produit)."""
    try:
        old = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
        if old.get("empreinte_region") != key or not outputs_intact(final, old):
            return False
    except (OSError, ValueError, TypeError, KeyError):
        return False
    progress = Progress(quiet=True)
    progress.fiches = old.get("fiches_rendu")
    progress.warnings = list(old.get("avertissements_fiches") or [])
    _write_manifest(final, params, rules, result, annee, region, fictif, digest, progress, kept=old,
                    extra={"empreinte_region": key, "empreinte_donnees_region": data_fp,
                           "reprise": {"durees_s_construction": old.get("durees_s", {}),
                                       "chronologie_s_construction": old.get("chronologie_s", {}),
                                       "code_construction": old.get("code"),
                                       "raison": "données de la région, règles et code inchangés"}})
    return True


def _results_or_notebooks(pending: list, wait_stages, tmp: Path) -> bool:
    """Attend les étapes ``pending`` ; vrai si elles sont faites. Si l'une n'a pas pu être calculée
    (le calcul des étapes s'arrête alors ; ``wait_stages()`` attend sa fin), les résultats partiels
    sont effacés et les notebooks suivants les calculent eux-mêmes (``ctx.results()``) : l'erreur
    apparaît alors dans le notebook concerné, gardé pour diagnostic comme tout notebook en échec."""
    from ..indicators.results import RESULTS_DIR

    try:
        for job in pending:
            job.result()
        return True
    except Exception as exc:  # noqa: BLE001 - refait (et signalé s'il échoue encore) par le notebook
        from concurrent.futures.process import BrokenProcessPool

        detail = ("le processus des résultats s'est arrêté" if isinstance(exc, BrokenProcessPool)
                  else f"{type(exc).__name__} : {exc}")
        log.warning("Avertissement : calcul anticipé des résultats impossible (%s) ; les notebooks "
                    "les calculent eux-mêmes.", detail)
        wait_stages()  # fini juste après l'étape en échec : plus rien n'écrit dans les résultats
        shutil.rmtree(tmp / RESULTS_DIR, ignore_errors=True)
        return False


_WORKER: dict = {}


def _init_region_worker(params, prep, digest) -> None:
    """Initialisation d'un processus de région (arguments transmis une fois, par fork)."""
    _WORKER.update(params=params, prep=prep, digest=digest)


def _region_worker(region: str) -> tuple[str, str, dict, list[str]]:
    progress = Progress(quiet=_WORKER["params"].quiet)
    path = build_region(_WORKER["params"], _WORKER["prep"], region, _WORKER["digest"], progress)
    return region, str(path), progress.timings, progress.reused


#: sous-dossier de ``processed_dir`` : modèles HTML du rapport compilés par Jinja
TEMPLATE_CACHE = ".cache-modeles"


def build_report(params: Params) -> list[Path]:
    """Construit tous les livrables ; renvoie les dossiers ``<out>/<annee>/<region>`` produits.

    ``params.region`` vaut un code INSEE, ``None`` (la seule région du référentiel) ou ``toutes``
    (chaque région du référentiel, réparties sur ``params.jobs`` processus).

    Une seule région : le processus du noyau des notebooks est lancé d'abord (il démarre et importe
    ses modules pendant que ce processus importe les siens et lit les données), puis le processus des
    résultats (:class:`StageWorker`, avec ``jobs > 1``) et ceux des fiches sont créés, puis les canaux
    du noyau ouverts ; les fiches sont rendues (en priorité basse) pendant l'exécution
    des notebooks. Plusieurs régions avec ``jobs > 1`` :
    une région par processus, les plus grandes d'abord. Le résultat ne dépend pas de ``jobs``.
    """
    import contextlib

    progress = Progress(quiet=params.quiet)
    for note in recover_leftovers(params.out_dir, params.processed_dir):
        progress.say(f"Reprise après un arrêt brutal : {note}.")
    fresh, digest, info = up_to_date(params)
    if fresh:
        for d in info["dossiers"]:
            progress.say(f"Rien à refaire : le rapport « {d} » est à jour (entrées, règles et code inchangés).")
        return [Path(d) for d in info["dossiers"]]
    if "sorties_modifiees" in info:
        progress.say(f"Des sorties de « {info['sorties_modifiees']} » ont été effacées ou modifiées depuis la "
                     "dernière exécution : le rapport est refait.")

    multi = bool(params.region and params.region.lower() in ALL_REGIONS)
    parallel_regions = multi and params.jobs > 1 and not _typst_started()
    finals: list[Path] = []
    with contextlib.ExitStack() as stack:
        kernel = None
        if not parallel_regions:
            # le processus du noyau d'abord : il démarre et importe pandas, matplotlib et le paquet
            # pendant que ce processus importe les siens puis lit les données (lancé avant les
            # imports de ce processus, il a un cœur pour lui seul au début)
            kernel = stack.enter_context(NotebookKernel())
            kernel.launch()
        # pandas, pyarrow et le calcul des résultats (modèle des règles compris), importés ici avant le
        # « fork » du processus des résultats, qui en hérite : ce processus en a besoin de toute façon
        # (lecture, fiches), le processus des résultats n'a plus que SciPy à importer
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        from ..indicators import persist
        from ..indicators import results as _results  # noqa: F401
        from ..publishing import render

        calc_cache = params.processed_dir / persist.CALC_CACHE
        if params.force:
            # tout est refait : aucune figure, aucun calcul ni modèle compilé n'est repris des
            # exécutions précédentes
            from ..publishing.fiches import FIGURE_CACHE

            for name in (FIGURE_CACHE, persist.CALC_CACHE, TEMPLATE_CACHE):
                shutil.rmtree(params.processed_dir / name, ignore_errors=True)
        render.use_template_cache(params.processed_dir / TEMPLATE_CACHE)
        # calculs des étapes repris d'une exécution à l'autre, ici et dans les processus créés ensuite
        # (résultats, régions) ; les notebooks, qui ne font que relire les résultats, n'en ont pas
        persist.activate(calc_cache, cache_salt())
        stack.callback(persist.deactivate)
        pool = stages = None
        if not parallel_regions:
            if params.jobs > 1:
                stages = StageWorker.create()
                if stages is not None:
                    stack.callback(stages.shutdown)
            if params.fiches and params.jobs > 1:
                from ..publishing.fiches import fiche_pool

                pool = stack.enter_context(fiche_pool(params.jobs, background=True))
            kernel.connect()  # ZMQ ouvert ici seulement, après les « fork »

        prep = prepare(params, progress)
        progress.mark("lecture")
        if info.get("regles") not in (None, prep.rules.sha256):
            raise InputError(
                f"Le fichier de règles « {prep.rules.name} » a été modifié au lancement de "
                "l'exécution : relancez pour que le rapport et son manifeste portent sur la même version."
            )
        if multi:
            regions = sorted(prep.result.tables["etablissements"]["region"].dropna().unique().tolist())
        else:
            regions = [resolve_region(prep.result.tables, params.region)]

        if parallel_regions and len(regions) > 1:
            import concurrent.futures

            # regions in parallel, largest first (better balance); the sheets of one region then
            # use one process each
            # les objets du processus parent (tables nationales lues) ne sont plus parcourus par le
            # ramasse-miettes : un processus de région ne recopie pas leurs pages en les visitant
            import gc
            import multiprocessing as mp
            from dataclasses import replace

            gc.freeze()
            stack.callback(gc.unfreeze)
            sizes = prep.result.tables["etablissements"]["region"].value_counts()
            order = sorted(regions, key=lambda r: (-int(sizes.get(r, 0)), r))
            done: dict[str, Path] = {}
            with concurrent.futures.ProcessPoolExecutor(
                params.jobs, mp_context=mp.get_context("fork"), initializer=_init_region_worker,
                initargs=(replace(params, jobs=1), prep, digest),
            ) as rpool:
                for region, path, timings, reused in rpool.map(_region_worker, order):
                    done[region] = Path(path)
                    progress.reused += reused
                    for k, v in timings.items():
                        progress.timings[k] = progress.timings.get(k, 0.0) + v
            finals = [done[r] for r in regions]
        else:
            for i, region in enumerate(regions):
                finals.append(build_region(params, prep, region, digest, progress, kernel=kernel, pool=pool,
                                           release_kernel=i == len(regions) - 1, stages=stages))
    if multi and progress.reused:
        progress.say(f"{len(finals) - len(progress.reused)} rapport(s) régional(aux) refait(s), "
                     f"{len(progress.reused)} repris tel(s) quel(s) (régions non touchées par les changements).")
    state = _state_file(params)
    state.parent.mkdir(parents=True, exist_ok=True)
    _write_json(state, {"empreinte": digest, "dossiers": [str(f) for f in finals]})
    from ..publishing.fiches import CACHE_MAX_ENTRIES, FIGURE_CACHE, FIGURE_CACHE_MAX_ENTRIES, SheetCache

    # caches bornés : les entrées les moins récemment utilisées partent
    if params.fiches:
        SheetCache(fiches_cache_dir(params)).prune(CACHE_MAX_ENTRIES)
    SheetCache(params.processed_dir / FIGURE_CACHE, suffix=".json").prune(FIGURE_CACHE_MAX_ENTRIES)
    SheetCache(calc_cache, suffix=".pickle").prune(persist.CALC_CACHE_MAX_ENTRIES, persist.CALC_CACHE_MAX_BYTES)
    return finals


def _typst_started() -> bool:
    """Typst déjà utilisé dans ce processus (tests, banc) : ses fils d'exécution ne survivent pas à
    un « fork », les régions sont alors construites l'une après l'autre ici."""
    mod = sys.modules.get("analysis.publishing.fiches")
    return bool(mod is not None and mod.typst_started())


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def _render_report(tmp, annee, region, fictif, progress) -> None:
    from ..publishing import rapport_pdf, render
    from ..reading.regions import region_label

    progress.say("Rendu HTML et PDF du rapport…")
    with progress.timed("pdf"):
        html = tmp / "rapport_annuel.html"
        render.notebook_to_html(
            tmp / "notebooks" / NOTEBOOKS[-1], html,
            title="Suivi qualité des CPOM — rapport annuel", region_label=region_label(region), annee=annee,
            fictif=fictif,
        )
        progress.mark("rapport_html")
        rapport_pdf.html_to_pdf(html, tmp / "rapport_annuel.pdf")
        progress.mark("rapport_pdf")


def _write_workbook(tmp, rules, result, annee, region, progress) -> None:
    """Classeur tiré des résultats typés (Parquet) : les nombres restent des nombres."""
    from ..indicators.results import load_results
    from ..publishing import excel

    with progress.timed("xlsx"):
        sheets, decimals = excel.results_sheets(load_results(tmp), result.rejects, rules)
        excel.write_cpom_xlsx(tmp / f"cpom_{region}_{annee}.xlsx", sheets, decimals)


#: sous-dossier de ``processed_dir`` : fiches déjà rendues (clé : données de la fiche, gabarit, moteur)
FICHES_CACHE = ".cache-fiches"


def fiches_cache_dir(params: Params) -> Path:
    return params.processed_dir / FICHES_CACHE


def _start_fiches(ctx, tmp, tables, rules, annee, region, fictif, params, progress, pool, cache_dir,
                  stages=None, nb_params=None):
    """Prépare les fiches de la région et lance leur rendu ; renvoie la fonction qui attend la fin.

    Une fiche dont le contenu, le gabarit et le moteur n'ont pas changé depuis un rendu précédent
    est reprise du cache (``<processed>/.cache-fiches``, mêmes octets) ; avec ``--force`` toutes
    sont rendues (le cache est seulement mis à jour). Avec ``pool`` les PDF sont produits en
    arrière-plan (pendant le notebook du rapport) ; sans pool, ils le sont à l'appel de la fonction
    renvoyée, dans ce processus."""
    from ..indicators.results import ensure_sheet_results, load_results
    from ..publishing import fiches, fiches_data
    from ..reading.regions import region_label

    label = region_label(region)
    t0 = time.perf_counter()
    # résultats que seules les fiches lisent (suivi en veille, historique) : calculés pendant que le
    # noyau exécute le notebook du rapport, dans le processus des résultats s'il y en a un
    if stages is not None and stages.sheet_results(nb_params):
        res = load_results(tmp, fiches=True)
    else:
        res = ensure_sheet_results(ctx)
    data = fiches_data.build_fiches(tables, rules, annee, region, res)
    t_data = time.perf_counter() - t0
    progress.timings["fiches_donnees"] = progress.timings.get("fiches_donnees", 0.0) + t_data
    report = None if params.quiet else (lambda done, total: progress.say(f"  fiches {done}/{total}"))
    stats: dict = {}
    kwargs = dict(region_label=label, annee=annee, fictif=fictif, progress=report,
                  cache_dir=cache_dir, refresh=params.force, stats=stats)
    if pool is not None:
        wait = fiches.start_render_fiches(data, tmp / "fiches", pool=pool, jobs=params.jobs, **kwargs)
    else:
        def wait():
            return fiches.render_fiches(data, tmp / "fiches", jobs=1, **kwargs)

    def finish() -> None:
        t1 = time.perf_counter()
        wait()
        end = time.perf_counter()
        # fiches : du début de la préparation à la dernière fiche (en parallèle des notebooks
        # avec un pool) ; fiches_attente : ce qu'il restait à attendre après le rapport
        progress.timings["fiches"] = progress.timings.get("fiches", 0.0) + (
            end - t0 if pool is not None else (end - t1) + t_data)
        progress.timings["fiches_attente"] = progress.timings.get("fiches_attente", 0.0) + (end - t1)
        progress.fiches = {k: stats.get(k) for k in ("moteur", "total", "rendues", "reprises")}
        progress.warnings += stats.get("avertissements", [])
        progress.say(f"Fiches établissement : {stats.get('rendues', 0)} rendue(s), "
                     f"{stats.get('reprises', 0)} reprise(s) sans changement.")
        for w in stats.get("avertissements", []):
            print(f"Avertissement : {w}", file=sys.stderr, flush=True)

    return finish


def _write_manifest(tmp, params, rules, result, annee, region, fictif, digest, progress,
                    extra: dict | None = None, kept: dict | None = None) -> None:
    """``kept`` : manifeste d'un rapport gardé tel quel, dont les sorties viennent d'être vérifiées
    (:func:`outputs_intact`) : sa liste et ses empreintes sont reprises, sans tout relire."""
    from dataclasses import asdict

    from .. import __version__
    from ..reading.files import sha256_file

    if kept is not None:
        outputs_list, n_fiches, sheets_digest = kept["sorties"], kept.get("fiches", 0), kept.get("fiches_empreinte")
    else:
        outputs_list = [{"fichier": str(p.relative_to(tmp)), "sha256": sha256_file(p)} for p in sorted(tmp.rglob("*"))
                        if p.is_file() and p.name not in ("manifest.json", ".manifest.json.tmp")]
        n_fiches = len(list((tmp / "fiches").glob("*.pdf"))) if (tmp / "fiches").is_dir() else 0
        sheets_digest = fiches_digest(tmp)
    manifest = {
        "produit": "cpom-qualite",
        "empreinte": digest,
        "parametres": {
            "annee": int(annee),
            "region": region,
            "annee_demandee": params.annee,
            "region_demandee": params.region,
            "dossier_donnees": str(params.data_dir),
            "dossier_sortie": str(params.out_dir),
            "fichier_regles": str(rules.path) if rules.path else None,
            "donnees_fictives": fictif,
        },
        "regles": {
            "fichier": rules.name,
            "version": rules.version,
            "sha256": rules.sha256,
        },
        "entrees": [asdict(f) for f in result.files],
        "sources_absentes": result.absent_sources,
        "fichiers_ignores": result.ignored_files,
        "avertissements": result.warnings,
        "rejets": int(len(result.rejects)),
        "sorties": outputs_list,
        "fiches": n_fiches,
        "fiches_empreinte": sheets_digest,
        "fiches_rendu": progress.fiches,
        "avertissements_fiches": progress.warnings,
        "versions": _versions(),
        "code": {"version": __version__, "commit_git": _git_commit(), "empreinte": code_fingerprint()},
        "durees_s": {k: round(v, 2) for k, v in progress.timings.items()},
        "chronologie_s": dict(sorted(progress.events.items(), key=lambda kv: kv[1])),
        **(extra or {}),
    }
    # écrit à côté puis mis en place : un manifeste n'est jamais à moitié écrit (reprise d'un
    # rapport publié)
    _write_json(tmp / ".manifest.json.tmp", manifest)
    os.replace(tmp / ".manifest.json.tmp", tmp / "manifest.json")
