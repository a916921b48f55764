"""Privacy requests for one end user of a company (admins and owners): `DELETE .../users/{user_id}`
erases the user's data, `POST .../users/{user_id}/export` gathers it as gzip NDJSON; both run as
background jobs (workers/privacy.py) and answer 202 with the request, whose status is at
`GET .../privacy-requests/{id}` and whose export downloads from `.../privacy-requests/{id}/download`."""

from __future__ import annotations

import uuid

import falcon

from accounts.audit import audit
from adtivity.jobs import DELETE_USER, EXPORT_USER, Jobs
from models.privacy import DELETE, DONE, EXPORT, PrivacyRequest
from web.errors import ApiError, not_found
from web.principals import client_ip, company_access

MAX_USER_ID = 512
ACTORS = {DELETE: DELETE_USER, EXPORT: EXPORT_USER}


def request_out(request: PrivacyRequest) -> dict:
    base = f"/v1/companies/{request.company_id}/privacy-requests/{request.id}"
    return {
        "id": str(request.id),
        "kind": request.kind,
        "user_id": request.user_id,
        "status": request.status,
        "created_at": request.created_at.isoformat() + "Z",
        "finished_at": request.finished_at.isoformat() + "Z" if request.finished_at else None,
        "events": request.events,
        "error": request.error or None,
        "status_url": base,
        "download_url": f"{base}/download" if request.kind == EXPORT and request.status == DONE else None,
    }


class UserPrivacy:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def start(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str, kind: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        if not user_id or len(user_id) > MAX_USER_ID:
            raise ApiError(400, "invalid_parameter", f"user_id must be 1 to {MAX_USER_ID} characters")
        request = PrivacyRequest.create(
            company_id=access.company.id, kind=kind, user_id=user_id, requested_by=access.user.id
        )
        self.jobs.enqueue(ACTORS[kind], str(request.id))
        audit(
            f"user.{kind}_requested",
            actor_id=access.user.id,
            company_id=access.company.id,
            target=str(request.id),
            ip=client_ip(req),
        )
        resp.status = falcon.HTTP_202
        resp.location = request_out(request)["status_url"]
        resp.media = request_out(request)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str) -> None:
        self.start(req, resp, company_id, user_id, DELETE)


class UserExport(UserPrivacy):
    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str) -> None:
        self.start(req, resp, company_id, user_id, EXPORT)


def find_request(req: falcon.Request, company_id: str, request_id: str) -> PrivacyRequest:
    access = company_access(req, company_id, min_role="admin")
    try:
        wanted = uuid.UUID(request_id)
    except ValueError:
        raise not_found("privacy request") from None
    request = PrivacyRequest.get_or_none(PrivacyRequest.id == wanted, PrivacyRequest.company_id == access.company.id)
    if request is None:
        raise not_found("privacy request")
    return request


class PrivacyRequestItem:
    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str, request_id: str) -> None:
        resp.media = request_out(find_request(req, company_id, request_id))


class PrivacyExportDownload:
    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str, request_id: str) -> None:
        request = find_request(req, company_id, request_id)
        if request.kind != EXPORT or request.status != DONE:
            raise ApiError(409, "not_ready", "only a finished export can be downloaded")
        resp.data = bytes(request.result)
        resp.content_type = "application/gzip"
        resp.downloadable_as = f"user-export-{request.id}.ndjson.gz"
