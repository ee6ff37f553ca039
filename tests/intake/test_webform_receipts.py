"""The confirmation page shows a case number only to the browser that was just given it:
never text taken from the link, never another customer's number."""

from __future__ import annotations

import base64
import re
import ssl

import aiohttp
from aiohttp.test_utils import make_mocked_request

from config.app import Services
from intake.message import AcceptResult
from intake.receipts import COOKIE, Receipts
from tests.intake.test_webform import Client
from tests.intake.test_webform_refusals import browser_post, form_intake

THANKS = re.compile(r"/form/thanks\?case=(CAS-\d{6})")


async def send_form(client: Client, **overrides: str) -> tuple[aiohttp.ClientResponse, str]:
    resp = await browser_post(client, **overrides)
    assert resp.status == 303, await resp.text()
    match = THANKS.fullmatch(resp.headers["Location"])
    assert match, resp.headers["Location"]
    return resp, match.group(1)


async def page(client: Client, url: str, **headers: str) -> str:
    resp = await client.get(url, headers=headers)
    assert resp.status == 200
    return await resp.text()


async def test_the_browser_that_sent_the_form_sees_its_number(client: Client) -> None:
    resp, number = await send_form(client)
    receipt = resp.cookies[COOKIE]
    assert receipt["path"] == "/form"  # sent back to /form and /form/thanks only
    assert receipt["httponly"] and receipt["samesite"] == "Lax"
    assert receipt["max-age"] == "900"
    assert number in await page(client, f"/form/thanks?case={number}")
    # A second form from another tab: each link still shows its own number.
    _, other = await send_form(client, subject="Otra consulta")
    first_page = await page(client, f"/form/thanks?case={number}")
    assert number in first_page and other not in first_page
    assert other in await page(client, f"/form/thanks?case={other}")


async def test_forged_or_foreign_links_show_no_number(client: Client, services: Services) -> None:
    resp, number = await send_form(client)
    link = f"/form/thanks?case={number}"
    receipt = resp.cookies[COOKIE].value

    # The same link opened in another browser (no receipt) shows no number.
    client.session.cookie_jar.clear()
    html = await page(client, link)
    assert number not in html
    assert "Recibimos su mensaje y lo procesaremos a la brevedad." in html

    # A browser with a receipt of its own cannot see someone else's number either.
    _, own = await send_form(client, email="otra@example.com")
    assert own in await page(client, f"/form/thanks?case={own}")
    assert number not in await page(client, link)

    # Nothing typed into a link is ever shown.
    for text in ("CAS-999999", "<b>x</b>", "Llame ya al 0800-555-FRAUDE"):
        resp = await client.get("/form/thanks", params={"case": text})
        html = await resp.text()
        assert text not in html and "&lt;b&gt;" not in html

    # A receipt altered, or signed with any other key, is no receipt.
    forged = Receipts(b"not this daemon's key").add(None, number)
    tail = "A" if receipt[-1] != "A" else "B"
    for cookie in (forged, receipt[:-1] + tail, "garbage", f"{receipt}x"):
        client.session.cookie_jar.clear()
        assert number not in await page(client, link, Cookie=f"{COOKIE}={cookie}")
    # The untouched receipt still works from any page of this browser.
    client.session.cookie_jar.clear()
    assert number in await page(client, link, Cookie=f"{COOKIE}={receipt}")


def test_receipts_expire_keep_the_last_few_and_resist_tampering() -> None:
    now = [1_000_000.0]
    receipts = Receipts(b"k" * 32, clock=lambda: now[0])
    cookie = receipts.add(None, "CAS-000001")
    assert receipts.holds(cookie, "CAS-000001")
    assert not receipts.holds(cookie, "CAS-000002")
    for i in range(2, 8):
        now[0] += 1
        cookie = receipts.add(cookie, f"CAS-{i:06d}")
    held = [receipts.holds(cookie, f"CAS-{i:06d}") for i in range(1, 8)]
    assert held == [False, False, True, True, True, True, True]  # the last five
    cookie = receipts.add(cookie, "CAS-000004")  # again: kept once, now the newest
    assert receipts.holds(cookie, "CAS-000003") and receipts.holds(cookie, "CAS-000004")
    now[0] += 15 * 60 + 1
    assert not receipts.holds(cookie, "CAS-000004")
    assert not receipts.holds(receipts.add(None, "x"), "CAS-000004")

    fresh = receipts.add(None, "CAS-000009")
    payload, _, signature = fresh.partition(".")
    for bad in (None, "", ".", "x.y", "ñ.x", fresh + "=" * 2000, f"{payload}.", f".{signature}"):
        assert not receipts.holds(bad, "CAS-000009")
    # A good signature over something that is not a list of receipts reads as none.
    for content in (b"{}", b"[1]", b"[[1]]", b'[["CAS-000009", "later"]]', b"\xff"):
        odd = base64.urlsafe_b64encode(content).rstrip(b"=").decode()
        assert not receipts.holds(f"{odd}.{receipts._sign(odd)}", "CAS-000009")


async def test_the_receipt_is_sent_only_over_https_when_the_form_came_over_https(
    services: Services,
) -> None:
    form = form_intake(services)
    created = AcceptResult(outcome="created", inbound_id=1, case_number="CAS-000001")
    for context, secure in ((None, False), (ssl.create_default_context(), True)):
        request = make_mocked_request("POST", "/form", sslcontext=context)
        resp = form._answer(request, created, False, "es")
        assert bool(resp.cookies[COOKIE]["secure"]) is secure
    failed = AcceptResult(outcome="failed", inbound_id=2)
    resp = form._answer(make_mocked_request("POST", "/form"), failed, False, "es")
    assert COOKIE not in resp.cookies  # no number, no receipt
