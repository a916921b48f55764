"""The built-in dashboard at /app, driven in headless Chromium (Debian's chromium, through Playwright)
against the real web process: log in, pick a company, overview and chart equal to ClickHouse, a
hostile event name shown as text, the live panel's stale state, and a write key created, copied once,
used to send an event, then revoked. Screenshots land in test-artifacts/ (kept by CI as artefacts).
The page's console must stay free of errors (a Content-Security-Policy violation would show there)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import shutil
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from models.clickhouse import clickhouse_client
from rollups.compute import rollup_company_now
from tests.helpers import latest_mail
from tests.ingest_helpers import CHROME, tenant
from tests.pipeline_helpers import drain, run_queued_jobs, send, week_of_events
from tests.processes import ROOT, Process, free_port, process_env, wait_for

pytestmark = pytest.mark.processes

ARTIFACTS = ROOT / "test-artifacts"
HOSTILE_NAME = '<img src=x onerror="window.__pwned = 1">'
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture
def web_url(settings):
    process = Process("web", process_env(PORT=str(free_port()), WEB_WORKERS="1"))
    process.wait_ready()
    yield f"http://127.0.0.1:{process.env['PORT']}"
    process.stop()


@pytest.fixture
def page():
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (make test installs it: apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context(
            timezone_id="UTC",
            viewport={"width": 1280, "height": 900},
            permissions=["clipboard-read", "clipboard-write"],
        )
        page = context.new_page()
        page.problems = []
        page.on(
            "console",
            lambda message: (
                message.type == "error" and page.problems.append(f"{message.text} ({message.location['url']})")
            ),
        )
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.on("dialog", lambda dialog: dialog.accept())
        yield page
        browser.close()


@pytest.fixture
def company_with_data(api, settings, redis_client):
    """A tenant whose owner also has an empty second company; three days of mixed events, rolled up."""
    t = tenant(api)
    api.company(t.owner, "Empty company")
    events = week_of_events(random.Random(11), "dash", 300, days=3)
    events.append(
        {
            "type": "track",
            "name": HOSTILE_NAME,
            "user_id": "hostile",
            "message_id": "dash-hostile",
            "context": {"userAgent": CHROME},
        }
    )
    send(api, t.write_key, events)
    drain(settings, redis_client)
    rollup_company_now(
        dataclasses.replace(settings, rollup_window_hours=4 * 24),
        redis_client,
        clickhouse_client(settings.clickhouse_url),
        t.company_id,
    )
    return t


def clickhouse_count(settings, company_id: str, where: str) -> int:
    today = dt.datetime.now(dt.UTC).date()
    return (
        clickhouse_client(settings.clickhouse_url)
        .query(
            f"SELECT count() FROM events WHERE company_id = toUUID(%(c)s) AND is_bot = 0 AND {where} "
            f"AND event_time >= toDateTime('{today - dt.timedelta(days=6)} 00:00:00') "
            f"AND event_time < toDateTime('{today + dt.timedelta(days=1)} 00:00:00')",
            parameters={"c": company_id},
        )
        .result_rows[0][0]
    )


def post_event(web_url: str, key: str) -> int:
    request = urllib.request.Request(
        f"{web_url}/v1/events",
        method="POST",
        data=json.dumps({"type": "track", "name": "From the dashboard's key", "user_id": "u1"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "User-Agent": CHROME},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def chart_has_ink(page: Page, selector: str) -> bool:
    """Whether uPlot drew anything: some pixel of the chart's canvas is not transparent."""
    return page.evaluate(
        """(selector) => {
        const canvas = document.querySelector(selector + ' canvas');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
        return false;
    }""",
        selector,
    )


def test_page_and_assets_come_from_the_app_with_a_strict_content_security_policy(client):
    page = client.simulate_get("/app")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset, kind in (("app.js", "javascript"), ("app.css", "text/css"), ("vendor/uPlot.iife.min.js", "javascript")):
        answer = client.simulate_get(f"/app/assets/{asset}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"], asset
    assert client.simulate_get("/app/assets/../resources/dashboard.py").status_code == 404


