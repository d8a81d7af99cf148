#!/usr/bin/env python3
"""A real LTI 1.3 platform for rostergate's end-to-end tests: a test peer, not product code.

Built on the PyPI package lti1p3platform 0.1.8 (MIT, OpenLearning,
https://github.com/OpenLearningNet/lti1p3platform): its platform configuration (keys, JWKS,
the tool's key set, client-credentials access tokens), OIDC login initiation, resource link and
deep linking launches, the NRPS and AGS service classes and the deep linking response check.
It is served with the standard library's ThreadingHTTPServer on 127.0.0.1 and closes, here in
the harness, the gaps the library leaves (shared/reference/lti13.md §17):

- the authorization request: scope, response_type, response_mode, prompt, client_id, a
  redirect_uri allow-list (exact match), login_hint and lti_message_hint (one use each);
- the token endpoint: the client assertion's signature by a key of the tool's JWKS (fetched
  every time: no key set cached forever), iss = sub = client_id, aud = the token URL, exp at
  most 5 minutes ahead, a jti never seen before, the assertion type, and every scope asked for
  one the platform offers (else invalid_scope);
- scopes checked per endpoint exactly (the library accepts any LTI scope on any endpoint);
- NRPS paging that works (the library raises TypeError), answered with Link: <…>; rel="next";
- the AGS claim's scope list built without mutating it while iterating;
- line item and result paging links built from the real URLs (Moodle-style line item URLs
  with a query string, `?type_id=1`, so a tool must put `/scores` ahead of the query);
- scores validated: media type application/vnd.ims.lis.v1.score+json, userId a member,
  activityProgress and gradingProgress from their vocabularies, timestamp ISO 8601 with
  sub-second precision and an offset, strictly increasing per line item and user (409
  otherwise), scoreMaximum present with scoreGiven;
- deep linking responses verified against the tool's JWKS with aud = the issuer, iss = the
  client id, the deployment, message type, version, a nonce, and `data` echoed (each `data`
  answered once).

Usage: lti_platform.py --config CONFIG.json [--port PORT] [--verbose]
The first line on stdout is `listening http://127.0.0.1:PORT`. The configuration (JSON):

    {"issuer": "(optional; default the origin)", "client_id": "…", "deployment_id": "…",
     "tool": {"login_url": "…", "redirect_uris": ["…"], "jwks_url": "…",
              "target_link_uri": "…", "deep_linking_target_link_uri": "(optional)"},
     "context": {"id": "…", "label": "…", "title": "…", "course_section_sourcedid": "…"},
     "members": [{"user_id": "…", "roles": ["…"], "lis_person_sourcedid": "(optional)",
                  "name": "…", "given_name": "…", "family_name": "…", "email": "…",
                  "status": "Active"}],
     "users": [(more people who may launch but are not members of the context)],
     "nrps_page_size": 0}

Test control endpoints (JSON): GET /_test/login?user=USER_ID&message=resource_link|deep_linking
[&target_link_uri=…] answers {"url": the tool's login URL with the query this platform sends};
GET /_test/launches, /_test/token_requests, /_test/service_requests (NRPS and AGS calls),
/_test/lineitems (with the scores each received) and /_test/deep_link_responses (each with
its verification result) list what the platform saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import re
import secrets
import sys
import threading
import time
import traceback
import typing as t
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jwt
from jwcrypto.jwk import JWK  # type: ignore

from lti1p3platform.ags import LtiAgs
from lti1p3platform.exceptions import (
    LineItemNotFoundException,
    LtiException,
    LtiServiceException,
)
from lti1p3platform.lineitem import TLineItem
from lti1p3platform.ltiplatform import AccessTokenResponse, LTI1P3PlatformConfAbstract
from lti1p3platform.membership import Context, ContextMembership
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest
from lti1p3platform.response import Response
from lti1p3platform.score import ActivityProgress, GradeProgress, TScore, UpdateScoreStatus
from lti1p3platform.service_connector import (
    AssignmentsGradesService,
    NamesRoleProvisioningService,
    TPage,
    authenticate,
)
from lti1p3platform.utils import dataclass_to_dict

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"

MEDIA_NRPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MEDIA_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
MEDIA_LINEITEMS = "application/vnd.ims.lis.v2.lineitemcontainer+json"
MEDIA_SCORE = "application/vnd.ims.lis.v1.score+json"
MEDIA_RESULTS = "application/vnd.ims.lis.v2.resultcontainer+json"

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# How far ahead a client assertion may expire (reference §9), plus a second of clock rounding.
ASSERTION_MAX_TTL = 300 + 1
# The query Moodle puts on its AGS URLs: a tool must keep it when it appends /scores.
AGS_QUERY = "type_id=1"
LTI_VERSION = "1.3.0"
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.(\d+)(Z|[+-]\d{2}:\d{2})$")


class Refused(Exception):
    """A request this platform refuses: an HTTP status, an error code and why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclasses.dataclass
class Config:
    client_id: str
    deployment_id: str
    tool: t.Dict[str, t.Any]
    context: t.Dict[str, t.Any]
    members: t.List[t.Dict[str, t.Any]]
    users: t.List[t.Dict[str, t.Any]]
    issuer: t.Optional[str] = None
    nrps_page_size: int = 0

    @staticmethod
    def load(path: str) -> "Config":
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        return Config(
            client_id=raw["client_id"],
            deployment_id=raw["deployment_id"],
            tool=raw["tool"],
            context=raw["context"],
            members=raw.get("members", []),
            users=raw.get("users", []),
            issuer=raw.get("issuer"),
            nrps_page_size=int(raw.get("nrps_page_size", 0)),
        )


