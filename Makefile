# nncompress course - set-up, run, test.  Everything installs into .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB     ?=
ARGS   ?=

.PHONY: readme-results install run lab test test-fast bench exercises check-exercises params check-params store-outputs classroom report clean-runs

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name nncompress --display-name "nncompress (course)" >/dev/null
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned environment + the course kernel

run: $(STAMP)  ## execute every notebook (or NB=notebooks/01_...ipynb); runs/latest/summary.md + report.md
	$(PY) -m nncompress.run $(NB) --out runs/latest $(ARGS)

lab: $(STAMP)  ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

test: $(STAMP)  ## the whole test suite: lib, exercises, notebook execution, nbval
	$(PY) -m pytest $(ARGS)

test-fast: $(STAMP)  ## the quick loop (< 2 min): no notebook execution, browser, grading runs or other slow tests
	$(PY) -m pytest -m "not notebooks and not browser and not slow" $(ARGS)

bench: $(STAMP)  ## notebook run times and training-loop throughput -> runs/bench/bench.md
	$(PY) -m nncompress.course.bench --out runs/bench $(ARGS)

exercises: $(STAMP)  ## regenerate exercises/ from solutions/ with nbgrader's preprocessors
	$(PY) -m nncompress.course.grading generate

check-exercises: $(STAMP)
	$(PY) -m nncompress.course.grading generate --check

params: $(STAMP)  ## regenerate every notebook's parameters cell and the README chapter table from the chapter specs
	$(PY) -m nncompress.course.generated

check-params: $(STAMP)  ## exit 1 if a parameters cell or the README chapter table is out of date
	$(PY) -m nncompress.course.generated --check

store-outputs: $(STAMP)  ## re-execute notebooks and keep only the outputs nbval compares
	$(PY) -m nncompress.course.nbtools store $(or $(NB),notebooks/*.ipynb)

classroom: $(STAMP)  ## a stock nbgrader course directory in classroom/ (or DIR=...), one assignment per solution
	$(PY) -m nncompress.course.grading course $(or $(DIR),classroom)

report: $(STAMP)  ## refresh the README results block + docs/results/ from runs/latest
	$(PY) -m nncompress.course.report runs/latest --update-readme README.md

readme-results: $(STAMP)  ## README results block from the test suite's notebook runs (default + Fashion-MNIST)
	$(PY) -m nncompress.course.report runs/ci-fashion-mnist --merge artifacts/notebook-runs-fashion-mnist/*/
	$(PY) -m nncompress.course.report runs/ci --merge artifacts/notebook-runs/*/ --update-readme README.md \
	    --also "Real images (Fashion-MNIST): the image chapters, and chapter 01's missing class with MLPs" runs/ci-fashion-mnist

clean-runs:
	rm -rf runs/
