import gc
import logging
import os
import sys

from .orchestration.cli import main

# Les objets déjà créés (modules importés) ne sont plus parcourus par le ramasse-miettes : ses
# passages complets pendant un rapport coûtent moins.
gc.freeze()
status = main()
# Fin du processus sans défaire un à un les millions d'objets créés (environ 0,5 s sur un rapport
# régional) : tout est déjà écrit et fermé (rapports remplacés, pools et noyau arrêtés) ; il reste
# à vider les sorties standard et la journalisation.
if sys.gettrace() is None and sys.getprofile() is None:  # sous coverage ou cProfile : fin normale
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status or 0)
raise SystemExit(status)