class Harness:
    """What the platform holds and saw; shared by every request thread (under `lock`)."""

    def __init__(self, config: Config, origin: str) -> None:
        self.config = config
        self.origin = origin
        self.issuer = config.issuer or origin
        key = JWK.generate(kty="RSA", size=2048)
        self.private_pem: str = key.export_to_pem(private_key=True, password=None).decode()
        self.public_pem: str = key.export_to_pem().decode()
        self.lock = threading.Lock()
        self.pending_logins: t.Dict[str, t.Dict[str, t.Any]] = {}
        self.pending_deep_links: t.Dict[str, t.Dict[str, t.Any]] = {}
        self.seen_jtis: t.Set[str] = set()
        self.seen_dl_nonces: t.Set[str] = set()
        self.resource_links: t.Set[str] = set()
        self.lineitems: t.Dict[int, t.Dict[str, t.Any]] = {}
        self.launches: t.List[t.Dict[str, t.Any]] = []
        self.token_requests: t.List[t.Dict[str, t.Any]] = []
        self.service_requests: t.List[t.Dict[str, t.Any]] = []
        self.deep_link_responses: t.List[t.Dict[str, t.Any]] = []

    # The platform's URLs.
    @property
    def token_url(self) -> str:
        return f"{self.origin}/token"

    @property
    def context_id(self) -> str:
        return str(self.config.context["id"])

    def memberships_url(self) -> str:
        return f"{self.origin}/nrps/{quote(self.context_id, safe='')}/memberships"

    def lineitems_url(self) -> str:
        return f"{self.origin}/ags/{quote(self.context_id, safe='')}/lineitems?{AGS_QUERY}"

    def lineitem_url(self, number: int) -> str:
        context = quote(self.context_id, safe="")
        return f"{self.origin}/ags/{context}/lineitems/{number}/lineitem?{AGS_QUERY}"

    def person(self, user_id: str) -> t.Optional[t.Dict[str, t.Any]]:
        for person in self.config.members + self.config.users:
            if person.get("user_id") == user_id:
                return person
        return None

    def is_member(self, user_id: str) -> bool:
        return any(m.get("user_id") == user_id for m in self.config.members)


def with_query(url: str, params: t.Mapping[str, t.Any]) -> str:
    """`url` with `params` added to (or replacing those in) its query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in params.items() if v is not None})
    return urlunsplit(parts._replace(query=urlencode(query)))


class HarnessRequest(Request):
    """A request as the library reads it, made from what the HTTP handler parsed."""

    def build_metadata(self, request: t.Any) -> TRequest:
        return t.cast(TRequest, request)


class Platform(LTI1P3PlatformConfAbstract):
    """The library's platform configuration, one per request (it keeps per-call state)."""

    harness: Harness

    def init_platform_config(self, **kwargs: t.Any) -> None:
        self.harness = kwargs["harness"]
        self.audience: t.Optional[str] = None

    def get_registration_by_params(self, **kwargs: t.Any) -> Registration:
        harness, tool = self.harness, self.harness.config.tool
        return (
            Registration()
            .set_iss(harness.issuer)
            .set_client_id(harness.config.client_id)
            .set_deployment_id(harness.config.deployment_id)
            .set_oidc_login_url(tool["login_url"])
            .set_launch_url(tool["target_link_uri"])
            .set_deeplink_launch_url(
                tool.get("deep_linking_target_link_uri") or tool["target_link_uri"]
            )
            .set_tool_key_set_url(tool["jwks_url"])
            .set_platform_public_key(harness.public_pem)
            .set_platform_private_key(harness.private_pem)
        )

    def get_tool_key_set(self) -> t.Any:
        # The library caches the tool's key set forever: fetched on every check instead.
        registration = self.get_registration()
        url = registration.get_tool_key_set_url()
        assert url is not None
        return self.fetch_public_key(url)

    def decode_tool_jwt(self, token: str, audience: str) -> t.Dict[str, t.Any]:
        """A JWT the tool signed, checked by the library against the tool's JWKS, with `aud`."""
        self.audience = audience
        try:
            return self.tool_validate_and_decode(token)
        finally:
            self.audience = None

    def tool_validate_and_decode(self, jwt_token_string: str) -> t.Dict[str, t.Any]:
        # The library decodes without an audience (verify_aud False): the harness names one.
        self.validate_jwt_format(jwt_token_string)
        public_key = self.get_tool_public_key()
        return jwt.decode(
            jwt_token_string,
            public_key,
            algorithms=["RS256"],
            audience=self.audience,
            options={"verify_aud": self.audience is not None, "require": ["exp", "iat"]},
        )

    def validate_token(
        self,
        token: str,
        allowed_scopes: t.Optional[t.List[str]] = None,
        audience: t.Optional[str] = None,
    ) -> bool:
        try:
            return super().validate_token(token, allowed_scopes, audience)
        except (jwt.PyJWTError, LtiException) as error:
            raise LtiServiceException(f"invalid access token: {error}", 401) from error


