"""Configuration: TOML + environment overrides, secrets from files, paths, and errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from config import cli
from config.settings import DEFAULT_CONFIG, ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "v.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid_and_complete() -> None:
    settings = load_settings(DEFAULT_CONFIG, {})
    assert settings.http.host == "127.0.0.1"
    assert settings.database.url.endswith("/config/ventanilla.db")
    names = [s.name for s in settings.catalog.statuses]
    assert names == [
        "Abierta",
        "Autorizada",
        "En Progreso",
        "Esperando Respuesta",
        "Retenida",
        "Cerrada",
        "Cancelada",
    ]
    assert [p.name for p in settings.catalog.priorities] == ["Bajo", "Normal", "Alta", "Urgente"]
    assert [s.name for s in settings.catalog.severities] == ["Baja", "Medios", "Alta", "Crítica"]
    assert {c.name for c in settings.catalog.categories} == {
        "Problema Grave",
        "Problema menor",
        "Otro tipo de Problema",
    }


def test_environment_overrides_any_key() -> None:
    settings = load_settings(
        DEFAULT_CONFIG,
        {
            "VENTANILLA_HTTP__PORT": "9123",
            "VENTANILLA_SMTP__PROTOCOL": "lmtp",
            "VENTANILLA_DATABASE__URL": "postgresql+asyncpg://u@h/db",
            "VENTANILLA_INTAKE__MAX_ATTACHMENTS": "3",
            "OTHER_VAR": "ignored",
        },
    )
    assert settings.http.port == 9123
    assert settings.smtp.protocol == "lmtp"
    assert settings.database.url == "postgresql+asyncpg://u@h/db"
    assert settings.intake.max_attachments == 3


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cr3t\n")
    path = write(
        tmp_path,
        '[database]\nurl = "sqlite+aiosqlite:///data/v.db"\n'
        '[intake]\nattachments_dir = "files"\n'
        '[http]\nsecret_key_file = "secret"\n',
    )
    settings = load_settings(path, {})
    assert settings.database.url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'v.db'}"
    assert settings.intake.attachments_dir == tmp_path / "files"
    assert settings.http.secret_key == "s3cr3t"


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[http]\nprot = 1\nport = "x"\n[smtp]\nprotocol = "pop3"\n[bogus]\na = 1\n'
        '[imap.main]\nhost = "h"\nusername = "u"\npassword_file = "missing"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, {"VENTANILLA_DATABASE__URLL": "x"})
    keys = {p.key for p in info.value.problems}
    assert {"http.prot", "http.port", "smtp.protocol", "bogus", "database.urll"} <= keys
    assert "imap.main.password_file" in keys


def test_catalog_references_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[catalog]\nareas = [{ name = "A", default = true }]\n'
        '[[catalog.categories]]\nname = "C"\narea = "Nope"\ndefault = true\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert any("unknown area" in p.message for p in info.value.problems)


def test_config_check_command(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["--config", str(DEFAULT_CONFIG), "config", "check"], out, err) == 0
    assert "is valid" in out.getvalue()
    bad = write(tmp_path, "[http]\nport = 99999\nbogus = true\n")
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["config", "check", "--config", str(bad)], out, err) == 1
    assert "http.port" in err.getvalue() and "http.bogus: unknown key" in err.getvalue()


def test_log_retention_keys(tmp_path: Path) -> None:
    log = load_settings(DEFAULT_CONFIG, {}).log
    assert (log.keep_days, log.prune_batch, log.prune_every_minutes) == (365, 500, 60)
    env = {"VENTANILLA_LOG__KEEP_DAYS": "0", "VENTANILLA_LOG__PRUNE_BATCH": "50"}
    log = load_settings(DEFAULT_CONFIG, env).log
    assert (log.keep_days, log.prune_batch) == (0, 50)
    bad = write(tmp_path, "[log]\nkeep_days = -1\nprune_batch = 0\nprune_every_minutes = 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad, {})
    keys = {p.key for p in info.value.problems}
    assert keys == {"log.keep_days", "log.prune_batch", "log.prune_every_minutes"}
    with pytest.raises(ConfigError) as info:
        load_settings(DEFAULT_CONFIG, {"VENTANILLA_LOG__KEEP_DAYS": "a year"})
    assert [p.key for p in info.value.problems] == ["log.keep_days"]
