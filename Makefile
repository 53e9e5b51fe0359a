# The two commands: `make serve` (set up, then run the server on the mock driver)
# and `make test` (set up, then run the whole test suite). Everything else is a step of those.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup serve test proto lint typecheck clean

TS := clients/typescript

setup: $(STAMP) node_modules/.installed clients/node/node_modules/.installed $(TS)/gen/.generated

TEST_DRIVERS := tests/drivers/limited
# The worked example of docs/writing-a-driver.md, a separate package like any cloud's driver.
FOO_DRIVER   := examples/foo-driver

$(STAMP): pyproject.toml Makefile $(wildcard $(TEST_DRIVERS)/*.py $(TEST_DRIVERS)/pyproject.toml) \
		$(wildcard $(FOO_DRIVER)/pyproject.toml $(FOO_DRIVER)/README.md \
		$(FOO_DRIVER)/deltacloud_foo/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# Third-party-style drivers only the tests use, installed like any driver package but
	# apart ($(VENV)/test-drivers, put on the tests' path by tests/conftest.py): a server
	# started by `make serve` does not offer them. (Removed from site-packages where an
	# older setup put them.)
	-$(BIN)/pip uninstall --quiet --yes deltacloud-limited-test-driver 2>/dev/null
	rm -rf $(VENV)/test-drivers
	$(BIN)/pip install --quiet --no-deps --target $(VENV)/test-drivers $(TEST_DRIVERS)
	$(BIN)/pip install --quiet --no-deps $(FOO_DRIVER)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Node.js client (clients/node), tested by tests/test_node_client.py.
clients/node/node_modules/.installed: clients/node/package.json clients/node/package-lock.json
	npm ci --prefix clients/node --no-audit --no-fund --loglevel=error
	touch $@

# The JavaScript/TypeScript client: stubs generated ahead of time with protoc-gen-es (not
# committed), from protos/ and from google/rpc/error_details.proto as installed with grpcio-status.
$(TS)/node_modules/.installed: $(TS)/package.json $(TS)/package-lock.json
	npm ci --prefix $(TS) --no-audit --no-fund --loglevel=error
	touch $@

$(TS)/gen/.generated: $(wildcard protos/deltacloud/v1/*.proto) $(TS)/buf.gen.yaml \
		$(TS)/node_modules/.installed node_modules/.installed $(STAMP)
	rm -rf $(TS)/gen
	cd $(TS) && ../../node_modules/.bin/buf generate ../../protos --template buf.gen.yaml
	cd $(TS) && rpc="$$(../../$(BIN)/python -c 'import google.rpc.error_details_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')" && \
		../../node_modules/.bin/buf generate "$$rpc" --path "$$rpc/google/rpc/error_details.proto" --template buf.gen.yaml
	touch $@

serve: setup
	$(BIN)/deltacloud-server $(ARGS)

# The suite spends most of its time waiting on the servers, moto and the clients it starts
# (alone it kept two cores 70% idle), so it runs in TEST_WORKERS processes, one test file
# each at a time (a module's shared server stays in one process). TEST_WORKERS=0 runs it in
# this process, as plain pytest does.
TEST_WORKERS ?= 3

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Regenerate the committed Python code from protos/ (tests fail if it is stale).
proto: $(STAMP)
	$(BIN)/python scripts/genproto.py
	$(BIN)/python scripts/genclient.py

lint: setup
	$(BIN)/ruff check server drivers clients tests scripts examples bench
	node_modules/.bin/buf lint protos

# mypy --strict on deltacloud.server and deltacloud.drivers (see scripts/typecheck.py for why
# it is not a plain `mypy` call).
typecheck: $(STAMP)
	$(BIN)/python scripts/typecheck.py

clean:
	rm -rf $(VENV) node_modules clients/node/node_modules $(TS)/node_modules $(TS)/gen
