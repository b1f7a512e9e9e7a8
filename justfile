# agentim developer and operator recipes. `just --list` shows them all.

set dotenv-load := false

python := if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" }
lint_imports := if path_exists(".venv/bin/lint-imports") == "true" { ".venv/bin/lint-imports" } else { "lint-imports" }

# List the recipes
default:
    @{{just_executable()}} --list

# Create .venv and install the hub with its dev tools
install:
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'

# Run the hub (embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset)
serve:
    {{python}} -m agentim serve

# Run the hub for development: AGENTIM_ENV=development, LOG_LEVEL=debug, reads .env
dev:
    AGENTIM_ENV=development LOG_LEVEL=debug {{python}} -m agentim --env-file .env serve

# Run the test suite (the command the README and CI use)
test *args:
    {{python}} -m pytest -q {{args}}

# Lint: ruff (incl. ASYNC rules), formatting check, flake8-async, the layer contracts
lint:
    {{python}} -m ruff check agentim tests bench scripts
    {{python}} -m ruff format --check agentim tests bench scripts
    {{python}} -m flake8 --select=ASYNC --disable=ASYNC9,ASYNC127 agentim
    {{lint_imports}} --no-cache

# Format the code
fmt:
    {{python}} -m ruff format agentim tests bench scripts
    {{python}} -m ruff check --fix agentim tests bench scripts

# Type-check the package
typecheck:
    {{python}} -m mypy

# Apply database migrations (idempotent)
migrate:
    {{python}} -m agentim migrate

# Print every configuration problem (exit 1 if any)
check-config:
    {{python}} -m agentim check-config

# Load generator (bench/README.md): needs DATABASE_URL, REDIS_URL, JWT_SECRET; flags replace the default
bench *args="--spawn 1 --clients 50 --senders 5 --outstanding 16":
    {{python}} -m bench {{args}}

# Agent round trips: client send → gateway streams 10 chunks → message_complete
bench-agents *args="--spawn 1 --agents 5 --rate 20":
    {{python}} -m bench.agent_roundtrip {{args}}

# Build the container image with podman (tags agentim:latest; applies this machine's workarounds)
image:
    bash scripts/image-test.sh build

# Run the hub container against this machine's PostgreSQL and Redis (see docs/DEPLOYMENT.md)
up:
    bash scripts/image-test.sh up

# Stop and remove the container started by `just up`
down:
    bash scripts/image-test.sh down

# Container smoke test: build, run, health check, login, message, clean SIGTERM stop
image-test:
    bash scripts/image-test.sh
