"""A thin driver of the API for tests: register, log in, make companies and keys, send requests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import falcon.inspect
import falcon.testing
import jwt

from web import openapi

PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)


@dataclass
class Session:
    email: str
    user_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    def __init__(self, client: falcon.testing.TestClient) -> None:
        self.client = client

    def request(
        self, method: str, path: str, *, auth: Session | str | None = None, json=None, headers=None, **kwargs
    ) -> falcon.testing.Result:
        all_headers = dict(headers or {})
        if isinstance(auth, Session):
            all_headers.update(auth.headers)
        elif isinstance(auth, str):
            all_headers["Authorization"] = f"Bearer {auth}"
        return self.client.simulate_request(method, path, json=json, headers=all_headers, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def user(self, email: str | None = None, password: str = PASSWORD) -> Session:
        """Registers a new user and logs in."""
        email = email or f"user{next(_numbers)}@example.com"
        registered = self.post("/v1/auth/register", json={"email": email, "password": password})
        assert registered.status_code == 201, registered.text
        return self.login(email, password)

    def login(self, email: str, password: str = PASSWORD) -> Session:
        answer = self.post("/v1/auth/login", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.text
        token = answer.json["access_token"]
        user_id = jwt.decode(token, options={"verify_signature": False})["sub"]  # /v1/me would say the same
        return Session(email, user_id, token, answer.json["refresh_token"])

    def company(self, owner: Session, name: str | None = None) -> str:
        answer = self.post("/v1/companies", auth=owner, json={"name": name or f"Company {next(_numbers)}"})
        assert answer.status_code == 201, answer.text
        return answer.json["id"]

    def key(self, admin: Session, company_id: str, kind: str = "read") -> dict:
        answer = self.post(f"/v1/companies/{company_id}/keys", auth=admin, json={"kind": kind, "label": "test"})
        assert answer.status_code == 201, answer.text
        return answer.json

    def member(self, admin: Session, company_id: str, role: str) -> Session:
        """A new user who joined `company_id` with `role` through a real invite."""
        user = self.user()
        invited = self.post(f"/v1/companies/{company_id}/invites", auth=admin, json={"email": user.email, "role": role})
        assert invited.status_code == 201, invited.text
        token = invite_token_from_outbox(user.email)
        accepted = self.post(f"/v1/invites/{token}/accept", auth=user)
        assert accepted.status_code == 200, accepted.text
        return user

    def joined(self, company_id: str, role: str) -> Session:
        """A new user given `role` in `company_id` directly in the database (the invite flow has its own tests)."""
        from models.accounts import Membership

        user = self.user()
        Membership.create(company=company_id, user=user.user_id, role=role)
        return user


def latest_mail(to_email: str):
    from models.accounts import MailOutbox

    return MailOutbox.select().where(MailOutbox.to_email == to_email).order_by(MailOutbox.id.desc()).first()


def token_in_mail(body: str) -> str:
    return body.split("token=", 1)[1].split()[0]


def invite_token_from_outbox(email: str) -> str:
    return token_in_mail(latest_mail(email).body)


def served(app) -> set[tuple[str, str]]:
    return {
        (route.path, method.method.lower())
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal and method.method.lower() in openapi.METHODS
    }
