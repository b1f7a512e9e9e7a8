#!/usr/bin/env bash
# Container smoke test: build the image, run it against this machine's PostgreSQL and Redis,
# wait for its HEALTHCHECK, speak the protocol to it (scripts/smoke_client.py), then stop it
# with SIGTERM and check it exits 0 with the shutdown line in its log.
#
# Usage:
#   scripts/image-test.sh            the whole smoke test with image agentim:test (PASS or FAIL)
#   scripts/image-test.sh prepare    podman, its private engine config and the base image only;
#                                    prints the CONTAINERS_CONF path on stdout
#   scripts/image-test.sh build      prepare, then build $IMAGE (default agentim:latest)
#   scripts/image-test.sh up         build, then run it as container agentim-server with
#                                    --network host against this machine's PostgreSQL and Redis
#                                    (database agentim, created if missing), config from $ENV_FILE
#   scripts/image-test.sh down       stop (SIGTERM, 20 s) and remove agentim-server
#
# Environment (all optional):
#   IMAGE                image tag to build and run
#   ENV_FILE             env file for `up` (default .env, if present): podman reads it, so one
#                        KEY=value per line without quotes; DATABASE_URL and REDIS_URL set there
#                        replace the machine's services
#   CONTAINERS_CONF      an engine config to use instead of writing the private one
#   PGHOST PGPORT PGUSER the PostgreSQL that gets a throw-away database (127.0.0.1 5432 postgres)
#   SMOKE_REDIS_DB       Redis database number on 127.0.0.1:6379 (default 13)
#   SMOKE_PYTHON         host Python with trio, httpx, trio-websocket (default .venv/bin/python)
#   HEALTH_WAIT_S        how long the container gets to become healthy (default 60)
#
# The podman workarounds are those of the machines this project is built on (shared notes):
# runc and cgroupfs, ulimits within the hard limits, no registry (the python:3.11-slim base is
# made with debootstrap), `--format docker` so HEALTHCHECK survives, and the host CA bundle
# mounted into RUN steps for pip.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COMMAND=${1:-test}
if [[ $COMMAND == test ]]; then IMAGE=${IMAGE:-agentim:test}; else IMAGE=${IMAGE:-agentim:latest}; fi
CONTAINER=agentim-smoke
UP_CONTAINER=agentim-server
ENV_FILE=${ENV_FILE:-.env}
BASE_IMAGE=python:3.11-slim
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
SMOKE_REDIS_DB=${SMOKE_REDIS_DB:-13}
SMOKE_PYTHON=${SMOKE_PYTHON:-.venv/bin/python}
HEALTH_WAIT_S=${HEALTH_WAIT_S:-60}
STOP_TIMEOUT_S=20  # above the hub's 10 s shutdown bound (DECISIONS D14)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

STAGE=start
FAILED=()
DB_NAME=
REDIS_PREFIX=

log() { printf '[image-test] %s\n' "$*" >&2; }

# ---- podman on this machine -------------------------------------------------------------------

ensure_podman() {
    if command -v podman >/dev/null && command -v runc >/dev/null; then
        return
    fi
    log "installing podman, runc and debootstrap (about 30 s)"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap >&2
}

write_containers_conf() {
    if [[ -n ${CONTAINERS_CONF:-} ]]; then
        log "using CONTAINERS_CONF=$CONTAINERS_CONF"
        export CONTAINERS_CONF
        return
    fi
    # crun refuses this machine's hybrid cgroups (so runc), and podman's default ulimits exceed
    # the hard limits here (nofile 20000, nproc 32768). Nothing under /etc/containers changes.
    local dir=${XDG_RUNTIME_DIR:-/tmp}/agentim-podman
    mkdir -p "$dir"
    cat >"$dir/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF=$dir/containers.conf
}