class Login(OIDCLoginAbstract):
    """The library's third-party-initiated login; the redirect is handed to the test as a URL."""

    def set_lti_message_hint(self, **kwargs: t.Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


class Grades(LtiAgs):
    """The library's AGS claim, without removing items from the list it iterates."""

    def get_lti_ags_launch_claim(self) -> t.Dict[str, t.Any]:
        scopes = self.get_available_scopes()
        if self.lineitem_url and not self.lineitems_url:
            scopes = [s for s in scopes if s == SCOPE_SCORE]
        claim: t.Dict[str, t.Any] = {"scope": scopes}
        if self.lineitem_url:
            claim["lineitem"] = self.lineitem_url
        if self.lineitems_url:
            claim["lineitems"] = self.lineitems_url
        return {"https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": claim}


class Launch(LTIAdvantageMessageLaunchAbstract):
    """The library's resource link / deep linking launch, answered as an auto-submit form."""

    def set_ags(
        self,
        lineitems_url: str,
        lineitem_url: t.Optional[str] = None,
        allow_creating_lineitems: bool = True,
        results_service_enabled: bool = True,
        scores_service_enabled: bool = True,
    ) -> "Launch":
        self._ags = Grades(
            lineitems_url,
            lineitem_url,
            allow_creating_lineitems,
            results_service_enabled,
            scores_service_enabled,
        )
        self.set_extra_claims(self._ags.get_lti_ags_launch_claim())
        return self

    def render_launch_form(self, launch_data: t.Dict[str, t.Any], **kwargs: t.Any) -> str:
        return auto_submit_form(
            launch_data["launch_url"],
            {"id_token": launch_data["id_token"], "state": launch_data["state"]},
        )


def auto_submit_form(action: str, fields: t.Mapping[str, str]) -> str:
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">\n'
        for k, v in fields.items()
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Launching</title></head>\n'
        '<body onload="document.forms[0].submit()">\n'
        f'<form method="post" action="{html.escape(action)}">\n{inputs}</form>\n</body></html>\n'
    )


class Memberships(NamesRoleProvisioningService):
    """The library's NRPS endpoint over the configured members, with paging that works."""

    def __init__(self, request: Request, platform: Platform, harness: Harness) -> None:
        super().__init__(request, platform, harness.memberships_url())
        self.harness = harness

    def get_context_by_id(self) -> Context:
        context = self.harness.config.context
        return Context(
            id=str(context["id"]),
            label=str(context.get("label", "")),
            title=str(context.get("title", "")),
        )

    def is_resource_link_valid(self, context_id: str, resource_link_id: str) -> bool:
        with self.harness.lock:
            return resource_link_id in self.harness.resource_links

    def get_member_data_page(
        self,
        page: int = 1,
        limit: t.Optional[int] = None,
        role: t.Optional[str] = None,
        since: t.Optional[str] = None,
        **_: t.Any,
    ) -> TPage:
        members = [dict(m) for m in self.harness.config.members]
        if role:
            members = [m for m in members if any(role_matches(r, role) for r in m["roles"])]
        size = limit or self.harness.config.nrps_page_size or max(len(members), 1)
        start = (page - 1) * size
        return {"content": members[start : start + size], "has_next": start + size < len(members)}

    @authenticate(allow_methods=["GET"], accept=MEDIA_NRPS)
    def handle_get_members(self) -> Response:
        # As the library's, but with integer paging (its own raises TypeError on `page + 1`),
        # the platform's page size applied without `limit` too, and the next page as a Link.
        assert self.request is not None
        query = self.request.get_data
        context = self.get_context_by_id()
        rlid = query.get("rlid")
        if rlid and not self.is_resource_link_valid(context.id, rlid):
            return Response(result=None, code=403, message="Access denied")
        body = dataclass_to_dict(
            ContextMembership(id=self.nrps.context_memberships_url, context=context)
        )
        page = self.get_member_data_page(**query)
        body["members"] = self.clean_members(page["content"])
        if page["has_next"]:
            body["next"] = with_query(
                self.nrps.context_memberships_url, {**query, "page": query.get("page", 1) + 1}
            )
        return Response(result=body, code=200, message="success")


def role_matches(role: str, wanted: str) -> bool:
    """NRPS `role=`: a full URI, or a short name matching the URI's last part."""
    return role == wanted or role.rsplit("#", 1)[-1] == wanted