def log_in(page: Page, web_url: str, t) -> None:
    page.goto(f"{web_url}/app")
    page.fill("#email", t.owner.email)
    page.fill("#password", "correct horse battery staple")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#controls")).to_be_visible()
    page.select_option("#company", t.company_id)
    expect(page).to_have_url(f"{web_url}/app#/c/{t.company_id}/analytics")
    expect(page.locator("#tab-analytics[data-loaded=true]")).to_be_attached()


def figures(page: Page) -> tuple[int, int, int]:
    """The events and page views tiles, and the sum of the trend's data table."""
    expect(page.locator("#tab-analytics[data-loaded=true]")).to_be_attached()
    tiles = [
        int(page.locator(f"[data-metric={m}] .value").text_content().replace(",", "")) for m in ("events", "page_views")
    ]
    charted = [int(v.replace(",", "")) for v in page.locator("#trend-data td:nth-child(2)").all_text_contents()]
    return tiles[0], tiles[1], sum(charted)


def test_the_filter_bar_narrows_every_figure_to_a_breakdown_row_or_a_segment(
    company_with_data, web_url, page, settings, api
):
    t = company_with_data
    people = [  # five people, those with the most transactions first
        row[0]
        for row in clickhouse_client(settings.clickhouse_url)
        .query(
            "SELECT user_id FROM events WHERE company_id = toUUID(%(c)s) AND user_id != '' GROUP BY user_id "
            "ORDER BY countIf(type = 'transaction') DESC, user_id LIMIT 5",
            parameters={"c": t.company_id},
        )
        .result_rows
    ]
    segment = api.post(
        f"/v1/companies/{t.company_id}/segments",
        auth=t.owner,
        json={"name": "Five people", "kind": "static", "user_ids": people},
    )
    assert segment.status_code == 201, segment.text
    log_in(page, web_url, t)
    everything = clickhouse_count(settings, t.company_id, "1")
    assert figures(page)[0] == everything

    page.select_option("#breakdown-dimension", "type")
    page.locator("#breakdown-table a.filter-by", has_text="track").click()
    expect(page.locator("#filter-bar .chip")).to_have_text("Event type is track×")
    assert "filters=" in page.url  # the link shares the view
    tracks = clickhouse_count(settings, t.company_id, "type = 'track'")
    wait_for(lambda: figures(page) == (tracks, 0, tracks), 10, "the tiles and chart of the track events")
    expect(page.locator("[data-metric=new_users] .value")).to_be_visible()  # the engine counts them filtered too
    expect(page.locator("[data-metric=events] .change")).to_be_visible()  # against the previous period, filtered
    page.screenshot(path=ARTIFACTS / "dashboard-filtered.png", full_page=True)
    page.reload()  # the filter comes back from the URL
    wait_for(lambda: figures(page) == (tracks, 0, tracks), 10, "the filtered view after a reload")

    page.click("#filter-bar .chip button.remove")
    expect(page.locator("#filter-bar .chip")).to_have_count(0)
    wait_for(lambda: figures(page)[0] == everything, 10, "the whole company again")

    page.select_option("#segment-picker", segment.json["id"])
    listed = ", ".join(f"'{p}'" for p in people)
    theirs = clickhouse_count(settings, t.company_id, f"user_id IN ({listed})")
    pages = clickhouse_count(settings, t.company_id, f"user_id IN ({listed}) AND type = 'page'")
    assert 0 < theirs < everything
    wait_for(lambda: figures(page) == (theirs, pages, theirs), 10, "the segment's figures")

    # The Payments and Web3 tabs keep the segment (the tab links carry the URL's filters).
    page.click("nav.tabs >> text=Payments")
    expect(page.locator("#tab-payments[data-loaded=true]")).to_be_attached()
    expect(page.locator("#segment-picker")).to_have_value(segment.json["id"])
    completed = clickhouse_count(
        settings, t.company_id, f"user_id IN ({listed}) AND type = 'payment' AND status = 'completed'"
    )
    expect(page.locator("#payment-tiles .tile").nth(1)).to_contain_text(f"{completed:,}")
    page.click("nav.tabs >> text=Web3")
    expect(page.locator("#tab-web3[data-loaded=true]")).to_be_attached()
    transactions = clickhouse_count(settings, t.company_id, f"user_id IN ({listed}) AND type = 'transaction'")
    rows = page.locator("#web3-transactions td:nth-child(3)").all_text_contents()
    assert transactions > 0 and sum(int(v.replace(",", "")) for v in rows) == transactions
    states = page.locator("#web3-verified td:nth-child(3)").all_text_contents()
    assert sum(int(v.replace(",", "")) for v in states) == transactions  # each event, by what the chain says
    expect(page.locator("#web3-tiles .tile").nth(0).locator(".change")).to_be_visible()  # against the previous period
    assert page.problems == []


