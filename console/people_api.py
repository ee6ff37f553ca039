"""Customers and tokens in the ops API.

Customers: search by name, email or phone; one customer with their identities and open
cases; their interaction history (every case, every message in and out), newest first.
Tokens (admin only): list, create (the token is answered once), revoke.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from cases.customers import AddIdentity, MergeCustomers, checked_identity
from console import schemas, serialize
from console.endpoints import PAGING, Answer, Endpoint, Param, query
from console.http_json import error, ok, parse_limit, path_id, read_model, single_params
from console.principal import principal_of
from storage.auth import CreateToken, RevokeToken, TokenInfo, list_tokens, new_token
from storage.customer_queries import customer_timeline, get_customer, list_customers
from storage.db import Database
from storage.paging import Page, QueryError
from storage.write_path import WritePath

READ_ROLES = ("ops", "agent")
ID = Param("id", "path", {"type": "integer"}, "the id", True, 1)


class PeopleApi:
    def __init__(
        self,
        db: Database,
        writes: WritePath,
        forget_token: Callable[[int], None],
        sms_region: str = "AR",
    ) -> None:
        """``forget_token`` drops a revoked token from the auth cache at once;
        ``sms_region`` reads phone numbers written without a country code."""
        self.db = db
        self.writes = writes
        self.forget_token = forget_token
        self.sms_region = sms_region

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET", "/api/v1/customers", self.list_customers,
                "Search customers by name, email or phone", "customers",
                {200: Answer("a page of customers", schemas.CustomerPage)}, READ_ROLES,
                params=(query("q", "text in the name or any identity"), *PAGING),
            ),
            Endpoint(
                "GET", "/api/v1/customers/{id}", self.get_customer,
                "One customer: identities and open cases", "customers",
                {200: Answer("the customer", schemas.CustomerDetail)}, READ_ROLES,
                params=(ID,),
            ),
            Endpoint(
                "POST", "/api/v1/customers/{id}/identities", self.add_identity,
                "Recognise the customer by one more email, phone or Telegram user",
                "customers", {201: Answer("the customer", schemas.CustomerDetail)},
                READ_ROLES, body=schemas.IdentityIn, params=(ID,), errors=(409,),
            ),
            Endpoint(
                "POST", "/api/v1/customers/{id}/merge", self.merge,
                "Merge this customer into another: cases, identities and messages move",
                "customers", {200: Answer("the customer that remains", schemas.CustomerDetail)},
                ("ops",), body=schemas.CustomerMergeIn, params=(ID,),
            ),
            Endpoint(
                "GET", "/api/v1/customers/{id}/timeline", self.timeline,
                "Every case and message of a customer, newest first", "customers",
                {200: Answer("a page of interactions", schemas.CustomerTimelinePage)},
                READ_ROLES, params=(ID, *PAGING),
            ),
            Endpoint(
                "GET", "/api/v1/tokens", self.list_tokens, "API tokens", "tokens",
                {200: Answer("a page of tokens", schemas.TokenPage)}, ("admin",),
                params=(query("revoked", "include revoked tokens",
                              {"type": "string", "enum": ["true", "false"]}), *PAGING),
            ),
            Endpoint(
                "POST", "/api/v1/tokens", self.create_token,
                "Create a token for a user (shown once)", "tokens",
                {201: Answer("the token", schemas.TokenCreated)}, ("admin",),
                body=schemas.TokenIn,
            ),
            Endpoint(
                "DELETE", "/api/v1/tokens/{id}", self.revoke_token, "Revoke a token", "tokens",
                {200: Answer("the revoked token", schemas.TokenItem)}, ("admin",), params=(ID,),
                operation_id="revoke_token",
            ),
        ]  # fmt: skip

    # --- customers --------------------------------------------------------------------

    async def list_customers(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        params = single_params(request, frozenset({"q", "limit", "cursor"}))
        limit = parse_limit(params.get("limit"))
        try:
            found = await self.db.read(list_customers, params.get("q"), limit, params.get("cursor"))
        except QueryError as exc:
            raise error(400, "invalid_parameter", str(exc), param=exc.param) from None
        return ok(serialize.page(found, serialize.customer_item))

    async def get_customer(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        single_params(request, frozenset())
        customer_id = path_id(request)
        detail = await self.db.read(get_customer, customer_id)
        if detail is None:
            raise error(404, "not_found", f"no customer {customer_id}")
        return ok(serialize.customer_detail(detail))

    async def add_identity(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*READ_ROLES)
        single_params(request, frozenset())
        body = await read_model(request, schemas.IdentityIn)
        value = checked_identity(body.kind, body.value, self.sms_region)
        customer_id: int = await self.writes.submit(
            AddIdentity(path_id(request), body.kind, value, principal.name)
        )
        return await self._customer(customer_id, 201)

    async def merge(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require("ops")
        single_params(request, frozenset())
        body = await read_model(request, schemas.CustomerMergeIn)
        remaining: int = await self.writes.submit(
            MergeCustomers(path_id(request), body.into, principal.name)
        )
        return await self._customer(remaining)

    async def _customer(self, customer_id: int, status: int = 200) -> web.Response:
        detail = await self.db.read(get_customer, customer_id)
        if detail is None:
            raise error(404, "not_found", f"no customer {customer_id}")
        return ok(serialize.customer_detail(detail), status)

    async def timeline(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        params = single_params(request, frozenset({"limit", "cursor"}))
        customer_id = path_id(request)
        limit = parse_limit(params.get("limit"))
        try:
            found = await self.db.read(
                customer_timeline, customer_id, limit, params.get("cursor") or None
            )
        except QueryError as exc:
            raise error(400, "invalid_parameter", str(exc), param=exc.param) from None
        if found is None:
            raise error(404, "not_found", f"no customer {customer_id}")
        return ok(serialize.page(found, serialize.interaction))

    # --- tokens -----------------------------------------------------------------------

    async def list_tokens(self, request: web.Request) -> web.Response:
        principal_of(request).require("admin")
        params = single_params(request, frozenset({"revoked", "limit", "cursor"}))
        if params.get("revoked") not in (None, "true", "false"):
            raise error(400, "invalid_parameter", "revoked must be true or false", param="revoked")
        limit = parse_limit(params.get("limit"))
        after = params.get("cursor")
        if after is not None and (not after.isdigit() or len(after) > 18):
            raise error(400, "invalid_parameter", "cursor is not valid", param="cursor")
        async with self.db.session() as session:
            tokens = await list_tokens(session, include_revoked=params.get("revoked") == "true")
        # Few rows: oldest first, the cursor is the last id seen.
        tokens = [t for t in tokens if after is None or t.id > int(after)]
        page = Page(tokens[:limit], str(tokens[limit - 1].id) if len(tokens) > limit else None)
        return ok(serialize.page(page, serialize.token_item))

    async def create_token(self, request: web.Request) -> web.Response:
        principal_of(request).require("admin")
        single_params(request, frozenset())
        body = await read_model(request, schemas.TokenIn)
        token, digest, prefix = new_token()
        info: TokenInfo = await self.writes.submit(
            CreateToken(body.name, body.role, digest, prefix)
        )
        return ok({**serialize.token_item(info), "token": token}, 201)

    async def revoke_token(self, request: web.Request) -> web.Response:
        principal_of(request).require("admin")
        single_params(request, frozenset())
        info: TokenInfo = await self.writes.submit(RevokeToken(path_id(request)))
        self.forget_token(info.id)
        return ok(serialize.token_item(info))
