"""Typed, validated settings: one TOML file plus ``VENTANILLA_<SECTION>__<KEY>`` overrides.

``load_settings`` is the only entry point. It reads the file, merges environment overrides,
resolves ``*_file`` secrets and relative paths against the file's folder, and validates
everything once. Problems are collected as ``ConfigProblem`` (key path + message) so that
``ventanilla config check`` can print all of them and ``serve`` can refuse to start.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notifiers.push_credentials import load_vapid_key, parse_service_account

ENV_PREFIX = "VENTANILLA_"
DEFAULT_CONFIG = Path(__file__).resolve().parent / "example.toml"


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, so a typo cannot pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///ventanilla.db"
    pool_size: int = Field(10, ge=1, le=200)
    echo: bool = False
    auto_migrate: bool = True  # SQLite only: `serve` runs `db upgrade` itself

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class HttpSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(26_214_400, ge=1024)
    secret_key: str = ""
    secret_key_file: Path | None = None
    form_rate_limit_per_minute: int = Field(20, ge=0)
    form_rate_limit_burst: int = Field(10, ge=1)
    trust_forwarded_for: bool = False


class SmtpSettings(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8025, ge=0, le=65535)
    protocol: Literal["smtp", "lmtp"] = "smtp"
    max_message_bytes: int = Field(26_214_400, ge=1024)
    hostname: str = "ventanilla.localdomain"  # name in the greeting and our Message-IDs
    tls_cert_file: Path | None = None  # STARTTLS offered when cert and key are set
    tls_key_file: Path | None = None
    require_tls: bool = False
    # AUTH for trusted relays: "user:password" pairs (or auth_users_file, one per line).
    auth_users: list[str] = []
    auth_users_file: Path | None = None
    auth_required: bool = False
    # A message to several of our mailboxes: one case recording every mailbox, or one case
    # per area of the mailboxes (linked as parent/children).
    multi_mailbox: Literal["one_case", "case_per_area"] = "one_case"


class MailboxSettings(Section):
    address: str
    category: str | None = None
    area: str | None = None
    priority: str | None = None


class ImapAccountSettings(Section):
    host: str
    port: int = Field(993, ge=1, le=65535)
    security: Literal["none", "tls", "starttls"] = "tls"
    username: str
    password: str = ""
    password_file: Path | None = None
    folder: str = "INBOX"
    after: Literal["move", "flag", "delete"] = "flag"
    move_to: str = "Processed"
    poll_seconds: int = Field(60, ge=1)
    idle: bool = True


class TelegramSettings(Section):
    enabled: bool = False
    token: str = ""
    token_file: Path | None = None
    mode: Literal["polling", "webhook"] = "polling"
    api_base_url: str = "https://api.telegram.org"
    webhook_secret: str = ""
    webhook_secret_file: Path | None = None
    # Outbound messages (notifiers.telegram): in flight at once, and the seconds each of
    # connect, send and answer may take before the attempt counts as a transient failure.
    concurrency: int = Field(8, ge=1, le=64)
    timeout_seconds: float = Field(15.0, gt=0)
    # Inbound (intake.telegram): customers' messages become cases; false only sends.
    intake: bool = True
    # Group chats are declined with a polite reply unless allowed.
    allow_groups: bool = False
    # Loop protection: messages a chat may send a minute before they are recorded without
    # an acknowledgement (0 = no limit).
    max_messages_per_minute: int = Field(20, ge=0)
    # Long polling: how long one getUpdates call waits for updates (Bot API ``timeout``).
    poll_timeout_seconds: int = Field(30, ge=0, le=50)

    @model_validator(mode="after")
    def _token_when_enabled(self) -> TelegramSettings:
        if self.enabled and not self.token:
            raise ValueError("enabled = true needs the bot's token (token or token_file)")
        if self.enabled and self.intake and self.mode == "webhook":
            # Bot API setWebhook: secret_token is 1-256 of A-Z, a-z, 0-9, _ and -.
            if not self.webhook_secret:
                raise ValueError(
                    'mode = "webhook" needs webhook_secret (or webhook_secret_file): '
                    "it authenticates Telegram's requests"
                )
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", self.webhook_secret):
                raise ValueError(
                    "webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
                )
        return self


class SmsProviderSettings(Section):
    """What every SMS provider section has: whether it is used, and how hard."""

    enabled: bool = False
    concurrency: int = Field(4, ge=1, le=100)  # requests in flight at once
    timeout_seconds: float = Field(15.0, gt=0)  # per request; a timeout is retried later

    def _require(self, section: str, *names: str) -> None:
        missing = [n for n in names if self.enabled and not getattr(self, n)]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ValueError(f"sms.{section} is enabled but {', '.join(missing)} {verb} not set")


class TwilioSettings(SmsProviderSettings):
    account_sid: str = ""
    auth_token: str = ""
    auth_token_file: Path | None = None
    api_base_url: str = "https://api.twilio.com"
    from_number: str = ""  # a number, a sender id or a Messaging Service SID (MG…)
    status_callback: bool = True  # ask for status callbacks at [http] public_url

    @model_validator(mode="after")
    def _complete(self) -> TwilioSettings:
        self._require("twilio", "account_sid", "auth_token", "from_number")
        return self


class VonageSettings(SmsProviderSettings):
    api_key: str = ""
    api_secret: str = ""
    api_secret_file: Path | None = None
    signature_secret: str = ""
    signature_secret_file: Path | None = None
    signature_method: Literal["md5hash", "md5", "sha1", "sha256", "sha512"] = "md5hash"
    api_base_url: str = "https://rest.nexmo.com"
    from_number: str = ""
    delivery_receipts: bool = True  # ask for receipts at [http] public_url

    @model_validator(mode="after")
    def _complete(self) -> VonageSettings:
        self._require("vonage", "api_key", "api_secret", "from_number")
        return self


class GenericSmsSettings(SmsProviderSettings):
    url: str = ""
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = {}
    auth_token: str = ""  # sent as the Authorization header, e.g. "Bearer …"
    auth_token_file: Path | None = None
    content_type: str = "application/json"
    body_template: str = (
        '{"to": {{ to|tojson }}, "from": {{ from|tojson }}, "text": {{ text|tojson }}, '
        '"reference": {{ idempotency_key|tojson }}}'
    )
    success_codes: list[int] = [200, 201, 202]
    message_id_path: str = ""  # dotted path to the id in the JSON answer: "messages.0.id"
    from_number: str = ""
    # Inbound (POST /webhooks/generic/sms), offered when inbound_secret is set: the
    # gateway proves itself with the secret in a header, or an HMAC-SHA256 of the body.
    inbound_secret: str = ""
    inbound_secret_file: Path | None = None
    inbound_auth: Literal["header", "hmac"] = "header"
    inbound_header: str = ""  # default: X-Webhook-Secret (header) / X-Signature (hmac)
    inbound_from_field: str = "from"
    inbound_text_field: str = "text"
    inbound_id_field: str = "id"

    @field_validator("body_template")
    @classmethod
    def _compiles(cls, value: str) -> str:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        try:
            ImmutableSandboxedEnvironment().parse(value)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"not a valid Jinja2 template: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _complete(self) -> GenericSmsSettings:
        self._require("generic", "url")
        return self


class SmsSettings(Section):
    default_region: str = "AR"
    # Loop protection: a number that sends more than this many messages a minute has them
    # recorded but not acknowledged (0: no limit). Counted per daemon.
    max_messages_per_minute: int = Field(10, ge=0)
    # Answer STOP/BAJA and START/ALTA with one SMS of our own. Twilio's long codes already
    # answer the standard English keywords themselves (Advanced Opt-Out).
    confirm_opt_out: bool = True
    # A long SMS whose parts did not all arrive within this time is taken as it is.
    parts_wait_minutes: float = Field(60.0, gt=0)
    twilio: TwilioSettings = TwilioSettings()
    vonage: VonageSettings = VonageSettings()
    generic: GenericSmsSettings = GenericSmsSettings()


class EmailNotifierSettings(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "tls", "starttls"] = "none"
    username: str = ""
    password: str = ""
    password_file: Path | None = None
    sender: str = "Soporte <soporte@example.com>"
    connections: int = Field(4, ge=1, le=64)  # kept open and reused
    timeout_seconds: float = Field(30.0, gt=0)
    # The CA that signed the relay's certificate, when it is not a public one.
    tls_ca_file: Path | None = None

    @field_validator("tls_ca_file")
    @classmethod
    def _readable_ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"cannot read {value}")
        return value


PUSH_API_BASE_URLS = {"fcm": "https://fcm.googleapis.com", "ntfy": "https://ntfy.sh"}


class PushProviderSettings(Section):
    """One push provider. Each kind needs its own keys; a missing or unusable one of an
    enabled provider is an error naming it. Fields are validated in order, so each check
    sees ``enabled`` and ``kind`` (and the secrets read from ``*_file``) before it."""

    enabled: bool = False
    kind: Literal["fcm", "ntfy", "webpush"] = "ntfy"
    # fcm: https://fcm.googleapis.com, ntfy: https://ntfy.sh; webpush has none (each
    # subscription names its push service's endpoint).
    api_base_url: str = ""
    concurrency: int = Field(8, ge=1, le=256)  # messages in flight at once
    timeout_seconds: float = Field(10.0, gt=0)  # per request; no answer by then is retried
    # ntfy: an access token (optional; public topics need none)
    token: str = Field("", repr=False)
    token_file: Path | None = None
    # webpush: our VAPID key pair's private half and who to contact (RFC 8292)
    vapid_private_key: str = Field("", validate_default=True, repr=False)
    vapid_private_key_file: Path | None = None
    vapid_subject: str = Field("", validate_default=True)
    ttl_seconds: int = Field(86_400, ge=0, le=2_419_200)  # RFC 8030 §5.2 TTL
    # fcm: the service-account JSON (read from service_account_file), and overrides of
    # the project and token URI it names
    service_account: str = Field("", repr=False)
    service_account_file: Path | None = Field(None, validate_default=True)
    project_id: str = Field("", validate_default=True)
    token_uri: str = ""

    @staticmethod
    def _wants(info: ValidationInfo, kind: str) -> bool:
        return bool(info.data.get("enabled")) and info.data.get("kind") == kind

    @field_validator("vapid_private_key")
    @classmethod
    def _vapid_key(cls, value: str, info: ValidationInfo) -> str:
        if cls._wants(info, "webpush"):
            if not value:
                raise ValueError('required when kind = "webpush" (or vapid_private_key_file)')
            load_vapid_key(value)
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _vapid_subject(cls, value: str, info: ValidationInfo) -> str:
        # RFC 8292 §2.1: a mailto: or https: URI the push service can reach us at.
        if cls._wants(info, "webpush") and not (
            (value.startswith("mailto:") and "@" in value) or value.startswith("https://")
        ):
            raise ValueError('required when kind = "webpush": a mailto: or https: URI')
        return value

    @field_validator("service_account_file")
    @classmethod
    def _service_account(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if cls._wants(info, "fcm"):
            if not info.data.get("service_account"):
                raise ValueError('required when kind = "fcm": the service-account JSON file')
            parse_service_account(info.data["service_account"])
        return value

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str, info: ValidationInfo) -> str:
        if cls._wants(info, "fcm") and not value and "service_account_file" in info.data:
            account = parse_service_account(info.data.get("service_account", ""))
            if not account.project_id:
                raise ValueError("required: the service account names no project_id")
        return value

    @property
    def base_url(self) -> str:
        return (self.api_base_url or PUSH_API_BASE_URLS.get(self.kind, "")).rstrip("/")


class NotifierSettings(Section):
    email: EmailNotifierSettings = EmailNotifierSettings()
    push: dict[str, PushProviderSettings] = {}

    @field_validator("push")
    @classmethod
    def _own_names(cls, value: dict[str, PushProviderSettings]) -> dict[str, PushProviderSettings]:
        # Rows name their provider, and the other channels' senders have these names.
        taken = sorted(set(value) & {"email", "sms", "telegram", "twilio", "vonage"})
        if taken:
            raise ValueError(f"{', '.join(taken)}: the name of another notifier")
        return value


class DispatchSettings(Section):
    enabled: bool = True
    max_attempts: int = Field(8, ge=1, le=100)
    concurrency: int = Field(64, ge=1, le=1000)  # messages in flight at once, all channels
    retry_base_seconds: float = Field(30.0, gt=0)
    retry_max_seconds: float = Field(3600.0, gt=0)
    lease_seconds: float = Field(300.0, gt=0)  # a claim not recorded by then is retried
    poll_seconds: float = Field(5.0, gt=0)  # looks for due rows at least this often


class LogSettings(Section):
    """The outbound log's retention: rows older than ``keep_days`` are deleted with their
    attempts, ``prune_batch`` rows per transaction, by a job every ``prune_every_minutes``."""

    keep_days: int = Field(365, ge=0, le=36_500)  # 0 = keep forever (no retention job)
    prune_batch: int = Field(500, ge=1, le=10_000)
    prune_every_minutes: float = Field(60.0, gt=0)


class IntakeSettings(Section):
    attachments_dir: Path = Path("attachments")
    parse_workers: int = Field(0, ge=0, le=32)  # MIME parsing processes (0 = one per core)
    # Seconds a parser process may spend on a mail (or on a group of them, each then tried
    # alone) before it is killed and the mail kept as failed; at most the 10 minutes an SMTP
    # client waits for the reply to DATA (RFC 5321 §4.5.3.2.6).
    parse_timeout_seconds: float = Field(60.0, gt=0, le=600)
    fast_mime_parser: bool = True  # parser processes install intake.email.feedparser_fast
    max_attachment_bytes: int = Field(10_485_760, ge=1)
    max_attachments: int = Field(10, ge=0)
    max_total_attachment_bytes: int = Field(26_214_400, ge=1)
    batch_max: int = Field(256, ge=1, le=10_000)
    queue_max: int = Field(10_000, ge=1)
    writers: int = Field(4, ge=1, le=64)
    writer_process: bool = True  # SQLite: the intake's transactions in a process of their own
    default_language: Literal["es", "en"] = "es"


class CaseSettings(Section):
    number_prefix: str = "CAS-"
    number_width: int = Field(6, ge=1, le=12)
    # Threading: same sender + same normalized subject within N days continues a case
    # (0 = off); a reply to a closed case reopens it or opens a new linked case.
    same_subject_days: int = Field(7, ge=0)
    reply_to_closed: Literal["reopen", "new_case"] = "reopen"
    reopen_status: str = "Abierta"
    # The status a case merged into another gets (empty: the first closed-kind status).
    merged_status: str | None = None
    # Chat and SMS: a message continues the customer's open case on the same channel
    # within this many hours, otherwise it opens a new case.
    chat_window_hours: float = Field(24, ge=0)


class LoopProtectionSettings(Section):
    acks_per_sender_per_day: int = Field(5, ge=0)  # 0 = no limit


class AreaSeed(Section):
    name: str
    default: bool = False


class StatusSeed(Section):
    name: str
    kind: Literal["open", "pending", "closed"] = "open"
    default: bool = False


class PrioritySeed(Section):
    name: str
    colour: str = "#808080"
    rank: int = 0
    default: bool = False


class SeveritySeed(Section):
    name: str
    rank: int = 0
    default: bool = False


class TechnicianSeed(Section):
    name: str
    email: str | None = None
    phone: str | None = None
    language: Literal["es", "en"] = "es"
    area: str | None = None  # one area; ``areas`` for several
    areas: list[str] = []
    available: bool = True

    def area_names(self) -> list[str]:
        names = [*([self.area] if self.area else []), *self.areas]
        return list(dict.fromkeys(names))


class CategorySeed(Section):
    name: str
    comment: str = ""
    price: float | None = None
    area: str | None = None
    technician: str | None = None
    in_use: bool = True
    available_technician_app: bool = True
    available_customer_app: bool = True
    available_web_portal: bool = True
    customer_description: str = ""
    colour: str = "#808080"
    subreasons: list[str] = []
    default: bool = False


class CatalogSettings(Section):
    """Seeded into the database on first start only; afterwards the database is the truth."""

    areas: list[AreaSeed] = []
    statuses: list[StatusSeed] = []
    priorities: list[PrioritySeed] = []
    severities: list[SeveritySeed] = []
    technicians: list[TechnicianSeed] = []
    categories: list[CategorySeed] = []

    @model_validator(mode="after")
    def _references_and_defaults(self) -> CatalogSettings:
        kinds: dict[str, list[Any]] = {
            "areas": list(self.areas),
            "statuses": list(self.statuses),
            "priorities": list(self.priorities),
            "severities": list(self.severities),
            "categories": list(self.categories),
        }
        for kind, items in kinds.items():
            names = [item.name for item in items]
            dupes = {n for n in names if names.count(n) > 1}
            if dupes:
                raise ValueError(f"{kind}: duplicate names {sorted(dupes)}")
            if items and sum(1 for item in items if item.default) != 1:
                raise ValueError(f"{kind}: exactly one item must have default = true")
        areas = {a.name for a in self.areas}
        techs = {t.name for t in self.technicians}
        for cat in self.categories:
            if cat.area and cat.area not in areas:
                raise ValueError(f"categories: {cat.name!r} names unknown area {cat.area!r}")
            if cat.technician and cat.technician not in techs:
                raise ValueError(
                    f"categories: {cat.name!r} names unknown technician {cat.technician!r}"
                )
        for tech in self.technicians:
            for area in tech.area_names():
                if area not in areas:
                    raise ValueError(f"technicians: {tech.name!r} names unknown area {area!r}")
        return self


class DaemonSettings(Section):
    shutdown_timeout_seconds: float = Field(10.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    watchdog: bool = True
    # How often a daemon looks for catalog edits made by another daemon on the database.
    catalog_poll_seconds: float = Field(10.0, gt=0)


class Settings(Section):
    """The whole configuration. Built only by ``load_settings``."""

    # Problems are reported by key and message; a value (a key, a password) that failed
    # validation is never quoted, not even in the chained pydantic error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    config_path: Path = DEFAULT_CONFIG
    daemon: DaemonSettings = DaemonSettings()
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    smtp: SmtpSettings = SmtpSettings()
    mailboxes: list[MailboxSettings] = []
    imap: dict[str, ImapAccountSettings] = {}
    telegram: TelegramSettings = TelegramSettings()
    sms: SmsSettings = SmsSettings()
    notifiers: NotifierSettings = NotifierSettings()
    dispatch: DispatchSettings = DispatchSettings()
    log: LogSettings = LogSettings()
    intake: IntakeSettings = IntakeSettings()
    cases: CaseSettings = CaseSettings()
    loop_protection: LoopProtectionSettings = LoopProtectionSettings()
    catalog: CatalogSettings = CatalogSettings()


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """Raised by ``load_settings`` with every problem found, each naming its key."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def config_path_from(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """``--config``, else ``VENTANILLA_CONFIG``, else the shipped example."""
    if cli_value:
        return Path(cli_value)
    if environ.get("VENTANILLA_CONFIG"):
        return Path(environ["VENTANILLA_CONFIG"])
    return DEFAULT_CONFIG


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``VENTANILLA_HTTP__PORT=9000`` → ``{"http": {"port": "9000"}}`` (pydantic coerces)."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = _parse_env_value(value)
    return tree


def _parse_env_value(value: str) -> Any:
    """Accept TOML literals (lists, booleans) from the environment, else the raw string."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_paths(node: Any, base: Path, key: str, problems: list[ConfigProblem]) -> Any:
    """Walk the raw tree: resolve ``*_file``/``*_dir`` paths and read ``*_file`` secrets."""
    if isinstance(node, list):
        return [_resolve_paths(v, base, f"{key}[{i}]", problems) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for name, value in node.items():
        path = f"{key}.{name}" if key else name
        if isinstance(value, str) and (name.endswith("_file") or name.endswith("_dir")) and value:
            resolved = Path(value) if Path(value).is_absolute() else base / value
            out[name] = resolved
            if name.endswith("_file") and not name.startswith("tls_"):
                secret_key = name[: -len("_file")]
                try:
                    content = resolved.read_text(encoding="utf-8").strip()
                    # A list-valued secret (auth_users) is one entry per line.
                    out[secret_key] = (
                        content.splitlines() if secret_key == "auth_users" else content
                    )
                except OSError as exc:
                    problems.append(ConfigProblem(path, f"cannot read {resolved}: {exc.strerror}"))
        else:
            out[name] = _resolve_paths(value, base, path, problems)
    return out


def _resolve_sqlite_url(url: str, base: Path) -> str:
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, merge, resolve and validate; raise ``ConfigError`` listing every problem."""
    environ = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []
    path = path.resolve()
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem("--config", f"cannot read {path}: {exc.strerror}")]
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), f"invalid TOML: {exc}")]) from exc
    raw = _deep_merge(raw, _env_overrides(environ))
    if "config_path" in raw:
        problems.append(ConfigProblem("config_path", "is set by --config, not in the file"))
        raw.pop("config_path")
    base = path.parent
    raw = _resolve_paths(raw, base, "", problems)
    database = raw.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        database["url"] = _resolve_sqlite_url(database["url"], base)
    intake = raw.setdefault("intake", {})
    if isinstance(intake, dict):
        attachments = intake.get("attachments_dir", "attachments")
        if isinstance(attachments, str | Path) and not Path(attachments).is_absolute():
            intake["attachments_dir"] = base / attachments
    raw["config_path"] = path
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(root)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(ConfigProblem(key, message))
        raise ConfigError(problems) from exc
    if problems:
        raise ConfigError(problems)
    return settings
