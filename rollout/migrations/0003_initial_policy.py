"""A new environment starts at policy version 1 (mode off, traffic 0) with the default ramp plan
(CONTRACT section 3)."""
import json
import secrets

from django.db import migrations
from django.utils import timezone

STAGES = [("1%", 1.0, 60), ("5%", 5.0, 120), ("10%", 10.0, 240), ("25%", 25.0, 480), ("50%", 50.0, 720),
          ("100%", 100.0, 0)]
GATES = ["conversion", "false-decline-proxy", "support-tickets", "scoring-latency-p95", "fallback-rate", "sample-ratio",
           "feature-health"]
ROLES = ["risk_ops", "engineering", "compliance", "product"]


def forwards(apps, schema_editor):
    PolicyVersion = apps.get_model("rollout", "PolicyVersion")
    ServedPolicy = apps.get_model("rollout", "ServedPolicy")
    RampPlan = apps.get_model("rollout", "RampPlan")
    RampStage = apps.get_model("rollout", "RampStage")
    AuditEntry = apps.get_model("rollout", "AuditEntry")
    if PolicyVersion.objects.exists():
        return
    now = timezone.now()
    reason = "initial policy of a new environment"
    first = PolicyVersion.objects.create(
        version=1, model_version=None, mode="off", traffic_pct=0.0, salt=f"salt-{secrets.token_hex(4)}",
        thresholds={"step_up": 0.6, "decline": 0.9}, timeout_ms=80, fallback="step_up", segment_overrides=[],
        updated_at=now, reason=reason, actor="system", action="initial", params={})
    document = {"version": 1, "model_version": None, "mode": "off", "traffic_pct": 0.0, "salt": first.salt,
                "thresholds": first.thresholds, "timeout_ms": 80, "fallback": "step_up", "segment_overrides": [],
                "updated_at": now.isoformat().replace("+00:00", "Z"), "reason": reason}
    ServedPolicy.objects.create(id=1, version=1, document=document, body=json.dumps(document, separators=(",", ":")),
                                changed_at=now)
    AuditEntry.objects.create(at=now, kind="policy", actor="system", action="initial", policy_version=1, reason=reason,
                              detail={"policy": document})
    plan = RampPlan.objects.create(id=1, updated_by="system")
    RampStage.objects.bulk_create([
        RampStage(plan=plan, position=i, name=name, traffic_pct=pct, min_dwell_minutes=dwell, gates=list(GATES),
                  required_roles=list(ROLES))
        for i, (name, pct, dwell) in enumerate(STAGES)])


class Migration(migrations.Migration):
    dependencies = [("rollout", "0002_append_only_triggers")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
