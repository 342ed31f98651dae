import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rollout import services
from rollout.models import AuditEntry

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command("rollout_bootstrap", *args, stdout=out)
    return json.loads(out.getvalue())


def test_bootstrap_sets_a_starting_point_audited_as_break_glass(rollout_ready):
    document = run("--model-version", "fraud-gbm-v3", "--traffic-pct", "5", "--salt", "launch-2026-11",
                   "--reason", "seed team start")
    assert document["version"] == 2 and document["mode"] == "active" and document["traffic_pct"] == 5.0
    assert document["salt"] == "launch-2026-11" and document["model_version"] == "fraud-gbm-v3"
    assert services.current_policy() == document
    entry = AuditEntry.objects.get(kind="break_glass")
    assert entry.policy_version == 2 and entry.reason == "seed team start"
    assert services.ramp_status()["current_stage"]["name"] == "5%"


def test_bootstrap_refuses_when_serving_unless_forced(rollout_ready):
    run("--model-version", "m1", "--traffic-pct", "5", "--reason", "start")
    with pytest.raises(CommandError, match="serves 5%"):
        call_command("rollout_bootstrap", "--model-version", "m2", "--traffic-pct", "50", "--reason", "again")
    assert services.current_policy()["model_version"] == "m1"
    document = run("--model-version", "m2", "--traffic-pct", "50", "--reason", "again", "--force")
    assert document["traffic_pct"] == 50.0 and document["model_version"] == "m2"


def test_bootstrap_validates_its_input(rollout_ready):
    with pytest.raises(services.ActionError) as bad:
        services.bootstrap_policy(model_version="m", traffic_pct=120, reason="x", actor="t")
    assert bad.value.errors == {"traffic_pct": "must be between 0 and 100 (got 120)"}
    with pytest.raises(services.ActionError):
        services.bootstrap_policy(model_version="m", traffic_pct=5, reason="", actor="t")
