"""A technician's notification channels in the ops API: read by operators and agents,
replaced (the whole ordered list) by operators and admins.

``PUT /api/v1/catalog/technicians/{id}/channels`` is also how a technician's browser
registers its Web Push subscription: the list is checked against the configured push
providers and the SMS region (``cases.technician_channels``) before it is written.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from cases.technician_channels import (
    ChannelEntry,
    SetTechnicianChannels,
    checked_channels,
    technician_channels,
)
from console import schemas
from console.endpoints import Answer, Endpoint, Param
from console.http_json import error, ok, path_id, read_model, single_params
from console.principal import principal_of
from storage.db import Database
from storage.write_path import WritePath

READ_ROLES = ("ops", "agent")
WRITE_ROLES = ("ops",)
ID = Param("id", "path", {"type": "integer"}, "the technician's id", True, 1)
PATH = "/api/v1/catalog/technicians/{id}/channels"


class TechnicianChannelsApi:
    def __init__(
        self, db: Database, writes: WritePath, sms_region: str, push_kinds: Mapping[str, str]
    ) -> None:
        """``push_kinds``: each configured push provider's name and kind."""
        self.db = db
        self.writes = writes
        self.sms_region = sms_region
        self.push_kinds = dict(push_kinds)

    def endpoints(self) -> list[Endpoint]:
        answer = Answer("the channels, first tried first", schemas.TechnicianChannels)
        return [
            Endpoint(
                "GET", PATH, self.get_channels, "A technician's channels, in order", "catalog",
                {200: answer}, READ_ROLES, params=(ID,),
                operation_id="get_technician_channels",
            ),
            Endpoint(
                "PUT", PATH, self.put_channels, "Replace a technician's channels", "catalog",
                {200: answer}, WRITE_ROLES, body=schemas.TechnicianChannels, params=(ID,),
                operation_id="set_technician_channels",
            ),
        ]  # fmt: skip

    async def get_channels(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        single_params(request, frozenset())
        tech_id = path_id(request)
        found = await self.db.read(technician_channels, tech_id)
        if found is None:
            raise error(404, "not_found", f"no technician {tech_id}")
        return ok(_view(found))

    async def put_channels(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*WRITE_ROLES)
        single_params(request, frozenset())
        tech_id = path_id(request)
        body = await read_model(request, schemas.TechnicianChannels)
        given = [ChannelEntry(c.channel, c.address, c.provider) for c in body.channels]
        checked = checked_channels(given, self.sms_region, self.push_kinds)
        stored: list[ChannelEntry] = await self.writes.submit(
            SetTechnicianChannels(tech_id, checked, principal.name)
        )
        return ok(_view(stored))


def _view(channels: list[ChannelEntry]) -> dict[str, object]:
    return {
        "channels": [
            {"channel": c.channel, "address": c.address, "provider": c.provider} for c in channels
        ]
    }