class Gradebook(AssignmentsGradesService):
    """The library's AGS endpoints over an in-memory gradebook, each with its exact scopes."""

    def __init__(
        self,
        request: Request,
        platform: Platform,
        harness: Harness,
        scopes: t.List[str],
        lineitem: t.Optional[int] = None,
    ) -> None:
        lineitem_url = harness.lineitem_url(lineitem) if lineitem is not None else None
        super().__init__(request, platform, harness.lineitems_url(), lineitem_url)
        self.harness = harness
        self.endpoint_scopes = scopes

    @property
    def allowed_scopes(self) -> t.List[str]:
        # The library offers every AGS scope on every endpoint: here each names its own.
        return self.endpoint_scopes

    def require_content_type(self, media_type: str) -> None:
        assert self.request is not None
        given = (self.request.content_type or "").split(";")[0].strip()
        if given != media_type:
            raise LtiServiceException(f"Content-Type must be {media_type}, not {given!r}", 415)

    def item(self, number: int) -> t.Dict[str, t.Any]:
        item = self.harness.lineitems.get(number)
        if item is None:
            raise LineItemNotFoundException()
        return item

    def find_lineitems(
        self,
        page: int = 1,
        limit: t.Optional[int] = None,
        line_item_id: t.Optional[str] = None,
        resource_link_id: t.Optional[str] = None,
        resource_id: t.Optional[str] = None,
        tag: t.Optional[str] = None,
    ) -> TPage:
        with self.harness.lock:
            items = [dict(i["lineitem"]) for _, i in sorted(self.harness.lineitems.items())]
        wanted = {"resourceLinkId": resource_link_id, "resourceId": resource_id, "tag": tag}
        for field, value in wanted.items():
            if value is not None:
                items = [i for i in items if i.get(field) == value]
        size = limit or max(len(items), 1)
        start = (page - 1) * size
        return {"content": items[start : start + size], "has_next": start + size < len(items)}

    def find_lineitem(self, line_item_id: str) -> TLineItem:
        with self.harness.lock:
            return t.cast(TLineItem, dict(self.item(int(line_item_id))["lineitem"]))

    def create_lineitem(self, creation_data: TLineItem) -> TLineItem:
        self.require_content_type(MEDIA_LINEITEM)
        data = dict(creation_data or {})
        check_lineitem(data)
        with self.harness.lock:
            number = len(self.harness.lineitems) + 1
            data["id"] = self.harness.lineitem_url(number)
            self.harness.lineitems[number] = {"lineitem": data, "scores": []}
        return t.cast(TLineItem, data)

    def update_lineitem(self, update_data: TLineItem) -> TLineItem:
        self.require_content_type(MEDIA_LINEITEM)
        data = dict(update_data)
        check_lineitem(data)
        with self.harness.lock:
            item = self.item(int(data["id"]))
            data["id"] = item["lineitem"]["id"]
            data["resourceLinkId"] = item["lineitem"].get("resourceLinkId")
            item["lineitem"] = {k: v for k, v in data.items() if v is not None}
            return t.cast(TLineItem, dict(item["lineitem"]))

    def delete_lineitem(self, line_item_id: str) -> None:
        with self.harness.lock:
            self.item(int(line_item_id))
            del self.harness.lineitems[int(line_item_id)]

    def update_score(self, line_item_id: str, score: TScore) -> UpdateScoreStatus:
        self.require_content_type(MEDIA_SCORE)
        data = t.cast(t.Dict[str, t.Any], score)
        stamp = check_score(data, self.harness)
        with self.harness.lock:
            item = self.item(int(line_item_id))
            earlier = [s for s in item["scores"] if s["userId"] == data["userId"]]
            if earlier and stamp <= earlier[-1]["_stamp"]:
                return UpdateScoreStatus.OLD_TIMESTAMP
            item["scores"].append({**data, "_stamp": stamp})
            return UpdateScoreStatus.SUCCESS if earlier else UpdateScoreStatus.CREATED

    def get_results(
        self,
        line_item_id: str,
        page: int = 1,
        limit: t.Optional[int] = None,
        user_id: t.Optional[str] = None,
    ) -> TPage:
        with self.harness.lock:
            item = self.item(int(line_item_id))
            latest: t.Dict[str, t.Dict[str, t.Any]] = {}
            for s in item["scores"]:
                latest[s["userId"]] = s
            url = item["lineitem"]["id"]
        results = [
            {
                "id": with_query(url, {"user": user}),
                "scoreOf": url,
                "userId": user,
                "resultScore": s.get("scoreGiven"),
                "resultMaximum": s.get("scoreMaximum", 1),
                "comment": s.get("comment"),
            }
            for user, s in sorted(latest.items())
            if user_id in (None, user)
        ]
        size = limit or max(len(results), 1)
        start = (page - 1) * size
        return {"content": results[start : start + size], "has_next": start + size < len(results)}

    @authenticate(allow_methods=["GET"], accept=MEDIA_LINEITEMS)
    def handle_get_lineitems(self) -> Response:
        # As the library's, with the next page's link built on the real container URL.
        assert self.request is not None
        query = self.request.get_data
        known = ("page", "limit", "resource_link_id", "resource_id", "tag")
        page = self.find_lineitems(**{k: v for k, v in query.items() if k in known})
        if page["has_next"]:
            page["next"] = with_query(
                self.harness.lineitems_url(), {**query, "page": query.get("page", 1) + 1}
            )
        return Response(result=page, code=200, message="success")

    @authenticate(allow_methods=["GET"], accept=MEDIA_RESULTS)
    def handle_get_results(self, line_item_id: str) -> Response:
        # As the library's, whose next link reads an unset lineitem_url.
        assert self.request is not None
        query = self.request.get_data
        known = ("page", "limit", "user_id")
        try:
            page = self.get_results(line_item_id, **{k: v for k, v in query.items() if k in known})
        except LineItemNotFoundException:
            return Response(result=None, code=404, message="Not found")
        if page["has_next"]:
            results_url = path_append(self.harness.lineitem_url(int(line_item_id)), "/results")
            page["next"] = with_query(results_url, {**query, "page": query.get("page", 1) + 1})
        return Response(result=page, code=200, message="success")


def path_append(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + suffix))


