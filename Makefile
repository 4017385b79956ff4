# Two commands do all the set-up on a fresh machine (Python 3.11 + pip):
#   make report   create .venv, install, run every notebook → figures/, reports/
#   make test     create .venv, install, run the test suite
# Real data: FER_DATA_DIR=/path/to/ferplus make report   (else the built-in demo data)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= $(if $(FER_DATA_DIR),configs/ferplus.yaml,configs/demo.yaml)
ARGS   ?=

.PHONY: report test test-fast lint lab install clean-runs reference-report

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	@# WeasyPrint (PDF report) needs Pango from the system; install it where it is missing.
	@ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || \
	  { command -v apt-get >/dev/null && $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; } || \
	  echo "UYARI/WARNING: Pango not found; install it for the PDF report (see README)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(PY) -m fer_helpers run --config $(CONFIG) $(ARGS)

# Regenerate the whole report with the committed reference model (no training). Its own config
# gives the same label mode and validation split the model was trained with (the split matters:
# the prior correction is tuned on validation images the model never trained on). The previous
# release (VGG-Orta) is the compare model of the McNemar test on the same test images.
REFERENCE_CONFIG ?= $(if $(FER_DATA_DIR),configs/ferplus_resnet_w16.yaml,configs/demo.yaml)
reference-report: $(STAMP)
	$(PY) -m fer_helpers run --config $(REFERENCE_CONFIG) -p pretrained_model=$(CURDIR)/models/reference.keras \
	  -p compare_model=$(CURDIR)/models/vgg_mid.keras $(ARGS)

# Two pytest-xdist workers: notebook kernels, PDF rendering and small-model steps leave a core
# idle, so the suite runs faster on 2 cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(ARGS)

# The unit tests only (no notebook runs, no training runs): a few minutes.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow" $(ARGS)

# Style and static checks (ruff; settings in pyproject.toml). CI runs it before the tests.
lint: $(STAMP)
	$(PY) -m ruff check .

lab: $(STAMP)
	$(PY) -m jupyter lab notebooks/

clean-runs:
	rm -rf runs/
