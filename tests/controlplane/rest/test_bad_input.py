"""Requests a client might send wrongly get Kubernetes' status code and a
Status body (never a 500 or a hang): raw HTTPS requests, as any client sends them."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

pytestmark = [pytest.mark.etcd, pytest.mark.slow]
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def call(rest, method: str, path: str, body: object = None, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(rest.url + path, data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
    try:
        with rest.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def status(result) -> tuple[int, str, int]:
    code, body = result
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    return code, body["reason"], body["code"]


def test_bad_requests_get_kubernetes_statuses(rest):
    pods = "/api/v1/namespaces/default/pods"
    assert status(call(rest, "GET", "/api/v1/widgets")) == (404, "NotFound", 404)
    assert status(call(rest, "GET", "/apis/apps/v2/deployments")) == (404, "NotFound", 404)
    assert status(call(rest, "GET", "/api/v1/namespaces/default/nodes")) == (404, "NotFound", 404)
    assert call(rest, "POST", pods, POD)[0] == 201
    again = call(rest, "POST", pods, POD)
    assert status(again) == (409, "AlreadyExists", 409) and again[1]["message"] == 'pods "p" already exists'

    other_kind = dict(POD, kind="ConfigMap")
    assert status(call(rest, "POST", pods, other_kind)) == (400, "BadRequest", 400)
    assert status(call(rest, "PUT", pods + "/q", POD)) == (400, "BadRequest", 400)
    elsewhere = dict(POD, metadata={"name": "p2", "namespace": "kube-system"})
    assert status(call(rest, "POST", pods, elsewhere)) == (400, "BadRequest", 400)
    assert status(call(rest, "POST", pods, b"{not json")) == (400, "BadRequest", 400)

    no_image = {**POD, "metadata": {"name": "p3"}, "spec": {"containers": [{"name": "c"}]}}
    code, body = call(rest, "POST", pods, no_image)
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].image"
    unknown_field = {**POD, "metadata": {"name": "p4"}, "spec": {"containerz": []}}
    assert status(call(rest, "POST", pods, unknown_field))[0] == 422

    assert status(call(rest, "PATCH", pods + "/p", {"a": 1}, "application/x-yaml-patch")) == (
        415, "UnsupportedMediaType", 415)
    assert status(call(rest, "PATCH", pods + "/p", [{"op": "remove", "path": "/nope"}],
                       "application/json-patch+json"))[0] == 422
    assert status(call(rest, "PATCH", pods + "/p", {"a": 1}, "application/json-patch+json"))[0] in (400, 422)
    assert status(call(rest, "POST", pods + "/p", POD)) == (405, "MethodNotAllowed", 405)
    assert status(call(rest, "DELETE", pods + "/p", {"preconditions": {"uid": "not-its-uid"}}))[:2] == (
        409, "Conflict")
    assert status(call(rest, "GET", pods + "?limit=x")) == (400, "BadRequest", 400)
    assert status(call(rest, "GET", pods + "?labelSelector=a%3D%3D%3Db")) == (400, "BadRequest", 400)
    assert status(call(rest, "GET", pods + "?fieldSelector=spec.nope%3Dx")) == (400, "BadRequest", 400)
    assert status(call(rest, "GET", pods + "/nope/log")) == (404, "NotFound", 404)
