"""Push providers in the configuration: what each kind needs, checked at load with the key
named; secrets read from files and kept out of error texts; and the notifiers built and
registered under their configured names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config.outbound_parts import build_notifiers
from config.settings import ConfigError, Settings, load_settings
from notifiers.push_credentials import b64url
from notifiers.push_fcm import FcmNotifier
from notifiers.push_ntfy import NtfyNotifier
from notifiers.push_webpush import WebPushNotifier


def load(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "ventanilla.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings(path, {})


def problems(tmp_path: Path, toml: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml)
    return {p.key: p.message for p in info.value.problems}


def service_account(**changes: object) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "ventanilla-prod",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "notices@ventanilla-prod.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
        **changes,
    }
    return json.dumps({k: v for k, v in account.items() if v is not None})


def raw_vapid_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def test_an_enabled_provider_missing_its_keys_is_an_error_naming_each(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "[notifiers.push.web]\nenabled = true\nkind = \"webpush\"\n"
        "[notifiers.push.fcm]\nenabled = true\nkind = \"fcm\"\n",
    )  # fmt: skip
    assert set(found) == {
        "notifiers.push.web.vapid_private_key",
        "notifiers.push.web.vapid_subject",
        "notifiers.push.fcm.service_account_file",
    }
    assert 'required when kind = "webpush"' in found["notifiers.push.web.vapid_private_key"]


def test_a_disabled_provider_is_not_checked(tmp_path: Path) -> None:
    settings = load(tmp_path, '[notifiers.push.web]\nenabled = false\nkind = "webpush"\n')
    assert build_notifiers(settings) == {}


def test_unusable_keys_are_errors_that_do_not_quote_them(tmp_path: Path) -> None:
    (tmp_path / "sa.json").write_text(service_account(private_key="-----BEGIN nope"))
    secret = "c2VjcmV0LW5vdC1hLWtleS1hdC1hbGwtbm90LWV2ZW4tY2xvc2U"
    found = problems(
        tmp_path,
        f'[notifiers.push.web]\nenabled = true\nkind = "webpush"\n'
        f'vapid_private_key = "{secret}"\nvapid_subject = "soporte@example.com"\n'
        '[notifiers.push.fcm]\nenabled = true\nkind = "fcm"\nservice_account_file = "sa.json"\n',
    )
    assert "not a private key" in found["notifiers.push.web.vapid_private_key"]
    assert "mailto:" in found["notifiers.push.web.vapid_subject"]
    assert "not a PEM private key" in found["notifiers.push.fcm.service_account_file"]
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'[notifiers.push.web]\nenabled = true\nkind = "webpush"\n'
                       f'vapid_private_key = "{secret}"\n')  # fmt: skip
    said = f"{info.value} {info.value.__cause__}"
    assert secret[:12] not in said  # not even the start of it


def test_a_project_is_needed_from_the_account_or_the_config(tmp_path: Path) -> None:
    (tmp_path / "sa.json").write_text(service_account(project_id=None))
    fcm = '[notifiers.push.fcm]\nenabled = true\nkind = "fcm"\nservice_account_file = "sa.json"\n'
    assert "no project_id" in problems(tmp_path, fcm)["notifiers.push.fcm.project_id"]
    settings = load(tmp_path, fcm + 'project_id = "ventanilla-staging"\n')
    notifier = build_notifiers(settings)["fcm"]
    assert isinstance(notifier, FcmNotifier)
    assert notifier.url == (
        "https://fcm.googleapis.com/v1/projects/ventanilla-staging/messages:send"
    )


def test_another_notifiers_name_cannot_be_taken(tmp_path: Path) -> None:
    found = problems(tmp_path, '[notifiers.push.email]\nkind = "ntfy"\n')
    assert "the name of another notifier" in found["notifiers.push"]


def test_providers_are_built_from_files_and_registered_by_name(tmp_path: Path) -> None:
    (tmp_path / "vapid.key").write_text(raw_vapid_key() + "\n")
    (tmp_path / "sa.json").write_text(service_account())
    (tmp_path / "ntfy.token").write_text("tk_abc\n")
    settings = load(
        tmp_path,
        '[notifiers.push.navegador]\nenabled = true\nkind = "webpush"\n'
        'vapid_private_key_file = "vapid.key"\nvapid_subject = "mailto:soporte@example.com"\n'
        "concurrency = 3\n"
        '[notifiers.push.moviles]\nenabled = true\nkind = "fcm"\n'
        'service_account_file = "sa.json"\ntoken_uri = "http://127.0.0.1:9/token"\n'
        '[notifiers.push.guardia]\nenabled = true\nkind = "ntfy"\n'
        'token_file = "ntfy.token"\ntimeout_seconds = 2.5\n',
    )
    found = build_notifiers(settings)
    assert set(found) == {"navegador", "moviles", "guardia"}
    web, fcm, ntfy = found["navegador"], found["moviles"], found["guardia"]
    assert isinstance(web, WebPushNotifier) and web.concurrency == 3 and web.name == "navegador"
    assert isinstance(fcm, FcmNotifier) and fcm.tokens.token_uri == "http://127.0.0.1:9/token"
    assert fcm.project_id == "ventanilla-prod"
    assert isinstance(ntfy, NtfyNotifier) and ntfy.config.token == "tk_abc"
    assert ntfy.base_url == "https://ntfy.sh" and ntfy.http.timeout.total == 2.5
    assert all(n.channel == "push" for n in found.values())
    assert "tk_abc" not in repr(ntfy.config) and "BEGIN" not in repr(fcm.tokens.account)


def test_secrets_stay_out_of_the_settings_repr(tmp_path: Path) -> None:
    key = raw_vapid_key()
    settings = load(
        tmp_path,
        f'[notifiers.push.web]\nenabled = true\nkind = "webpush"\nvapid_private_key = "{key}"\n'
        'vapid_subject = "https://soporte.example.com/contacto"\n'
        '[notifiers.push.ntfy]\nenabled = true\ntoken = "tk_secreto"\n',
    )
    assert key not in repr(settings) and "tk_secreto" not in repr(settings)
    assert settings.notifiers.push["web"].vapid_private_key == key
