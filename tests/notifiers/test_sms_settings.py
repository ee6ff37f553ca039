"""SMS configuration: the provider sections, their checks, secrets from files, and the
registry of notifiers the daemon builds from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.app import default_providers
from config.outbound_parts import build_notifiers
from config.settings import DEFAULT_CONFIG, ConfigError, Settings, load_settings
from notifiers.sms_generic import GenericSmsNotifier
from notifiers.sms_twilio import TwilioNotifier
from notifiers.sms_vonage import VonageNotifier


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "v.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, {})


ALL_THREE = """
[http]
public_url = "https://soporte.example.com/"
[sms]
default_region = "ES"
[sms.twilio]
enabled = true
account_sid = "AC1"
auth_token_file = "twilio.token"
from_number = "MG123"
concurrency = 2
[sms.vonage]
enabled = true
api_key = "k"
api_secret_file = "vonage.secret"
from_number = "Soporte"
delivery_receipts = false
[sms.generic]
enabled = true
url = "https://sms.example.com/send"
body_template = "to={{ to|urlencode }}&text={{ text|urlencode }}"
content_type = "application/x-www-form-urlencoded"
[sms.generic.headers]
X-Api-Key = "abc"
"""


def test_the_example_documents_the_sms_sections_with_providers_off() -> None:
    sms = load_settings(DEFAULT_CONFIG, {}).sms
    assert not (sms.twilio.enabled or sms.vonage.enabled or sms.generic.enabled)
    assert sms.vonage.signature_method == "md5hash"
    assert (sms.twilio.concurrency, sms.twilio.timeout_seconds) == (4, 15.0)
    assert sms.generic.success_codes == [200, 201, 202]
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for key in (
        "status_callback",
        "signature_method",
        "delivery_receipts",
        "body_template",
        "message_id_path",
        "success_codes",
        "timeout_seconds",
        "[sms.generic.headers]",
    ):
        assert key in text  # fmt: skip


def test_every_provider_is_registered_under_its_name(tmp_path: Path) -> None:
    (tmp_path / "twilio.token").write_text("token-from-file\n")
    (tmp_path / "vonage.secret").write_text("secret-from-file\n")
    settings = load(tmp_path, ALL_THREE)
    found = build_notifiers(settings)
    twilio, vonage, generic = found["twilio"], found["vonage"], found["generic"]
    assert isinstance(twilio, TwilioNotifier) and isinstance(vonage, VonageNotifier)
    assert isinstance(generic, GenericSmsNotifier)
    assert twilio.config.auth_token == "token-from-file"
    assert twilio.config.status_callback_url == (
        "https://soporte.example.com/webhooks/twilio/status"
    )
    assert (twilio.concurrency, twilio.config.default_region) == (2, "ES")
    assert vonage.config.api_secret == "secret-from-file" and vonage.config.receipt_url is None
    assert generic.config.headers == {"X-Api-Key": "abc"}
    assert "token-from-file" not in repr(twilio.config)  # secrets stay out of logs
    assert "secret-from-file" not in repr(vonage.config)
    assert default_providers(settings)["sms"] == "twilio"  # the first enabled


def test_an_enabled_provider_without_its_credentials_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, '[sms.twilio]\nenabled = true\naccount_sid = "AC1"\n'
                       '[sms.generic]\nenabled = true\n')  # fmt: skip
    problems = {p.key: p.message for p in info.value.problems}
    assert "auth_token, from_number are not set" in problems["sms.twilio"]
    assert "sms.generic is enabled but url is not set" in problems["sms.generic"]
    with pytest.raises(ConfigError, match=r"sms\.generic\.body_template: .*not a valid Jinja2"):
        load(tmp_path, '[sms.generic]\nbody_template = "{{ to"\n')
    with pytest.raises(ConfigError, match=r"sms\.vonage\.signature_method"):
        load(tmp_path, '[sms.vonage]\nsignature_method = "crc32"\n')