def check_lineitem(data: t.Dict[str, t.Any]) -> None:
    label = data.get("label")
    if not isinstance(label, str) or not label.strip():
        raise LtiServiceException("a line item needs a non-blank label", 400)
    maximum = data.get("scoreMaximum")
    if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or maximum <= 0:
        raise LtiServiceException("a line item needs a scoreMaximum > 0", 400)


def check_score(data: t.Dict[str, t.Any], harness: Harness) -> Decimal:
    """Refuses a score AGS §3.4 would not take; its timestamp as exact epoch seconds."""

    def bad(message: str) -> LtiServiceException:
        return LtiServiceException(f"invalid score: {message}", 400)

    if not isinstance(data, dict):
        raise bad("the body is not a JSON object")
    user = data.get("userId")
    if not isinstance(user, str) or not user:
        raise bad("userId is required")
    if not harness.is_member(user):
        raise bad(f"userId {user!r} is not a member of the context")
    activities = {a.value for a in ActivityProgress}
    if data.get("activityProgress") not in activities:
        raise bad(f"activityProgress must be one of {sorted(activities)}")
    gradings = {g.value for g in GradeProgress}
    if data.get("gradingProgress") not in gradings:
        raise bad(f"gradingProgress must be one of {sorted(gradings)}")
    if "scoreGiven" in data and data["scoreGiven"] is not None:
        given = data["scoreGiven"]
        if isinstance(given, bool) or not isinstance(given, (int, float)) or given < 0:
            raise bad("scoreGiven must be a number >= 0")
        maximum = data.get("scoreMaximum")
        if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or maximum <= 0:
            raise bad("scoreMaximum (> 0) is required with scoreGiven")
    stamp = data.get("timestamp")
    match = TIMESTAMP.match(stamp) if isinstance(stamp, str) else None
    if not match:
        raise bad(f"timestamp {stamp!r} is not ISO 8601 with sub-second precision and an offset")
    # Compared exactly: the seconds, then the fraction as written (to the nanosecond and beyond).
    seconds = match.string[: match.start(1) - 1] + match.group(2).replace("Z", "+00:00")
    whole = datetime.fromisoformat(seconds)
    return Decimal(int(whole.timestamp())) + Decimal("0." + match.group(1))


