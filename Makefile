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
# Bytecode du paquet écrit d'avance (rapide quand il est à jour) : sous PYTHONDONTWRITEBYTECODE, chaque
# processus (principal, noyau des notebooks) recompilerait sinon le paquet à chaque lancement.
BYTECODE := $(PY) -m compileall -q src/analysis > /dev/null || true

# Sous `make -s`, les étapes longues restent silencieuses.
ifneq (,$(findstring s,$(firstword -$(MAKEFLAGS))))
QUIET := --quiet
endif

.PHONY: report verify test test-all lint lock bench demo clean clean-processed help

help:
	@echo "make report [DATA=… OUT=… ANNEE=… REGION=… RULES=…]   construit le rapport annuel"
	@echo "make verify REPORT=reports/2024/28                    refait un rapport publié et le compare"
	@echo "make test                                             lance les tests"
	@echo "make bench                                            mesure les performances"
	@echo "make clean                                            vide les caches (tables nettoyées, fichiers lus, sources validées, calculs, fiches et figures)"
	@echo "make lint                                             vérifie le code (ruff)"
	@echo "make lock                                             régénère requirements.lock (uv, réseau requis)"

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
	@$(BYTECODE)
	@$(PY) -m analysis report --data "$(DATA)" --out "$(OUT)" --annee "$(ANNEE)" \
		--region "$(REGION)" --rules "$(RULES)" --jobs $(JOBS) $(QUIET)

# Refait le rapport publié REPORT d'après son manifest.json (entrées, règles, paramètres) dans un
# dossier temporaire et compare chaque sortie ; DATA et RULES seulement s'ils ont changé de place.
verify: $(STAMP)
	@test -n "$(REPORT)" || { echo "Précisez le rapport : make verify REPORT=reports/<annee>/<region>"; exit 2; }
	@$(BYTECODE)
	@$(PY) -m analysis verify "$(REPORT)" $(if $(filter command line,$(origin DATA)),--data "$(DATA)") \
		$(if $(filter command line,$(origin RULES)),--rules "$(RULES)") --jobs $(JOBS) $(QUIET)

# tests répartis sur TEST_JOBS processus (pytest-xdist) ; TEST_JOBS=0 : dans ce processus
TEST_JOBS ?= 2

test: $(STAMP)
	@$(PY) -m pytest -m "not slow" -n $(TEST_JOBS) tests

test-all: $(STAMP)
	@$(PY) -m pytest -n $(TEST_JOBS) tests

lint: $(STAMP)
	@$(VENV)/bin/ruff check src tests tools

# Régénère requirements.lock à partir des plages de pyproject.toml (uv pip compile ; réseau requis).
# Les versions déjà verrouillées sont gardées tant qu'elles restent compatibles.
UV_VERSION := 0.13.9
lock: $(STAMP)
	@$(PY) -m pip install --disable-pip-version-check -q "uv==$(UV_VERSION)"
	@$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra installation --python-version 3.11.7 \
		--python-platform x86_64-manylinux_2_28 --no-header --annotation-style line -o requirements.lock

bench: $(STAMP)
	@$(BYTECODE)
	@$(PY) -m analysis bench --out reports

demo: $(STAMP)
	@$(PY) -m analysis demo --out "$(DATA)"

# Caches régénérables : tables nettoyées, sources validées, fiches et figures déjà rendues (data/processed,
# y compris .cache-lecture, .cache-fichiers, .cache-tables, .cache-calculs, .cache-fiches et .cache-figures), état « rien à refaire » des rapports ($(OUT)/.etat) ; les rapports restent.
clean:
	@find data/processed -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	@rm -rf "$(OUT)/.etat"
	@echo "Caches vidés (data/processed, $(OUT)/.etat)."