ensure_base_image() {
    if podman image exists "$BASE_IMAGE"; then
        return
    fi
    # No registry is reachable here: build a Debian bookworm image with its Python 3.11 and tag
    # it with the name the Containerfile's FROM uses (about a minute, once per machine).
    command -v debootstrap >/dev/null || {
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
    }
    local rootfs
    rootfs=$(mktemp -d /tmp/agentim-rootfs.XXXXXX)
    log "building base image $BASE_IMAGE with debootstrap in $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3 \
        bookworm "$rootfs" http://deb.debian.org/debian >&2
    tar -C "$rootfs" -c . | podman import --change 'ENV LANG=C.UTF-8' - \
        localhost/debian-python:bookworm >&2
    rm -rf "$rootfs"
    podman tag localhost/debian-python:bookworm "$BASE_IMAGE"
}

prepare() {
    STAGE=prepare
    ensure_podman
    write_containers_conf
    ensure_base_image
}

build_image() {
    STAGE=build
    local started=$SECONDS previous
    previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    log "building $IMAGE"
    # --format docker: the default OCI format drops HEALTHCHECK. The CA bundle is mounted for the
    # RUN steps only (pip over HTTPS), never baked into a layer.
    podman build --format docker -v "$CA_BUNDLE:$CA_BUNDLE:ro" -f Containerfile -t "$IMAGE" . >&2
    # Drop the image this tag replaced (its layers would pile up run after run), but not the
    # untagged builder-stage images: they are the layer cache that makes the next build fast.
    if [[ -n $previous && $previous != $(podman image inspect --format '{{.Id}}' "$IMAGE") ]]; then
        podman rmi "$previous" >/dev/null 2>&1 || true
    fi
    log "built $IMAGE in $((SECONDS - started)) s, $(podman image inspect --format '{{.Size}}' \
        "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"
}