def test_dashboard_login_figures_chart_live_panel_and_key_lifecycle(company_with_data, web_url, page, settings):
    t = company_with_data
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{web_url}/app")
    page.fill("#email", t.owner.email)
    page.fill("#password", "wrong password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("password")
    assert [problem for problem in page.problems if "/v1/auth/login" not in problem] == []
    page.problems.clear()  # the refused login's 401 is the one error expected
    page.fill("#password", "correct horse battery staple")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#controls")).to_be_visible()

    page.select_option("#company", t.company_id)
    expect(page.locator("#tab-analytics[data-loaded=true]")).to_be_attached()
    assert page.url.endswith(f"#/c/{t.company_id}/analytics")
    events = clickhouse_count(settings, t.company_id, "1")
    page_views = clickhouse_count(settings, t.company_id, "type = 'page'")
    assert events > 250
    expect(page.locator("[data-metric=events] .value")).to_have_text(f"{events:,}")
    expect(page.locator("[data-metric=page_views] .value")).to_have_text(f"{page_views:,}")
    charted = [int(value.replace(",", "")) for value in page.locator("#trend-data td:nth-child(2)").all_text_contents()]
    assert len(charted) == 7 and sum(charted) == events
    assert chart_has_ink(page, "#trend-chart")

    page.select_option("#breakdown-dimension", "name")
    expect(page.locator("#breakdown-table")).to_contain_text(HOSTILE_NAME)
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=ARTIFACTS / "dashboard-analytics.png", full_page=True)

    page.click("nav.tabs >> text=Live")
    expect(page.locator("#live-status.stale")).to_contain_text("Stale")
    completed = clickhouse_count(settings, t.company_id, "type = 'payment' AND status = 'completed'")
    page.click("nav.tabs >> text=Payments")
    expect(page.locator("#payment-tiles .tile").nth(1)).to_contain_text(f"{completed:,}")

    # No chain has an endpoint here: every reported transaction is counted, as unverified.
    page.click("nav.tabs >> text=Web3")
    expect(page.locator("#tab-web3[data-loaded=true]")).to_be_attached()
    reported = clickhouse_count(settings, t.company_id, "type = 'transaction' AND is_bot = 0")
    expect(page.locator("#web3-verified-tiles .tile").nth(0)).to_contain_text(f"{reported:,}")
    expect(page.locator("#web3-verified-tiles .tile").nth(1)).to_contain_text("0")
    expect(page.locator("#web3-verified")).to_contain_text("unverified")
    expect(page.locator("#web3-review")).to_contain_text("The chain has contradicted no reported transaction.")
    verified = page.locator("#web3-verified td:nth-child(3)").all_text_contents()
    assert reported > 0 and sum(int(v.replace(",", "")) for v in verified) == reported

    page.click("nav.tabs >> text=Team & keys")
    expect(page.locator("#members")).to_contain_text(t.owner.email)
    page.select_option("#key-kind", "write")
    page.fill("#key-label", "made in the dashboard")
    page.click("#key-form button[type=submit]")
    key = page.locator("#new-key").input_value()
    assert key.startswith("adt_w_")
    page.click("#copy-key")
    assert page.evaluate("navigator.clipboard.readText()") == key
    expect(page.locator("#keys")).to_contain_text("made in the dashboard")
    page.screenshot(path=ARTIFACTS / "dashboard-keys.png", full_page=True)
    assert post_event(web_url, key) == 200

    page.click("#new-key-slot >> text=Done")
    expect(page.locator("#new-key")).to_have_count(0)
    page.locator("#keys tr", has_text="made in the dashboard").locator("button.revoke").click()
    expect(page.locator("#keys")).not_to_contain_text("made in the dashboard")
    wait_for(lambda: post_event(web_url, key) == 401, 5, "the revoked key to be refused")

    page.reload()
    expect(page.locator("#tab-team[data-loaded=true]")).to_be_attached()  # the login survives a reload
    assert page.problems == []


