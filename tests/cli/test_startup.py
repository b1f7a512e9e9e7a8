"""Start-up and shutdown of `agentim` as a process: config checks, unreachable services,
SIGTERM, migrations, and the embedded default."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from agentim import __version__
from tests.cli.procs import base_env, free_port, run_cli, running_server
from tests.conftest import TEST_JWT_SECRET

PROD = {
    "AGENTIM_ENV": "production",
    "JWT_SECRET": "j" * 40,
    "ENCRYPTION_KEY": "e" * 40,
    "CORS_ORIGIN": "https://chat.example.com",
    "ADMIN_PASSWORD": "Str0ngAdmin",
}


def _health(port: int) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as response:
        return response.status, json.loads(response.read())


def test_version_is_printed(tmp_path: Path) -> None:
    result = run_cli(["--version"], base_env(), tmp_path)
    assert result.returncode == 0 and __version__ in result.stdout


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"JWT_SECRET": "0123456789"}, "Error: JWT_SECRET must be at least 32 characters long"),
        ({"ENCRYPTION_KEY": ""}, "Error: ENCRYPTION_KEY is required"),
        ({"CORS_ORIGIN": "*"}, "Error: CORS_ORIGIN must be an exact origin"),
        ({"ADMIN_PASSWORD": "weakpass"}, "Error: ADMIN_PASSWORD does not meet complexity"),
    ],
)
def test_production_refuses_bad_configuration(
    tmp_path: Path, overrides: dict[str, str], expected: str, database_url: str, redis_url: str
) -> None:
    env = base_env(**{**PROD, "DATABASE_URL": database_url, "REDIS_URL": redis_url, **overrides})
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr


def test_production_requires_database_and_redis_urls(tmp_path: Path) -> None:
    result = run_cli(["serve"], base_env(**PROD), tmp_path)
    assert result.returncode == 1
    assert "Error: DATABASE_URL is required in production" in result.stderr
    assert "Error: REDIS_URL is required in production" in result.stderr


def test_check_config_lists_every_problem_at_once(tmp_path: Path) -> None:
    env = base_env(AGENTIM_ENV="production", JWT_SECRET="short", CORS_ORIGIN="https://x.com/")
    result = run_cli(["check-config"], env, tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) >= 5
    assert "Error: JWT_SECRET must be at least 32 characters long" in errors
    assert "Error: ENCRYPTION_KEY is required" in errors


def test_check_config_passes_a_good_configuration(tmp_path: Path) -> None:
    env = base_env(**PROD, DATABASE_URL="postgresql://db/x", REDIS_URL="redis://r:6379")
    result = run_cli(["check-config"], env, tmp_path)
    assert result.returncode == 0, result.stderr


def test_check_config_and_readme_agree_on_an_unset_admin_password(tmp_path: Path) -> None:
    """README: a weak ADMIN_PASSWORD is refused in production, an unset one is allowed (api.md
    §4.11: no admin is seeded) and check-config says so."""
    good = {**PROD, "DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:6379"}
    unset = run_cli(["check-config"], base_env(**{**good, "ADMIN_PASSWORD": ""}), tmp_path)
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.splitlines() == [
        "Configuration OK (production)",
        "Note: ADMIN_PASSWORD is unset: no admin user is seeded",
    ]
    weak = run_cli(["check-config"], base_env(**{**good, "ADMIN_PASSWORD": "weakpass"}), tmp_path)
    assert weak.returncode == 1
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "with a weak `ADMIN_PASSWORD`" in readme
    assert "An unset `ADMIN_PASSWORD` is allowed" in readme


def test_unwritable_upload_dir_is_fatal(tmp_path: Path, database_url: str, redis_url: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    upload_dir = blocker / "uploads"
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        UPLOAD_DIR=str(upload_dir),
        JWT_SECRET=TEST_JWT_SECRET,
    )
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert f"Fatal: Upload directory is not writable: {upload_dir}" in result.stderr


def test_s3_storage_without_credentials_or_bucket_is_fatal_in_development(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = base_env(DATABASE_URL=database_url, REDIS_URL=redis_url, STORAGE_PROVIDER="s3",
                   S3_BUCKET="b", JWT_SECRET=TEST_JWT_SECRET)  # fmt: skip
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert (
        "Error: STORAGE_PROVIDER=s3 requires: S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY"
        in result.stderr
    )
    unreachable = {**env, "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s",
                   "S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}  # fmt: skip
    result = run_cli(["serve"], unreachable, tmp_path)
    assert result.returncode == 1
    assert "Fatal: S3 bucket is not reachable: b" in result.stderr


def test_unreachable_postgres_fails_with_the_seed_text(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    env = base_env(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x",
        REDIS_URL=redis_url,
        JWT_SECRET=TEST_JWT_SECRET,
        DATA_DIR=str(tmp_path / "d"),
    )
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert f"Error: connect ECONNREFUSED 127.0.0.1:{port}" in result.stderr


def test_unreachable_redis_fails_with_the_seed_text(tmp_path: Path, database_url: str) -> None:
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        JWT_SECRET=TEST_JWT_SECRET,
        DATA_DIR=str(tmp_path / "d"),
    )
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert "Error: Redis connection refused" in result.stderr


def test_external_services_serve_and_sigterm_exits_zero(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PORT=str(free_port()),
        JWT_SECRET=TEST_JWT_SECRET,
        ADMIN_PASSWORD="AdminPass123",
        UPLOAD_DIR=str(tmp_path / "up"),
        DATA_DIR=str(tmp_path / "d"),
        LOG_LEVEL="info",
        HOST="127.0.0.1",
    )
    with running_server(env, tmp_path) as server:
        status, body = _health(server.port)
        assert status == 200 and body["ok"] is True
        code, elapsed = server.stop()
    assert code == 0 and elapsed < 10
    assert any("SIGTERM received, shutting down gracefully" in line for line in server.lines)
    assert (tmp_path / "up").is_dir()


def test_migrate_twice_changes_nothing(tmp_path: Path, database_url: str) -> None:
    env = base_env(DATABASE_URL=database_url, JWT_SECRET=TEST_JWT_SECRET)
    first = run_cli(["migrate"], env, tmp_path)
    second = run_cli(["migrate"], env, tmp_path)
    assert first.returncode == 0 and second.returncode == 0
    assert "Schema is up to date" in second.stdout


def _children_of(pid: int) -> list[str]:
    result = subprocess.run(
        ["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True, check=True
    )
    return [line for line in result.stdout.splitlines()[1:] if line.split()[1] == str(pid)]


def test_embedded_default_starts_restarts_and_leaves_nothing_behind(
    tmp_path: Path, embedded_dir: Path
) -> None:
    data_dir = embedded_dir / "data"
    env = base_env(
        PORT=str(free_port()),
        DATA_DIR=str(data_dir),
        UPLOAD_DIR=str(tmp_path / "up"),
        HOST="127.0.0.1",
        LOG_LEVEL="info",
    )
    with running_server(env, tmp_path, timeout=120) as server:
        status, body = _health(server.port)
        assert status == 200 and body["ok"] is True
        assert body["services"] == {**body["services"]} and body["services"]["database"]["embedded"]
        assert _children_of(server.proc.pid)  # postgres and valkey run as our children
        code, elapsed = server.stop()
    assert code == 0 and elapsed < 10
    assert any("Generated admin login: admin / " in line for line in server.lines)
    secrets_file = data_dir / "secrets.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    leftovers = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
    before = secrets_file.read_text()
    env["PORT"] = str(free_port())
    with running_server(env, tmp_path, timeout=120) as again:
        assert _health(again.port)[1]["ok"] is True
        code, _ = again.stop()
    assert code == 0
    assert secrets_file.read_text() == before  # secrets reused, password not printed again
    assert not any("Generated admin login" in line for line in again.lines)
