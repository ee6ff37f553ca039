"""Builds the inbound SMS webhooks from the settings: Twilio's and Vonage's when the
provider is enabled, the generic gateway's when ``[sms.generic] inbound_secret`` is set,
all over one ``SmsIntake`` (``intake.sms``). A provider that is not configured has no
route, so its path is a 404."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from config.settings import Settings
from intake.sms import SmsIntake, SmsIntakeConfig, SmsMetrics
from intake.sms_generic import GenericInboundConfig, GenericSmsIntake
from intake.sms_media import MediaConfig, TwilioMedia
from intake.sms_stale_parts import StaleSmsParts
from intake.sms_twilio import TwilioInboundConfig, TwilioSmsIntake
from intake.sms_vonage import VonageInboundConfig, VonageSmsIntake

if TYPE_CHECKING:  # config.app mounts these webhooks
    from config.app import Services


class SmsWebhook(Protocol):
    def routes(self) -> list[web.RouteDef]: ...


def sms_core(services: Services) -> SmsIntake:
    """The shared part, with its metrics registered once per registry."""
    s = services.settings
    if services.sms_metrics is None:
        services.sms_metrics = SmsMetrics(services.registry)
    config = SmsIntakeConfig(
        default_region=s.sms.default_region,
        default_language=s.intake.default_language,
        max_messages_per_minute=s.sms.max_messages_per_minute,
        confirm_opt_out=s.sms.confirm_opt_out,
    )
    return SmsIntake(services.writer, services.writes, services.sms_metrics, config)


def sms_webhooks(services: Services, app: web.Application) -> list[SmsWebhook]:
    """The webhooks of the configured providers; what they hold open is closed with
    ``app``."""
    s = services.settings
    sms = s.sms
    core = sms_core(services)
    found: list[SmsWebhook] = []
    if sms.twilio.enabled:
        media = TwilioMedia(
            MediaConfig(
                account_sid=sms.twilio.account_sid,
                auth_token=sms.twilio.auth_token,
                api_base_url=sms.twilio.api_base_url,
                max_files=s.intake.max_attachments,
                max_file_bytes=s.intake.max_attachment_bytes,
                max_total_bytes=s.intake.max_total_attachment_bytes,
                timeout_seconds=sms.twilio.timeout_seconds,
            ),
            services.attachments,
        )
        twilio = TwilioSmsIntake(
            core, TwilioInboundConfig(sms.twilio.auth_token, s.http.public_url), media
        )

        async def close_twilio(_app: web.Application) -> None:
            await twilio.close()

        app.on_cleanup.append(close_twilio)
        found.append(twilio)
    if sms.vonage.enabled:
        vonage = VonageInboundConfig(
            sms.vonage.api_key, sms.vonage.signature_secret, sms.vonage.signature_method
        )
        found.append(VonageSmsIntake(core, vonage))
    generic = sms.generic
    if generic.inbound_secret:
        config = GenericInboundConfig(
            secret=generic.inbound_secret,
            auth=generic.inbound_auth,
            header=generic.inbound_header,
            from_field=generic.inbound_from_field,
            text_field=generic.inbound_text_field,
            id_field=generic.inbound_id_field,
            reply_provider="generic" if generic.enabled else "",
        )
        found.append(GenericSmsIntake(core, config))
    return found


def stale_parts_runner(settings: Settings, services: Services) -> StaleSmsParts | None:
    """Only Vonage sends long texts in parts."""
    if not settings.sms.vonage.enabled:
        return None
    return StaleSmsParts(
        services.writes,
        wait_minutes=settings.sms.parts_wait_minutes,
        language=settings.intake.default_language,
        grace_seconds=settings.daemon.shutdown_timeout_seconds,
    )