def test_sign_up_then_first_company_then_log_out(web_url, page, api):
    page.goto(f"{web_url}/app")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#controls")).to_be_hidden()  # no company picker, period or "Log out" before a login
    page.click("#switch-mode")
    page.fill("#email", "newcomer@example.com")
    page.fill("#password", "short")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("characters")
    page.problems.clear()  # the refused sign-up's 422 is expected
    page.fill("#password", "a long enough passphrase")
    page.click("#login-form button[type=submit]")
    page.fill("#company-name", "Newcomer's shop")
    page.click("#company-form button[type=submit]")
    expect(page.locator("#tab-team[data-loaded=true]")).to_be_attached()
    expect(page.locator("#members")).to_contain_text("newcomer@example.com")
    expect(page.locator("#company")).to_contain_text("Newcomer's shop")
    page.click("#logout")
    expect(page.locator("#login-error")).to_have_text("You have logged out.")
    page.reload()
    expect(page.locator("#login-form")).to_be_visible()  # the login is gone, not merely hidden
    expect(page.locator("#controls")).to_be_hidden()
    assert page.problems == []


def link_in_mail(email: str, web_url: str, settings) -> str:
    """The link a mail to `email` carries, pointed at the web process under test."""
    body = latest_mail(email).body
    link = next(word for word in body.split() if word.startswith(settings.public_base_url))
    return web_url + link.removeprefix(settings.public_base_url)


def test_the_reset_link_in_the_mail_sets_a_new_password(web_url, page, api, settings):
    session = api.user("forgetful@example.com")
    assert api.post("/v1/auth/password-reset", json={"email": session.email}).status_code == 202
    run_queued_jobs(settings)
    link = link_in_mail(session.email, web_url, settings)
    assert "/app/reset?token=" in link
    page.goto(link)
    page.fill("#new-password", "a fresh long passphrase")
    page.fill("#repeat-password", "a different passphrase")
    page.click("#reset-form button[type=submit]")
    expect(page.locator("#reset-error")).to_have_text("The two passwords differ.")
    page.fill("#repeat-password", "a fresh long passphrase")
    page.click("#reset-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("Your password has been changed; log in with it.")
    assert page.url == f"{web_url}/app#/login"
    page.fill("#email", session.email)
    page.fill("#password", "a fresh long passphrase")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#company-form")).to_be_visible()  # logged in; no company yet
    assert page.problems == []
    page.goto(link)  # a used link says so
    page.fill("#new-password", "yet another passphrase")
    page.fill("#repeat-password", "yet another passphrase")
    page.click("#reset-form button[type=submit]")
    expect(page.locator("#reset-error")).to_contain_text("expired or was already used")


def test_the_invite_link_in_the_mail_joins_the_company_after_signing_up(web_url, page, api, settings):
    owner = api.user()
    company_id = api.company(owner, "Invited Co")
    invited = api.post(
        f"/v1/companies/{company_id}/invites", auth=owner, json={"email": "joiner@example.com", "role": "member"}
    )
    assert invited.status_code == 201, invited.text
    link = link_in_mail("joiner@example.com", web_url, settings)
    assert "/app/invite?token=" in link
    page.goto(link)
    expect(page.locator("#login-error")).to_contain_text("accept the invite")
    page.click("#switch-mode")
    page.fill("#email", "joiner@example.com")
    page.fill("#password", "a long enough passphrase")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#notice")).to_have_text("You have joined Invited Co as member.")
    expect(page.locator("#tab-analytics[data-loaded=true]")).to_be_attached()
    assert page.url == f"{web_url}/app#/c/{company_id}/analytics"
    expect(page.locator("#who")).to_have_text("joiner@example.com (member)")
    assert page.problems == []


def test_the_api_reference_renders_under_the_content_security_policy(web_url, page):
    page.goto(f"{web_url}/docs")
    expect(page.locator("h2").first).to_be_visible()
    expect(page.locator("details.op summary code").first).not_to_be_empty()
    assert page.problems == []