# ---- the smoke test -----------------------------------------------------------------------------

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cleanup() {
    local status=$?
    set +e
    if podman container exists "$CONTAINER" 2>/dev/null; then
        podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1
    fi
    if [[ -n $DB_NAME ]]; then
        psql -X -q -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres \
            -c "drop database if exists $DB_NAME with (force)" >/dev/null
    fi
    if [[ -n $REDIS_PREFIX ]]; then
        redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$SMOKE_REDIS_DB" --scan \
            --pattern "${REDIS_PREFIX}*" | xargs -r redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" \
            -n "$SMOKE_REDIS_DB" del >/dev/null
    fi
    if [[ $status -eq 0 && ${#FAILED[@]} -eq 0 ]]; then
        echo "PASS: image smoke test ($IMAGE)"
    else
        echo "FAIL: image smoke test ($IMAGE): ${FAILED[*]:-stopped in stage $STAGE}"
        [[ $status -ne 0 ]] || status=1
    fi
    exit "$status"
}

wait_healthy() {
    # No systemd here, so nothing runs the HEALTHCHECK on its schedule: run it until it passes.
    local container=$1 deadline=$((SECONDS + HEALTH_WAIT_S))
    STAGE=health
    until podman healthcheck run "$container" >/dev/null 2>&1; do
        if [[ $(podman inspect --format '{{.State.Running}}' "$container") != true ]]; then
            log "container exited before it was healthy; its log ends:"
            podman logs --tail 40 "$container" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "not healthy after ${HEALTH_WAIT_S} s; its log ends:"
            podman logs --tail 40 "$container" >&2 || true
            return 1
        fi
        sleep 1
    done
    log "healthy: $(podman inspect --format '{{.State.Health.Status}}' "$container")"
}

smoke_test() {
    trap cleanup EXIT
    prepare
    build_image

    STAGE=database
    local run_id port
    run_id=$(random_hex 4)
    DB_NAME=agentim_image_$run_id
    REDIS_PREFIX=image-smoke-$run_id:
    port=$(free_port)
    psql -X -q -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -c "create database $DB_NAME"

    STAGE=run
    podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
    log "starting $CONTAINER on port $port (database $DB_NAME, redis db $SMOKE_REDIS_DB)"
    podman run -d --name "$CONTAINER" --network host \
        -e AGENTIM_ENV=production \
        -e DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$DB_NAME" \
        -e REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/$SMOKE_REDIS_DB" \
        -e REDIS_KEY_PREFIX="$REDIS_PREFIX" \
        -e JWT_SECRET="$(random_hex 24)" \
        -e ENCRYPTION_KEY="$(random_hex 24)" \
        -e ADMIN_PASSWORD=SmokeTest123 \
        -e CORS_ORIGIN=http://localhost:8080 \
        -e PORT="$port" \
        "$IMAGE" >/dev/null

    wait_healthy "$CONTAINER"

    STAGE=protocol
    if ! "$SMOKE_PYTHON" scripts/smoke_client.py --port "$port" --username admin \
        --password SmokeTest123; then
        FAILED+=("smoke client")
    fi

    STAGE=stop
    local stopped=$SECONDS code
    podman stop -t "$STOP_TIMEOUT_S" "$CONTAINER" >/dev/null
    code=$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")
    log "stopped in $((SECONDS - stopped)) s with exit code $code; the log ends:"
    podman logs --tail 8 "$CONTAINER" 2>&1 | sed 's/^/    /' >&2
    [[ $code == 0 ]] || FAILED+=("exit code $code after SIGTERM")
    if ! podman logs "$CONTAINER" 2>&1 | grep -q 'SIGTERM received, shutting down gracefully'; then
        FAILED+=("no shutdown line in the log")
    fi
    STAGE=finished
}

# ---- a local hub container ---------------------------------------------------------------------

set_in_env_file() { [[ -f $ENV_FILE ]] && grep -Eq "^[[:space:]]*$1=[^[:space:]]" "$ENV_FILE"; }

up() {
    prepare
    build_image
    STAGE=up
    local args=(--name "$UP_CONTAINER" --network host
        -v agentim-data:/app/data -v agentim-uploads:/app/uploads)
    if [[ -f $ENV_FILE ]]; then
        args+=(--env-file "$ENV_FILE")
    fi
    # This machine's services, unless the env file names others.
    if ! set_in_env_file DATABASE_URL; then
        if [[ -z $(psql -X -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -Atc \
            "select 1 from pg_database where datname = 'agentim'") ]]; then
            psql -X -q -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -c 'create database agentim'
        fi
        args+=(-e "DATABASE_URL=postgresql://$PGUSER@$PGHOST:$PGPORT/agentim")
    fi
    if ! set_in_env_file REDIS_URL; then
        args+=(-e "REDIS_URL=redis://$REDIS_HOST:$REDIS_PORT/0")
    fi
    podman rm -f -t 20 "$UP_CONTAINER" >/dev/null 2>&1 || true
    podman run -d "${args[@]}" "$IMAGE" >/dev/null
    wait_healthy "$UP_CONTAINER"
    podman logs "$UP_CONTAINER" 2>&1 | grep -m1 'server running at' >&2 || true
    log "logs: podman logs -f $UP_CONTAINER; stop: scripts/image-test.sh down"
}

down() {
    prepare
    if podman container exists "$UP_CONTAINER"; then
        podman stop -t "$STOP_TIMEOUT_S" "$UP_CONTAINER" >/dev/null
        log "stopped with exit code $(podman inspect --format '{{.State.ExitCode}}' "$UP_CONTAINER")"
        podman rm "$UP_CONTAINER" >/dev/null
    fi
}

case $COMMAND in
    prepare)
        prepare
        echo "$CONTAINERS_CONF"
        ;;
    build)
        prepare
        build_image
        ;;
    up) up ;;
    down) down ;;
    test) smoke_test ;;
    *)
        echo "usage: $0 [test|prepare|build|up|down]" >&2
        exit 2
        ;;
esac
