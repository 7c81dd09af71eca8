# CPOM qualité — rapport annuel reproductible.
#   make report   construit le rapport (crée .venv au premier usage)
#   make test     lance les tests
# Paramètres : DATA, OUT, ANNEE, REGION, RULES (voir README).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= data/raw
OUT    ?= reports
ANNEE  ?=
REGION ?=
RULES  ?= config/regles_cpom.yml
JOBS   ?= 2

STAMP := $(VENV)/.installe

# Sous `make -s`, les étapes longues restent silencieuses.
ifneq (,$(findstring s,$(firstword -$(MAKEFLAGS))))
QUIET := --quiet
endif

.PHONY: report test test-all bench demo clean help

help:
	@echo "make report [DATA=… OUT=… ANNEE=… REGION=… RULES=…]   construit le rapport annuel"
	@echo "make test                                             lance les tests"
	@echo "make bench                                            mesure les performances"
	@echo "make clean                                            vide les caches (tables nettoyées, fiches déjà rendues)"

$(STAMP): requirements.lock pyproject.toml
	@echo "Création de l'environnement $(VENV) (première utilisation)…"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@{ $(PY) -m pip install --disable-pip-version-check -r requirements.lock && \
	   $(PY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e . ; } \
	   > $(VENV)/installation.log 2>&1 || { tail -n 30 $(VENV)/installation.log; \
	   echo "Échec de l'installation de l'environnement : voir $(VENV)/installation.log"; exit 1; }
	@$(PY) -c "from analysis.orchestration.pipeline import ensure_kernel; ensure_kernel()"
	@touch $(STAMP)

report: $(STAMP)
	@$(PY) -m analysis report --data "$(DATA)" --out "$(OUT)" --annee "$(ANNEE)" \
		--region "$(REGION)" --rules "$(RULES)" --jobs $(JOBS) $(QUIET)

test: $(STAMP)
	@$(PY) -m pytest -m "not slow" tests

test-all: $(STAMP)
	@$(PY) -m pytest tests

bench: $(STAMP)
	@$(PY) -m analysis bench --out reports

demo: $(STAMP)
	@$(PY) -m analysis demo --out "$(DATA)"

# Caches régénérables : tables nettoyées et fiches déjà rendues (data/processed, y compris
# .cache-fiches), état « rien à refaire » des rapports ($(OUT)/.etat) ; les rapports restent.
clean:
	@find data/processed -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	@rm -rf "$(OUT)/.etat"
	@echo "Caches vidés (data/processed, $(OUT)/.etat)."
