"""Cache sur disque adressé par contenu, commun aux fiches, aux figures et aux sources validées.

Une entrée n'est reprise que si sa clé (empreinte de tout ce dont le contenu dépend : données, code,
versions) est la même et si son contenu est intact ; sinon le contenu est produit à nouveau, avec les
mêmes octets. Le cache est borné (:meth:`ContentCache.prune`) et ``make clean`` le vide.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import OrderedDict
from pathlib import Path

#: tables Parquet déjà lues dans ce processus (les notebooks d'un rapport s'exécutent dans un même
#: noyau et relisent les mêmes tables et résultats), les moins récemment lues retirées d'abord
_PARQUET_READS: OrderedDict = OrderedDict()
PARQUET_READS_MAX = 64


def file_identity(path: Path | str) -> tuple:
    """``(inode, taille, date de modification en ns)`` : change quand le fichier est remplacé ou
    réécrit (les fichiers du projet sont écrits d'un coup, par renommage). Lève ``OSError``."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def read_parquet_once(path: Path | str, **kwargs):
    """``pandas.read_parquet(path, **kwargs)``, lu une fois par processus tant que le fichier n'a pas
    changé (même inode, taille et date de modification : les tables du projet sont écrites d'un coup,
    par renommage) ; renvoie une copie, que l'appelant peut modifier."""
    import pandas as pd

    key = (os.path.abspath(path), *file_identity(path), repr(sorted(kwargs.items())))
    df = _PARQUET_READS.get(key)
    if df is None:
        df = pd.read_parquet(path, **kwargs)
        _PARQUET_READS[key] = df
        while len(_PARQUET_READS) > PARQUET_READS_MAX:
            _PARQUET_READS.popitem(last=False)
    else:
        _PARQUET_READS.move_to_end(key)
    out = df.copy()
    out.attrs = dict(df.attrs)
    return out


def table_fingerprint(df) -> str:
    """Empreinte SHA-256 du contenu d'une table pandas : colonnes, types, attributs (``attrs``),
    index et valeurs de chaque ligne dans l'ordre (``pandas.util.hash_pandas_object``), plus, par
    colonne, le masque des valeurs manquantes et, pour une colonne ``object``, le type de ses
    valeurs : ``hash_pandas_object`` confond ``None`` et le texte « None », ``NaN`` et « nan », 1 et
    « 1 ». Une table aux valeurs non hachables (listes…) ou de types mêlés est prise par les octets
    de sa sérialisation. ``None`` : ``"absente"``."""
    import pickle

    import pandas as pd

    if df is None:
        return "absente"
    h = hashlib.sha256()
    head = [[str(c) for c in df.columns], [str(t) for t in df.dtypes], len(df),
            [str(df.index.dtype), df.index.name]]
    kinds = []  # type des valeurs de chaque colonne ``object``
    try:
        for c in df.columns:
            col = df[c]
            if col.dtype == object:
                kinds.append(pd.api.types.infer_dtype(col, skipna=True))
            h.update(col.isna().to_numpy().tobytes())
        if any(t == "mixed" or t.startswith("mixed-") for t in kinds):
            raise TypeError("types mêlés")
        h.update(json.dumps(head + kinds + [df.attrs], sort_keys=True, default=str).encode())
        h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    except (TypeError, ValueError):  # valeurs non hachables ou de types mêlés : la sérialisation exacte
        h = hashlib.sha256(pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL))
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Écrit ``data`` dans ``path`` d'un coup (fichier temporaire voisin, puis renommage)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ContentCache:
    """Contenus déjà produits, rangés par clé (empreinte SHA-256 de tout ce dont ils dépendent) dans
    ``folder`` : ``<clé>-<sha256 du contenu, 16 car.><suffix>``. Fiches PDF (``.pdf``, clé
    :func:`analysis.publishing.fiches.sheet_key`), figures dessinées (``.json``,
    :func:`analysis.publishing.figures.draw`), sources validées (``.pickle``,
    :func:`analysis.reading.cleaning.clean_folder`). Une entrée est vérifiée (empreinte du contenu)
    avant d'être reprise ; abîmée, elle est supprimée et le contenu produit à nouveau. Chaque reprise
    rafraîchit sa date (ordre d'éviction : la moins récemment utilisée d'abord)."""

    def __init__(self, folder: Path | str, suffix: str = ".pdf") -> None:
        # un chemin relatif l'est au dossier courant de la création : ``make report`` se sert de ses
        # caches dans des fils pendant que Papermill exécute un notebook dans le dossier du rapport
        # en construction (le cache y serait sinon écrit, et publié avec le rapport)
        self.folder = Path(folder).resolve()
        self.suffix = suffix  # ".pdf" pour les fiches, ".json" pour les figures (figures.draw)
        self._index: dict[str, str] | None = None

    def _scan(self) -> dict[str, str]:
        if self._index is None:
            index: dict[str, str] = {}
            try:
                with os.scandir(self.folder) as it:
                    for e in it:
                        name = e.name
                        if name.endswith(self.suffix) and len(name) == 64 + 1 + 16 + len(self.suffix) \
                                and name[64] == "-":
                            index[name[:64]] = name
            except FileNotFoundError:
                pass
            self._index = index
        return self._index

    def get(self, key: str) -> bytes | None:
        name = self._scan().get(key)
        if name is None:
            return None
        path = self.folder / name
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest()[:16] != name[65:81]:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return data

    def put(self, key: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{key}-{hashlib.sha256(data).hexdigest()[:16]}{self.suffix}"
        write_atomic(self.folder / name, data)
        if self._index is not None:
            self._index[key] = name

    def prune(self, max_entries: int, max_bytes: int | None = None) -> int:
        """Retire les entrées au-delà de ``max_entries``, ou dont le cumul des tailles (des plus
        récemment utilisées aux plus anciennes) dépasse ``max_bytes``, et les fichiers temporaires
        orphelins de plus d'une heure ; renvoie le nombre retiré. La plus récente est toujours
        gardée."""
        entries, removed, now = [], 0, time.time()
        try:
            with os.scandir(self.folder) as it:
                for e in it:
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    if e.name.endswith(".tmp"):
                        if now - st.st_mtime > 3600:
                            with contextlib.suppress(OSError):
                                os.unlink(e.path)
                                removed += 1
                    elif e.name.endswith(self.suffix):
                        entries.append((st.st_mtime_ns, e.name, e.path, st.st_size))
        except FileNotFoundError:
            return 0
        entries.sort(reverse=True)
        keep, total = 0, 0
        for _, _, _, size in entries[:max_entries]:
            total += size
            if keep and max_bytes is not None and total > max_bytes:
                break
            keep += 1
        for _, _, path, _ in entries[keep:]:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
        self._index = None
        return removed
