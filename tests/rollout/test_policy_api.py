import pytest

from rollout import services

pytestmark = pytest.mark.django_db


def test_a_new_environment_serves_version_1_off_at_0_percent(rollout_ready, api_client_for):
    response = api_client_for("policy:read").get("/api/v1/rollout/policy")
    assert response.status_code == 200
    document = response.json()
    assert document["version"] == 1 and document["mode"] == "off" and document["traffic_pct"] == 0.0
    assert set(document) == {"version", "model_version", "mode", "traffic_pct", "salt", "thresholds", "timeout_ms",
                             "fallback", "segment_overrides", "updated_at", "reason"}
    assert response["ETag"] == '"1"'


def test_if_none_match_of_the_current_version_answers_304(rollout_ready, api_client_for):
    client = api_client_for("policy:read")
    for header in ('"1"', "1", 'W/"1"', '"7", "1"', "*"):
        response = client.get("/api/v1/rollout/policy", HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 304, header
        assert response.content == b""
        assert response["ETag"] == '"1"'
    services.apply_action(action="set_mode", params={"mode": "shadow"}, reason="shadow first", actor="t")
    response = client.get("/api/v1/rollout/policy", HTTP_IF_NONE_MATCH='"1"')
    assert response.status_code == 200
    assert response.json()["version"] == 2 and response["ETag"] == '"2"'


def test_old_versions_stay_readable(rollout_ready, api_client_for):
    services.apply_action(action="set_thresholds", params={"step_up": 0.5, "decline": 0.8}, reason="tune", actor="t")
    client = api_client_for("policy:read")
    old = client.get("/api/v1/rollout/policy/1").json()
    new = client.get("/api/v1/rollout/policy/2").json()
    assert old["thresholds"] == {"step_up": 0.6, "decline": 0.9}
    assert new["thresholds"] == {"step_up": 0.5, "decline": 0.8} and new["reason"] == "tune"
    missing = client.get("/api/v1/rollout/policy/99")
    assert missing.status_code == 404 and "99" in missing.json()["detail"]


def test_policy_read_needs_a_token_with_policy_read(rollout_ready, api_client_for, client):
    assert client.get("/api/v1/rollout/policy").status_code == 401
    assert api_client_for("events:write").get("/api/v1/rollout/policy").status_code == 403


def test_every_role_may_read_the_policy_in_the_browser(rollout_ready, user_client):
    for role in ("support", "leadership", "compliance"):
        assert user_client(role).get("/api/v1/rollout/policy").status_code == 200


def test_the_openapi_document_describes_the_rollout_endpoints(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/rollout/policy", "/api/v1/rollout/policy/{version}", "/api/v1/rollout/actions",
                 "/api/v1/rollout/ramp", "/api/v1/rollout/ramp/advance", "/api/v1/rollout/ramp/signoffs",
                 "/api/v1/rollout/ramp/request-advance"):
        assert path in paths