class Handler(BaseHTTPRequestHandler):
    harness: Harness
    verbose = False

    def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002 (the base's name)
        if self.verbose:
            sys.stderr.write("lti_platform: " + format % args + "\n")

    # Plumbing.
    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(
        self,
        status: int,
        body: t.Any,
        content_type: str = "application/json",
        headers: t.Optional[t.Dict[str, str]] = None,
    ) -> None:
        data = (
            body
            if isinstance(body, bytes)
            else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def request_for_library(self, body: bytes, ints: t.Iterable[str] = ()) -> Request:
        query = dict(parse_qsl(urlsplit(self.path).query))
        query.pop("type_id", None)
        for name in ints:
            if name in query:
                try:
                    query[name] = int(query[name])  # type: ignore[assignment]
                except ValueError as error:
                    raise Refused(400, "invalid_request", f"{name} must be an integer") from error
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        form = (
            dict(parse_qsl(body.decode()))
            if content_type == "application/x-www-form-urlencoded"
            else {}
        )
        parsed: t.Any = None
        if body and "json" in content_type:
            try:
                parsed = json.loads(body)
            except ValueError as error:
                raise Refused(400, "invalid_request", "the body is not JSON") from error
        return HarnessRequest(
            {
                "method": self.command,
                "form_data": form,
                "get_data": query,
                "headers": self.headers,
                "content_type": self.headers.get("Content-Type"),
                "path": urlsplit(self.path).path,
                "json": parsed,
            }
        )

    def platform(self) -> Platform:
        platform = Platform(harness=self.harness)
        platform.get_registration()
        return platform

    def dispatch(self) -> None:
        path = urlsplit(self.path).path
        body = self.body()
        try:
            for method, pattern, handler in ROUTES:
                match = re.fullmatch(pattern, path)
                if match and method == self.command:
                    handler(self, body, *match.groups())
                    return
            raise Refused(404, "not_found", f"no route {self.command} {path}")
        except Refused as refused:
            self.answer(
                refused.status, {"error": refused.code, "error_description": refused.message}
            )
        except Exception as error:  # a harness bug: say so loudly, answer 500
            sys.stderr.write(f"lti_platform: {self.command} {path} failed: {error!r}\n")
            traceback.print_exc()
            self.answer(500, {"error": "server_error", "error_description": repr(error)})

    do_GET = do_POST = do_PUT = do_DELETE = dispatch

    # The platform's endpoints.
    def jwks(self, _body: bytes) -> None:
        self.answer(200, self.platform().get_jwks())

    def auth(self, body: bytes) -> None:
        """The OIDC authorization endpoint (reference §3): every parameter checked, then the
        library's launch, posted back to the redirect URI by an auto-submitting form."""
        harness, config = self.harness, self.harness.config
        request = self.request_for_library(body)
        params = request.get_data or request.form_data
        expected = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": config.client_id,
        }
        for name, value in expected.items():
            if params.get(name) != value:
                raise Refused(
                    400, "invalid_request", f"{name} must be {value!r}, not {params.get(name)!r}"
                )
        if params.get("redirect_uri") not in config.tool["redirect_uris"]:
            raise Refused(
                400,
                "invalid_request_uri",
                f"redirect_uri {params.get('redirect_uri')!r} is not registered",
            )
        for name in ("state", "nonce"):
            if not params.get(name):
                raise Refused(400, "invalid_request", f"{name} is required")
        with harness.lock:
            login = harness.pending_logins.pop(params.get("lti_message_hint", ""), None)
        if login is None:
            raise Refused(400, "invalid_request", "lti_message_hint is unknown, altered or used")
        if params.get("login_hint") != login["user"]:
            raise Refused(400, "login_required", "login_hint is not the user this login was for")
        person = harness.person(login["user"])
        assert person is not None

        launch = Launch(request, self.platform())
        launch.set_launch_url(login["target_link_uri"])
        launch.set_user_data(
            person["user_id"], person.get("roles", []), person.get("name"), person.get("email")
        )
        context = config.context
        launch.set_launch_context_claim(
            str(context["id"]),
            ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseSection"],
            context.get("title"),
            context.get("label"),
        )
        lis = {
            "person_sourcedid": person.get("lis_person_sourcedid"),
            "course_section_sourcedid": context.get("course_section_sourcedid"),
        }
        names = {k: person[k] for k in ("given_name", "family_name") if person.get(k)}
        launch.set_extra_claims(
            {
                **names,
                CLAIM + "lis": {k: v for k, v in lis.items() if v},
                CLAIM
                + "tool_platform": {
                    "guid": harness.issuer,
                    "name": "lti1p3platform test harness",
                    "product_family_code": "lti1p3platform",
                },
            }
        )
        launch.set_launch_presentation_claim("iframe")
        launch.set_nrps(harness.memberships_url())
        launch.set_ags(harness.lineitems_url())
        if login["message"] == "deep_linking":
            data = secrets.token_urlsafe(16)
            with harness.lock:
                harness.pending_deep_links[data] = {
                    "user": person["user_id"],
                    "created": time.time(),
                }
            # `data` is opaque to the tool, a string here (the library's hint says a dict).
            launch.set_dl(
                f"{harness.origin}/deep_links",
                "Add a rostergate activity",
                "Choose what to link",
                {"ltiResourceLink", "link"},
                data,  # type: ignore[arg-type]
            )
        else:
            link = login["resource_link_id"]
            with harness.lock:
                harness.resource_links.add(link)
            launch.set_resource_link_claim(link, title="Rostergate")
        page = launch.lti_launch()
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
        claims = jwt.decode(html.unescape(fields["id_token"]), options={"verify_signature": False})
        with harness.lock:
            harness.launches.append(
                {
                    "user": person["user_id"],
                    "message_type": claims[CLAIM + "message_type"],
                    "claims": claims,
                }
            )
        self.answer(200, page, "text/html; charset=utf-8")

    def token(self, body: bytes) -> None:
        """Client credentials with a JWT client assertion (reference §9), the library's token
        after the checks it leaves out."""
        harness = self.harness
        request = self.request_for_library(body)
        form = request.form_data
        record: t.Dict[str, t.Any] = {
            "form": {k: v for k, v in form.items() if k != "client_assertion"},
            "scope": form.get("scope"),
        }
        try:
            if (self.headers.get("Content-Type") or "").split(";")[
                0
            ].strip() != "application/x-www-form-urlencoded":
                raise Refused(
                    400, "invalid_request", "the body must be application/x-www-form-urlencoded"
                )
            for name in ("grant_type", "client_assertion_type", "client_assertion", "scope"):
                if not form.get(name):
                    raise Refused(400, "invalid_request", f"{name} is required")
            if form["grant_type"] != "client_credentials":
                raise Refused(
                    400, "unsupported_grant_type", "grant_type must be client_credentials"
                )
            if form["client_assertion_type"] != ASSERTION_TYPE:
                raise Refused(
                    401, "invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}"
                )
            platform = self.platform()
            try:
                record["assertion_header"] = jwt.get_unverified_header(form["client_assertion"])
                claims = platform.decode_tool_jwt(form["client_assertion"], harness.token_url)
            except (jwt.PyJWTError, LtiException, ValueError) as error:
                raise Refused(
                    401, "invalid_client", f"the client assertion does not verify: {error}"
                ) from error
            record["assertion"] = claims
            check_assertion(claims, harness)
            offered = {
                SCOPE_NRPS,
                *Grades(harness.lineitems_url(), None, True).get_available_scopes(),
            }
            unknown = [s for s in form["scope"].split(" ") if s not in offered]
            if unknown:
                raise Refused(400, "invalid_scope", f"not offered to this tool: {unknown}")
            answer: AccessTokenResponse = platform.get_access_token(dict(form))
            record.update(status=200, granted=answer["scope"])
            with harness.lock:
                harness.token_requests.append(record)
            self.answer(200, dict(answer))
        except Refused as refused:
            record.update(
                status=refused.status, error=refused.code, error_description=refused.message
            )
            with harness.lock:
                harness.token_requests.append(record)
            raise

    def service(self, body: bytes, call: t.Callable[[Request], Response]) -> None:
        """Runs an NRPS or AGS handler of the library and logs the call."""
        record: t.Dict[str, t.Any] = {
            "method": self.command,
            "url": self.path,
            "accept": self.headers.get("Accept"),
            "content_type": self.headers.get("Content-Type"),
        }
        auth = (self.headers.get("Authorization") or "").split()
        if len(auth) == 2:
            try:
                record["token_scopes"] = (
                    jwt.decode(auth[1], options={"verify_signature": False})
                    .get("scopes", "")
                    .split()
                )
            except jwt.PyJWTError:
                record["token_scopes"] = None
        try:
            request = self.request_for_library(body, ints=("page", "limit"))
            if isinstance(request.json, (dict, list)):
                record["body"] = request.json
            response = call(request)
        except Refused as refused:
            response = Response(result=None, code=refused.status, message=refused.message)
        record.update(
            status=response.code, error=None if 200 <= response.code < 300 else response.message
        )
        with self.harness.lock:
            self.harness.service_requests.append(record)
        if not 200 <= response.code < 300:
            self.answer(response.code, {"error": response.message})
            return
        result = response.result
        headers: t.Dict[str, str] = {}
        if isinstance(result, dict) and result.get("next"):
            headers["Link"] = f'<{result.pop("next")}>; rel="next"'
        if isinstance(result, dict) and "content" in result:
            result = result["content"]
        if result is None:
            self.answer(response.code, b"", response.media_type, headers)
        else:
            self.answer(response.code, result, response.media_type, headers)

    def require_accept(self, media_type: str) -> None:
        accept = [a.split(";")[0].strip() for a in (self.headers.get("Accept") or "").split(",")]
        if media_type not in accept:
            raise Refused(406, "not_acceptable", f"Accept must name {media_type}")

    def require_ags_query(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        if query.get("type_id") != "1":
            raise Refused(404, "not_found", "the AGS URL lost its query (type_id=1)")

    def nrps(self, body: bytes, context: str) -> None:
        def call(request: Request) -> Response:
            self.require_context(context)
            self.require_accept(MEDIA_NRPS)
            service = Memberships(request, self.platform(), self.harness)
            return service.handle_resp(service.handle_get_members)

        self.service(body, call)

    def lineitems(self, body: bytes, context: str) -> None:
        def call(request: Request) -> Response:
            self.require_context(context)
            self.require_ags_query()
            if self.command == "GET":
                self.require_accept(MEDIA_LINEITEMS)
                service = Gradebook(
                    request,
                    self.platform(),
                    self.harness,
                    [SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY],
                )
                return service.handle_resp(service.handle_get_lineitems)
            service = Gradebook(request, self.platform(), self.harness, [SCOPE_LINEITEM])
            return service.handle_resp(service.handle_create_lineitem)

        self.service(body, call)

    def lineitem(self, body: bytes, context: str, number: str, sub: t.Optional[str]) -> None:
        def call(request: Request) -> Response:
            self.require_context(context)
            self.require_ags_query()
            platform, harness, n = self.platform(), self.harness, int(number)
            if sub == "/scores":
                service = Gradebook(request, platform, harness, [SCOPE_SCORE], n)
                return service.handle_resp(service.handle_update_score, line_item_id=number)
            if sub == "/results":
                self.require_accept(MEDIA_RESULTS)
                service = Gradebook(request, platform, harness, [SCOPE_RESULT_READONLY], n)
                return service.handle_resp(service.handle_get_results, line_item_id=number)
            if self.command == "GET":
                self.require_accept(MEDIA_LINEITEM)
                service = Gradebook(
                    request, platform, harness, [SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY], n
                )
                return service.handle_resp(service.handle_get_lineitem, line_item_id=number)
            service = Gradebook(request, platform, harness, [SCOPE_LINEITEM], n)
            if self.command == "PUT":
                return service.handle_resp(service.handle_update_lineitem, line_item_id=number)
            return service.handle_resp(service.handle_delete_lineitem, line_item_id=number)

        self.service(body, call)

    def require_context(self, context: str) -> None:
        if context != quote(self.harness.context_id, safe=""):
            raise Refused(404, "not_found", f"no context {context!r}")

    def deep_links(self, body: bytes) -> None:
        """The deep_link_return_url: the tool's response, verified (reference §12)."""
        request = self.request_for_library(body)
        token = request.form_data.get("JWT", "")
        record: t.Dict[str, t.Any] = {"fields": sorted(request.form_data)}
        try:
            record["claims"] = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            record["claims"] = None
        try:
            if not token:
                raise Refused(400, "invalid_request", "the form has no JWT field")
            platform = self.platform()
            # The library decodes the response without an audience: here it must be the issuer.
            platform.audience = self.harness.issuer
            try:
                items = platform.validate_deeplinking_resp({"JWT": token})
                claims = platform.tool_validate_and_decode(token)
            except (jwt.PyJWTError, LtiException) as error:
                raise Refused(
                    400, "invalid_deep_linking_response", f"does not verify: {error}"
                ) from error
            check_deep_linking_response(claims, self.harness)
            record.update(verified=True, error=None, content_items=items)
        except Refused as refused:
            record.update(verified=False, error=f"{refused.code}: {refused.message}")
            with self.harness.lock:
                self.harness.deep_link_responses.append(record)
            raise
        with self.harness.lock:
            self.harness.deep_link_responses.append(record)
        self.answer(
            200,
            "<!DOCTYPE html><html><body>Deep linking response received.</body></html>",
            "text/html; charset=utf-8",
        )

    # Test control.
    def test_login(self, _body: bytes) -> None:
        harness = self.harness
        query = dict(parse_qsl(urlsplit(self.path).query))
        user, message = query.get("user", ""), query.get("message", "resource_link")
        if harness.person(user) is None:
            raise Refused(400, "unknown_user", f"no member or user {user!r} in the configuration")
        if message not in ("resource_link", "deep_linking"):
            raise Refused(400, "invalid_request", "message must be resource_link or deep_linking")
        login = Login(None, self.platform())
        if message == "deep_linking":
            login.set_deeplinking_launch_url()
        elif query.get("target_link_uri"):
            # (A deep linking launch always targets the registration's deep linking URL.)
            login.set_launch_url(query["target_link_uri"])
        hint = secrets.token_urlsafe(16)
        login.set_lti_message_hint(hint=hint)
        with harness.lock:
            harness.pending_logins[hint] = {
                "user": user,
                "message": message,
                "target_link_uri": login.get_launch_url(),
                "resource_link_id": query.get("resource_link_id", "rl-1"),
            }
        self.answer(200, {"url": login.initiate_login(user)})

    def test_list(self, _body: bytes, name: str) -> None:
        with self.harness.lock:
            if name == "lineitems":
                listed: t.Any = [
                    {
                        **item["lineitem"],
                        "scores": [
                            {k: v for k, v in s.items() if k != "_stamp"} for s in item["scores"]
                        ],
                    }
                    for _, item in sorted(self.harness.lineitems.items())
                ]
            else:
                listed = list(getattr(self.harness, name))
        self.answer(200, listed)


def check_assertion(claims: t.Dict[str, t.Any], harness: Harness) -> None:
    """What RFC 7523 and the reference (§9) ask of a client assertion, beyond its signature
    and audience (checked when it was decoded)."""
    client_id = harness.config.client_id
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise Refused(
            401, "invalid_client", f"iss and sub must both be the client id {client_id!r}"
        )
    if not isinstance(claims.get("aud"), str):
        raise Refused(401, "invalid_client", "aud must be the token URL as a single string")
    now = time.time()
    if claims["exp"] > now + ASSERTION_MAX_TTL:
        raise Refused(
            401, "invalid_client", f"exp is {int(claims['exp'] - now)} s ahead: at most 300"
        )
    if claims["iat"] > now + 60:
        raise Refused(401, "invalid_client", "iat is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise Refused(401, "invalid_client", "the assertion has no jti")
    with harness.lock:
        if jti in harness.seen_jtis:
            raise Refused(401, "invalid_client", f"jti {jti!r} was used already")
        harness.seen_jtis.add(jti)


def check_deep_linking_response(claims: t.Dict[str, t.Any], harness: Harness) -> None:
    """The claims of a deep linking response (reference §12) the library does not check."""
    config = harness.config

    def refuse(message: str) -> Refused:
        return Refused(400, "invalid_deep_linking_response", message)

    if claims.get("iss") != config.client_id:
        raise refuse(f"iss must be the client id {config.client_id!r}")
    if claims.get(CLAIM + "deployment_id") != config.deployment_id:
        raise refuse(f"deployment_id must be {config.deployment_id!r}")
    if claims.get(CLAIM + "version") != LTI_VERSION:
        raise refuse(f"version must be {LTI_VERSION}")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise refuse("the response has no nonce")
    if not isinstance(claims.get(DL_CLAIM + "content_items", []), list):
        raise refuse("content_items must be an array")
    data = claims.get(DL_CLAIM + "data")
    with harness.lock:
        if nonce in harness.seen_dl_nonces:
            raise refuse("the response's nonce was used already")
        if not isinstance(data, str) or harness.pending_deep_links.pop(data, None) is None:
            raise refuse(f"data {data!r} is not the echo of an open deep linking request")
        harness.seen_dl_nonces.add(nonce)


ROUTES: t.List[t.Tuple[str, str, t.Callable[..., None]]] = [
    ("GET", r"/jwks", Handler.jwks),
    ("GET", r"/auth", Handler.auth),
    ("POST", r"/auth", Handler.auth),
    ("POST", r"/token", Handler.token),
    ("GET", r"/nrps/([^/]+)/memberships", Handler.nrps),
    ("GET", r"/ags/([^/]+)/lineitems", Handler.lineitems),
    ("POST", r"/ags/([^/]+)/lineitems", Handler.lineitems),
    ("GET", r"/ags/([^/]+)/lineitems/(\d+)/lineitem(/results)?", Handler.lineitem),
    ("PUT", r"/ags/([^/]+)/lineitems/(\d+)/lineitem()", Handler.lineitem),
    ("DELETE", r"/ags/([^/]+)/lineitems/(\d+)/lineitem()", Handler.lineitem),
    ("POST", r"/ags/([^/]+)/lineitems/(\d+)/lineitem(/scores)", Handler.lineitem),
    ("POST", r"/deep_links", Handler.deep_links),
    ("GET", r"/_test/login", Handler.test_login),
    (
        "GET",
        r"/_test/(launches|token_requests|service_requests|lineitems|deep_link_responses)",
        Handler.test_list,
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the JSON configuration file")
    parser.add_argument("--port", type=int, default=0, help="0 (default): any free port")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args()
    config = Config.load(args.config)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    Handler.harness = Harness(config, origin)
    Handler.verbose = args.verbose
    print(f"listening {origin}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
