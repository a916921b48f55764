"""Password guessing against the real web process (gunicorn, two gevent workers): guesses that arrive
at once are counted before any is checked, so an account's lockout holds under concurrency for logins
and password changes alike, and a flood of bcrypt work is bounded per worker (503 beyond the wait)."""

from __future__ import annotations

import http.client
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import pytest

from models.accounts import LoginAttempt, User
from tests.helpers import PASSWORD
from tests.processes import Process, free_port, process_env

pytestmark = pytest.mark.processes
MAX_FAILURES = 5


@pytest.fixture
def web(settings):
    """A web process whose per-address limit is out of the way, so only the per-account count acts."""
    process = Process(
        "web",
        process_env(
            PORT=str(free_port()),
            WEB_WORKERS="2",
            LOGIN_RATE_PER_IP_PER_MINUTE="10000",
            LOGIN_MAX_FAILURES=str(MAX_FAILURES),
        ),
    )
    process.wait_ready()
    yield process
    process.stop()


def post(port: int, path: str, body: dict, token: str | None = None) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    connection.request("POST", path, body=json.dumps(body), headers=headers)
    answer = connection.getresponse()
    raw = answer.read()
    connection.close()
    return answer.status, {name.lower(): value for name, value in answer.getheaders()}, json.loads(raw) if raw else {}


def at_once(calls, workers: int) -> list[tuple[int, dict, dict]]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda call: call(), calls))


def statuses(answers) -> list[int]:
    return sorted(status for status, _, _ in answers)


def test_concurrent_logins_check_no_more_passwords_than_the_lockout_allows(api, web):
    """25 logins for one email at once, 24 wrong and the right one: at most five wrong passwords are
    checked (the rest answer 429), where before every one was. (A right guess frees its place: a
    success is not a failure.)"""
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"
    api.user(email)
    port = int(web.env["PORT"])
    guesses = [{"email": email, "password": f"wrong guess {n}"} for n in range(24)] + [
        {"email": email, "password": PASSWORD}
    ]
    answers = at_once([lambda body=body: post(port, "/v1/auth/login", body) for body in guesses], workers=25)
    checked = [status for status in statuses(answers) if status in (200, 401)]
    assert checked.count(401) <= MAX_FAILURES and checked.count(200) <= 1, statuses(answers)
    assert statuses(answers).count(429) == 25 - len(checked)
    assert all("retry-after" in headers for status, headers, _ in answers if status == 429)
    wrong = LoginAttempt.select().where(LoginAttempt.email == email, LoginAttempt.succeeded == False)  # noqa: E712
    assert wrong.count() == checked.count(401)
    # Locked: even the right password now answers 429.
    assert post(port, "/v1/auth/login", {"email": email, "password": PASSWORD})[0] == 429


def test_guessing_the_current_password_with_a_stolen_token_is_throttled(api, web):
    """40 guesses of current_password, 8 at a time, with a valid access token: at most five are checked,
    the rest answer 429, and the right one after them is refused too (the account's lockout)."""
    session = api.user(f"oracle-{uuid.uuid4().hex[:8]}@example.com")
    port = int(web.env["PORT"])
    change = "/v1/auth/password"
    guesses = [{"current_password": f"guess number {n}", "new_password": "a brand new passphrase"} for n in range(40)]
    answers = at_once([lambda body=body: post(port, change, body, session.access_token) for body in guesses], workers=8)
    assert statuses(answers).count(403) <= MAX_FAILURES
    assert statuses(answers).count(429) >= 40 - MAX_FAILURES
    right = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    assert post(port, change, right, session.access_token)[0] == 429
    # Logins share the count: the guesses locked the account's login as well.
    assert post(port, "/v1/auth/login", {"email": session.email, "password": PASSWORD})[0] == 429


def test_password_checks_beyond_the_bound_wait_then_answer_503(api):
    """One bcrypt check at a time in a worker (PASSWORD_HASH_CONCURRENCY=1): six logins at once for six
    accounts whose hashes take about half a second each; with a short wait the ones that cannot start
    in time answer 503 busy with Retry-After, and none of them counted as a wrong guess."""
    slow_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(13)).decode()
    emails = [f"busy-{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(6)]
    for email in emails:
        api.user(email)
    User.update(password_hash=slow_hash).where(User.email.in_(emails)).execute()
    env = process_env(
        PORT=str(free_port()),
        WEB_WORKERS="1",
        PASSWORD_HASH_CONCURRENCY="1",
        PASSWORD_HASH_WAIT_SECONDS="0.2",
        LOGIN_RATE_PER_IP_PER_MINUTE="10000",
    )
    web = Process("web", env)
    try:
        web.wait_ready()
        port = int(env["PORT"])
        answers = at_once(
            [
                lambda email=email: post(port, "/v1/auth/login", {"email": email, "password": PASSWORD})
                for email in emails
            ],
            workers=6,
        )
        assert 200 in statuses(answers) and 503 in statuses(answers), statuses(answers)
        assert set(statuses(answers)) == {200, 503}
        busy = [(headers, body) for status, headers, body in answers if status == 503]
        assert all(headers["retry-after"] == "1" and body["error"]["code"] == "busy" for headers, body in busy)
        wrong = LoginAttempt.select().where(LoginAttempt.email.in_(emails), LoginAttempt.succeeded == False)  # noqa: E712
        assert wrong.count() == 0
    finally:
        web.stop()
