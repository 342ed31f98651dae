"""Every change of the rollout goes through here: policy actions, break-glass bootstrap, the ramp
plan (advance requests, sign-offs, advancing, edits, pause/resume). Whoever calls (API, war-room
UI, guardrail actions, Celery beat, management commands), the rules are the ones below.

Concurrency: every writer locks the `ServedPolicy` row first (then the `RampPlan` row), so changes
are serialised, each new version starts from the one it replaces, and a caller that names the
version it saw (`expected_version`) gets a 409 instead of overwriting a newer change.
"""
from __future__ import annotations

import json
import math
import secrets
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from rollout import gates as gates_module
from rollout.models import (FALLBACKS, MODES, AdvanceRequest, AuditEntry, PolicyVersion, RampPlan, RampStage,
                            ServedPolicy, SignOff)
from shopswift_ops import live
from shopswift_ops.access import ROLE_LABELS, ROLES
from shopswift_ops.read_scope import reads_once

ACTIONS = ("kill", "rollback", "set_traffic", "exclude_segment", "include_segment", "set_mode", "set_thresholds",
           "set_fallback")
SIGNOFF_ROLES = ("risk_ops", "engineering", "compliance", "product")
DEFAULT_THRESHOLDS = {"step_up": 0.60, "decline": 0.90}
DEFAULT_TIMEOUT_MS = 80
DEFAULT_GATES = ["conversion", "false-decline-proxy", "support-tickets", "scoring-latency-p95", "fallback-rate", "sample-ratio",
           "feature-health"]
# (name, traffic %, minimum dwell in minutes)
DEFAULT_STAGES = [("1%", 1.0, 60), ("5%", 5.0, 120), ("10%", 10.0, 240), ("25%", 25.0, 480), ("50%", 50.0, 720),
                  ("100%", 100.0, 0)]
ENGINE = "ramp-engine"
MAX_REASON = 2000


class ActionError(Exception):
    """A refused change: 400 (bad input; `errors` maps each field to its message), 403 (not
    allowed for this person), 404 (no such thing), 409 (conflict or ramp requirements missing;
    `missing` lists exactly what)."""

    def __init__(self, status: int, detail: str, missing: list[str] | None = None, errors: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.missing = list(missing or [])
        self.errors = dict(errors or {})

    def as_dict(self) -> dict:
        body = {"detail": self.detail}
        if self.missing:
            body["missing"] = self.missing
        if self.errors:
            body["errors"] = self.errors
        return body


class PolicyNotFound(LookupError):
    pass


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _body(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"))


# --- initial state -----------------------------------------------------------------------------

def initial_fields() -> dict:
    return {"model_version": None, "mode": "off", "traffic_pct": 0.0, "salt": f"salt-{secrets.token_hex(4)}",
            "thresholds": dict(DEFAULT_THRESHOLDS), "timeout_ms": DEFAULT_TIMEOUT_MS, "fallback": "step_up",
            "segment_overrides": []}


def default_stage_rows() -> list[dict]:
    return [{"position": i, "name": name, "traffic_pct": pct, "min_dwell_minutes": dwell,
             "gates": list(DEFAULT_GATES), "required_roles": list(SIGNOFF_ROLES)}
            for i, (name, pct, dwell) in enumerate(DEFAULT_STAGES)]


def ensure_initialized() -> None:
    """Version 1 (mode off, traffic 0) and the default plan, if absent. Migration 0003 does this
    for a new environment; this covers a database emptied since (e.g. by a test flush)."""
    if ServedPolicy.objects.filter(pk=1).exists() and RampPlan.objects.filter(pk=1).exists():
        return
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('rollout.ensure_initialized'))")
        if not PolicyVersion.objects.filter(version=1).exists():
            first = PolicyVersion.objects.create(version=1, updated_at=now, reason="initial policy of a new environment",
                                                 actor="system", action="initial", **initial_fields())
            AuditEntry.objects.create(at=now, kind=AuditEntry.Kind.POLICY, actor="system", action="initial",
                                      policy_version=1, reason=first.reason, detail={"policy": first.document()})
        if not ServedPolicy.objects.filter(pk=1).exists():
            latest = PolicyVersion.objects.order_by("-version").first()
            document = latest.document()
            ServedPolicy.objects.create(pk=1, version=latest.version, document=document, body=_body(document),
                                        changed_at=now)
        if not RampPlan.objects.filter(pk=1).exists():
            plan = RampPlan.objects.create(pk=1, updated_by="system")
            RampStage.objects.bulk_create([RampStage(plan=plan, **row) for row in default_stage_rows()])


# --- reads ---------------------------------------------------------------------------------------

@reads_once
def served() -> ServedPolicy:
    row = ServedPolicy.objects.filter(pk=1).first()
    if row is None:
        ensure_initialized()
        row = ServedPolicy.objects.get(pk=1)
    return row


def current_policy() -> dict:
    return served().document


def current_policy_body() -> tuple[int, str]:
    """(version, JSON text) of the served policy: what GET /api/v1/rollout/policy answers."""
    row = ServedPolicy.objects.filter(pk=1).values_list("version", "body").first()
    if row is None:
        ensure_initialized()
        row = ServedPolicy.objects.filter(pk=1).values_list("version", "body").first()
    return row


def policy_document(version: int) -> dict:
    row = PolicyVersion.objects.filter(version=version).first()
    if row is None:
        if version == 1:
            ensure_initialized()
            row = PolicyVersion.objects.filter(version=1).first()
        if row is None:
            raise PolicyNotFound(f"no policy version {version}")
    return row.document()


def policy_document_or_none(version: int) -> dict | None:
    """For metrics.population (registered in RolloutConfig.ready): a version's document or None."""
    row = PolicyVersion.objects.filter(version=version).first()
    return None if row is None else row.document()


def exposure(document: dict) -> float:
    """Share of traffic decided by the model."""
    return float(document["traffic_pct"]) if document["mode"] == "active" else 0.0


# --- validation ----------------------------------------------------------------------------------

def _bad(field: str, message: str):
    raise ActionError(400, f"{field}: {message}", errors={field: message})


def _number(params: dict, name: str, *, low: float, high: float, field: str | None = None) -> float:
    field = field or f"params.{name}"
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _bad(field, f"a number between {low:g} and {high:g} is required")
    if not low <= value <= high:
        _bad(field, f"must be between {low:g} and {high:g} (got {value:g})")
    return float(value)


def _reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        _bad("reason", "a reason is required")
    if len(reason) > MAX_REASON:
        _bad("reason", f"at most {MAX_REASON} characters")
    return reason.strip()


def _feature_values(params: dict) -> tuple[str, list]:
    from metrics.models import FeatureDefinition

    feature = params.get("feature")
    if not isinstance(feature, str) or not feature:
        _bad("params.feature", "a feature name is required")
    if not FeatureDefinition.objects.filter(name=feature).exists():
        known = ", ".join(FeatureDefinition.objects.values_list("name", flat=True))
        _bad("params.feature", f"unknown feature {feature!r}; known: {known}")
    values = params.get("in")
    if not isinstance(values, list) or not values:
        _bad("params.in", "a non-empty list of feature values is required")
    for value in values:
        if not (value is None or isinstance(value, (str, int, float, bool))):
            _bad("params.in", "values must be strings, numbers, booleans or null")
    if "arm" in params and params["arm"] != "control":
        _bad("params.arm", "a segment override always sends its buyers to control; only 'control' is accepted")
    return feature, values


def validate_params(action: str, params) -> dict:
    """Cleaned params for `action`, or ActionError(400) naming the field."""
    if action not in ACTIONS:
        _bad("action", f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        _bad("params", "must be an object")
    if action == "kill":
        return {}
    if action == "rollback":
        if ("to_version" in params) == ("to_stage" in params):
            _bad("params", "give exactly one of to_version or to_stage")
        if "to_version" in params:
            version = params["to_version"]
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                _bad("params.to_version", "a positive integer version is required")
            return {"to_version": version}
        if not isinstance(params["to_stage"], str) or not params["to_stage"]:
            _bad("params.to_stage", "a stage name is required")
        return {"to_stage": params["to_stage"]}
    if action == "set_traffic":
        return {"traffic_pct": _number(params, "traffic_pct", low=0, high=100)}
    if action in ("exclude_segment", "include_segment"):
        feature, values = _feature_values(params)
        return {"feature": feature, "in": values}
    if action == "set_mode":
        if params.get("mode") not in MODES:
            _bad("params.mode", f"one of {', '.join(MODES)}")
        return {"mode": params["mode"]}
    if action == "set_thresholds":
        step_up = _number(params, "step_up", low=0, high=1)
        decline = _number(params, "decline", low=0, high=1)
        if step_up > decline:
            _bad("params.step_up", f"must not exceed decline ({step_up:g} > {decline:g})")
        return {"step_up": step_up, "decline": decline}
    # set_fallback
    if "fallback" not in params and "timeout_ms" not in params:
        _bad("params", "give fallback and/or timeout_ms")
    cleaned = {}
    if "fallback" in params:
        if params["fallback"] not in FALLBACKS:
            _bad("params.fallback", f"one of {', '.join(FALLBACKS)}")
        cleaned["fallback"] = params["fallback"]
    if "timeout_ms" in params:
        timeout = params["timeout_ms"]
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 10000:
            _bad("params.timeout_ms", "an integer between 1 and 10000 is required")
        cleaned["timeout_ms"] = timeout
    return cleaned


# --- the ramp plan ---------------------------------------------------------------------------------

def _stages(plan: RampPlan) -> list[RampStage]:
    return list(RampStage.objects.filter(plan=plan).order_by("position"))


def _stage_for_traffic(stages: list[RampStage], traffic: float) -> int:
    """Index of the highest stage at or below `traffic` (-1 when below the first)."""
    index = -1
    for i, stage in enumerate(stages):
        if stage.traffic_pct <= traffic + 1e-9:
            index = i
    return index


def _valid_signoffs(plan: RampPlan, version: int) -> list[SignOff]:
    return list(SignOff.objects.filter(stage=plan.current_stage, policy_version=version, plan_revision=plan.revision)
                .order_by("signed_at"))


def _open_request(plan: RampPlan, version: int) -> AdvanceRequest | None:
    return (AdvanceRequest.objects.filter(stage=plan.current_stage, policy_version=version, plan_revision=plan.revision)
            .order_by("-requested_at").first())


def _requirements(plan: RampPlan, stages: list[RampStage], version: int, *, actor: str | None, now: datetime,
                  statuses=None, unavailable: str = "") -> dict:
    """Everything the current stage waits for before the next one, as data and as a list of
    human-readable missing items (empty when it may advance)."""
    current = stages[plan.current_stage] if 0 <= plan.current_stage < len(stages) else None
    following = stages[plan.current_stage + 1] if plan.current_stage + 1 < len(stages) else None
    missing: list[str] = []
    if plan.paused:
        missing.append(f"plan paused: {plan.paused_reason or 'no reason given'} (resume the plan first)")
    if following is None:
        missing.append("no further stage: the plan is at its last stage")
    dwell_left = 0.0
    if current is not None:
        started = plan.stage_started_at or now
        dwell_left = max(0.0, (started + timedelta(minutes=current.min_dwell_minutes) - now).total_seconds())
        if dwell_left > 0:
            missing.append(f"dwell time: stage {current.name} needs {math.ceil(dwell_left / 60)} more minute(s) "
                           f"(until {_iso(started + timedelta(minutes=current.min_dwell_minutes))})")
    gate_names = list(current.gates) if current is not None else []
    gate_results = gates_module.evaluate_gates(gate_names, statuses, unavailable) if gate_names else []
    for gate in gate_results:
        if not gate["passing"]:
            missing.append(f"gate {gate['name']}: {gate['status']} ({gate['detail']})")
    required = list((current or following).required_roles) if (current or following) is not None else []
    signoffs = _valid_signoffs(plan, version)
    present_roles = {s.role for s in signoffs}
    for role in required:
        if role not in present_roles:
            missing.append(f"sign-off: {ROLE_LABELS.get(role, role)} ({role})")
    request = _open_request(plan, version)
    askers = {request.requested_by} if request else set()
    if actor and actor not in (ENGINE, "guardrail", "system"):
        askers.add(actor)
    signers = {s.username for s in signoffs}
    if required and (not (signers - askers) or len(signers | askers) < 2):
        who = ", ".join(sorted(askers)) or "the first signer"
        missing.append(f"four-eyes: a sign-off by someone other than {who}")
    return {
        "current": current, "following": following, "dwell_seconds_left": dwell_left, "gates": gate_results,
        "required_roles": required, "signoffs": signoffs, "request": request, "missing": missing,
    }


def _stage_dict(stage: RampStage | None) -> dict | None:
    if stage is None:
        return None
    return {"position": stage.position, "name": stage.name, "traffic_pct": stage.traffic_pct,
            "min_dwell_minutes": stage.min_dwell_minutes, "gates": list(stage.gates),
            "required_roles": list(stage.required_roles)}


@reads_once
def ramp_status(*, now: datetime | None = None) -> dict:
    ensure_initialized()
    now = now or timezone.now()
    plan = RampPlan.objects.get(pk=1)
    stages = _stages(plan)
    row = served()
    req = _requirements(plan, stages, row.version, actor=None, now=now)
    present = [{"role": s.role, "username": s.username, "signed_at": _iso(s.signed_at), "comment": s.comment}
               for s in req["signoffs"]]
    return {
        "plan_revision": plan.revision,
        "paused": plan.paused,
        "paused_reason": plan.paused_reason,
        "auto_advance": plan.auto_advance,
        "missing_data_limit_minutes": plan.missing_data_limit_minutes,
        "waiting_for_data_since": _iso(plan.waiting_for_data_since),
        "policy_version": row.version,
        "mode": row.document["mode"],
        "traffic_pct": row.document["traffic_pct"],
        "current_stage": {**_stage_dict(req["current"]), "index": plan.current_stage,
                          "started_at": _iso(plan.stage_started_at)} if req["current"] else None,
        "next_stage": _stage_dict(req["following"]),
        "dwell_seconds_left": round(req["dwell_seconds_left"]),
        "gates": req["gates"],
        "signoffs": {"required": req["required_roles"], "present": present,
                     "missing": [r for r in req["required_roles"] if r not in {s["role"] for s in present}]},
        "advance_request": {"requested_by": req["request"].requested_by, "requested_at": _iso(req["request"].requested_at),
                            "comment": req["request"].comment} if req["request"] else None,
        "can_advance": not req["missing"],
        "missing": req["missing"],
        "stages": [_stage_dict(s) for s in stages],
    }


# --- writing a version ---------------------------------------------------------------------------

def _lock() -> tuple[ServedPolicy, RampPlan]:
    ensure_initialized()
    row = ServedPolicy.objects.select_for_update().get(pk=1)
    plan = RampPlan.objects.select_for_update().get(pk=1)
    return row, plan


def _audit(*, kind: str, actor: str, action: str = "", version: int | None = None, reason: str = "",
           detail: dict | None = None, at: datetime | None = None) -> AuditEntry:
    return AuditEntry.objects.create(at=at or timezone.now(), kind=kind, actor=actor, action=action,
                                     policy_version=version, reason=reason, detail=detail or {})


def _write_version(row: ServedPolicy, fields: dict, *, action: str, params: dict, reason: str, actor: str,
                   break_glass: bool = False, extra_detail: dict | None = None) -> dict:
    now = timezone.now()
    version = row.version + 1
    created = PolicyVersion.objects.create(version=version, updated_at=now, reason=reason, actor=actor, action=action,
                                           params=params, break_glass=break_glass, **fields)
    document = created.document()
    changed = ServedPolicy.objects.filter(pk=1, version=row.version).update(
        version=version, document=document, body=_body(document), changed_at=now)
    if changed != 1:  # cannot happen under the row lock; refuse rather than fork history
        raise ActionError(409, f"the policy changed concurrently (expected version {row.version})")
    row.version, row.document = version, document
    _audit(kind=AuditEntry.Kind.BREAK_GLASS if break_glass else AuditEntry.Kind.POLICY, actor=actor, action=action,
           version=version, reason=reason, at=now, detail={"params": params, "policy": document, **(extra_detail or {})})
    live.announce("policy", {"version": version, "policy": document, "action": action, "actor": actor,
                             "reason": reason, "at": _iso(now)})
    return document


def _fields(document: dict) -> dict:
    return {key: document[key] for key in ("model_version", "mode", "traffic_pct", "salt", "thresholds", "timeout_ms",
                                           "fallback", "segment_overrides")}


def _move_plan(plan: RampPlan, index: int, *, actor: str, now: datetime | None = None) -> None:
    if index != plan.current_stage:
        plan.current_stage = index
        plan.stage_started_at = now or timezone.now()
        plan.waiting_for_data_since = None
    plan.updated_by = actor
    plan.save()


def _announce_plan(event: str, actor: str, detail: dict | None = None) -> None:
    live.announce("signoffs", {"event": event, "actor": actor, "at": _iso(timezone.now()), **(detail or {})})


def _check_increase(plan: RampPlan, stages: list[RampStage], row: ServedPolicy, target: float, *, actor: str,
                    action: str, now: datetime) -> int:
    """The stage index an increase to `target` % moves to, or ActionError(409) listing what is missing."""
    req = _requirements(plan, stages, row.version, actor=actor, now=now)
    missing = list(req["missing"])
    following = req["following"]
    if following is not None and target > following.traffic_pct + 1e-9:
        missing.insert(0, f"one stage at a time: the next stage is {following.name} ({following.traffic_pct:g}%); "
                          f"{target:g}% would skip it")
    decision = {"action": action, "target_traffic_pct": target, "from_stage": plan.current_stage,
                "gates": req["gates"], "missing": missing,
                "signoffs": [{"role": s.role, "username": s.username} for s in req["signoffs"]]}
    if missing:
        raise ActionError(409, "ramp-up refused: " + "; ".join(missing), missing=missing,
                          errors={"_gate_decision": decision})
    _audit(kind=AuditEntry.Kind.GATE_DECISION, actor=actor, action="advance_allowed", version=row.version,
           reason=f"{action} to {target:g}%: every requirement of the stage is met", detail=decision, at=now)
    return plan.current_stage + 1


def _apply_locked(row: ServedPolicy, plan: RampPlan, *, action: str, params: dict, reason: str, actor: str) -> dict:
    now = timezone.now()
    stages = _stages(plan)
    old = row.document
    fields = _fields(old)
    new_stage = None
    pause_reason = None
    if action == "kill":
        fields.update(mode="off", traffic_pct=0.0)
        new_stage = -1
        pause_reason = f"kill switch by {actor}: {reason}"
    elif action == "rollback":
        if "to_version" in params:
            if params["to_version"] >= row.version:
                _bad("params.to_version", f"must be an earlier version than the current {row.version}")
            target = PolicyVersion.objects.filter(version=params["to_version"]).first()
            if target is None:
                _bad("params.to_version", f"no policy version {params['to_version']}")
            fields = _fields(target.document())
        else:
            names = {s.name: i for i, s in enumerate(stages)}
            if params["to_stage"] not in names:
                _bad("params.to_stage", f"unknown stage {params['to_stage']!r}; stages: {', '.join(names)}")
            index = names[params["to_stage"]]
            if stages[index].traffic_pct > old["traffic_pct"] + 1e-9:
                raise ActionError(409, f"rollback cannot ramp up: stage {params['to_stage']} serves "
                                       f"{stages[index].traffic_pct:g}% and the policy serves {old['traffic_pct']:g}%",
                                  missing=["a rollback only lowers traffic; ramp up through the plan"])
            fields["traffic_pct"] = stages[index].traffic_pct
            new_stage = index
    elif action == "set_traffic":
        fields["traffic_pct"] = params["traffic_pct"]
    elif action == "exclude_segment":
        overrides = [dict(o) for o in fields["segment_overrides"]]
        existing = next((o for o in overrides if o["feature"] == params["feature"]), None)
        if existing is None:
            overrides.append({"feature": params["feature"], "in": list(params["in"]), "arm": "control"})
        else:
            existing["in"] = existing["in"] + [v for v in params["in"] if v not in existing["in"]]
        fields["segment_overrides"] = overrides
    elif action == "include_segment":
        overrides = []
        for override in fields["segment_overrides"]:
            if override["feature"] == params["feature"]:
                kept = [v for v in override["in"] if v not in params["in"]]
                if kept:
                    overrides.append({**override, "in": kept})
            else:
                overrides.append(override)
        fields["segment_overrides"] = overrides
    elif action == "set_mode":
        fields["mode"] = params["mode"]
    elif action == "set_thresholds":
        fields["thresholds"] = {"step_up": params["step_up"], "decline": params["decline"]}
    elif action == "set_fallback":
        fields.update(params)

    if fields["traffic_pct"] > old["traffic_pct"] + 1e-9:
        new_stage = _check_increase(plan, stages, row, fields["traffic_pct"], actor=actor, action=action, now=now)
    elif new_stage is None and fields["traffic_pct"] < old["traffic_pct"] - 1e-9:
        new_stage = min(plan.current_stage, _stage_for_traffic(stages, fields["traffic_pct"]))

    if fields == _fields(old):
        # Repeating a rollback or a kill is harmless: no new version, but the request is on record.
        _audit(kind=AuditEntry.Kind.NO_CHANGE, actor=actor, action=action, version=row.version, reason=reason,
               detail={"params": params}, at=now)
        if pause_reason and not plan.paused:
            plan.paused, plan.paused_reason, plan.updated_by = True, pause_reason, actor
            plan.save()
        return old
    document = _write_version(row, fields, action=action, params=params, reason=reason, actor=actor,
                              extra_detail={"previous_version": old["version"]})
    if new_stage is not None:
        _move_plan(plan, new_stage, actor=actor, now=now)
    if pause_reason:
        plan.paused, plan.paused_reason, plan.updated_by = True, pause_reason, actor
        plan.save()
        _audit(kind=AuditEntry.Kind.PLAN, actor=actor, action="pause", version=document["version"],
               reason=pause_reason, at=now)
    return document


def _record_refusal(exc: ActionError, *, action: str, params: dict, reason: str, actor: str) -> None:
    decision = exc.errors.pop("_gate_decision", None)
    if exc.status != 409:
        return
    with transaction.atomic():
        _audit(kind=AuditEntry.Kind.GATE_DECISION if decision else AuditEntry.Kind.ACTION_REFUSED, actor=actor,
               action=f"{action}_refused", version=ServedPolicy.objects.filter(pk=1).values_list("version", flat=True).first(),
               reason=reason, detail={"params": params, "missing": exc.missing, "detail": exc.detail,
                                      **({"decision": decision} if decision else {})})


def apply_action(*, action: str, params: dict, reason: str, actor: str, expected_version: int | None = None) -> dict:
    """Apply one CONTRACT section 6 action; returns the new (or unchanged) policy document."""
    clean_reason = _reason(reason)
    cleaned = validate_params(action, params)
    if expected_version is not None and (isinstance(expected_version, bool) or not isinstance(expected_version, int)):
        _bad("expected_version", "an integer version is required")
    try:
        with transaction.atomic():
            row, plan = _lock()
            if expected_version is not None and row.version != expected_version:
                raise ActionError(409, f"stale version: the policy is at version {row.version}, not {expected_version}; "
                                       f"reload and retry", missing=[f"policy version {expected_version} is no longer current"])
            return _apply_locked(row, plan, action=action, params=cleaned, reason=clean_reason, actor=actor)
    except ActionError as exc:
        _record_refusal(exc, action=action, params=cleaned, reason=clean_reason, actor=actor)
        raise


def bootstrap_policy(*, model_version, traffic_pct, salt=None, mode: str = "active", reason, actor: str,
                     force: bool = False) -> dict:
    """Break-glass (CONTRACT section 3): write a version directly, bypassing the ramp plan."""
    clean_reason = _reason(reason)
    if not isinstance(model_version, str) or not 1 <= len(model_version) <= 64:
        _bad("model_version", "1-64 characters")
    traffic = _number({"traffic_pct": traffic_pct}, "traffic_pct", low=0, high=100, field="traffic_pct")
    if mode not in MODES:
        _bad("mode", f"one of {', '.join(MODES)}")
    if salt is not None and (not isinstance(salt, str) or not 1 <= len(salt) <= 64):
        _bad("salt", "1-64 characters")
    with transaction.atomic():
        row, plan = _lock()
        current = row.document
        if current["mode"] != "off" and current["traffic_pct"] > 0 and not force:
            raise ActionError(409, f"the current policy (version {row.version}) serves {current['traffic_pct']:g}% in "
                                   f"mode {current['mode']}; bootstrap only sets a starting point (use --force to override)",
                              missing=["--force"])
        fields = _fields(current)
        fields.update(model_version=model_version, traffic_pct=traffic, mode=mode, salt=salt or current["salt"])
        params = {"model_version": model_version, "traffic_pct": traffic, "mode": mode, "salt": fields["salt"],
                  "force": force}
        document = _write_version(row, fields, action="bootstrap", params=params, reason=clean_reason, actor=actor,
                                  break_glass=True, extra_detail={"previous_version": current["version"]})
        _move_plan(plan, _stage_for_traffic(_stages(plan), traffic), actor=actor)
        return document


# --- ramp plan services --------------------------------------------------------------------------

def request_advance(*, actor: str, comment: str = "") -> dict:
    with transaction.atomic():
        row, plan = _lock()
        stages = _stages(plan)
        if plan.current_stage + 1 >= len(stages):
            raise ActionError(409, "no further stage: the plan is at its last stage", missing=["a next stage"])
        now = timezone.now()
        AdvanceRequest.objects.create(stage=plan.current_stage, requested_by=actor, requested_at=now,
                                      comment=comment or "", policy_version=row.version, plan_revision=plan.revision)
        target = stages[plan.current_stage + 1]
        _audit(kind=AuditEntry.Kind.ADVANCE_REQUEST, actor=actor, action="request_advance", version=row.version,
               reason=comment or "", detail={"from_stage": plan.current_stage, "to_stage": target.name}, at=now)
        _announce_plan("advance_requested", actor, {"to_stage": target.name})
    return ramp_status()


def sign_off(*, username: str, role: str | None, comment: str = "", stage: int | None = None) -> dict:
    """A sign-off for the caller's own role to leave the current stage."""
    if role not in ROLES:
        raise ActionError(403, "only a person with one of the roles can sign off, for their own role")
    with transaction.atomic():
        row, plan = _lock()
        stages = _stages(plan)
        if stage is not None and stage != plan.current_stage:
            raise ActionError(409, f"the plan is no longer at the stage you saw (now at index {plan.current_stage}); reload",
                              missing=["reload the ramp plan"])
        req = _requirements(plan, stages, row.version, actor=None, now=timezone.now())
        if role not in req["required_roles"]:
            raise ActionError(403, f"this stage needs no sign-off from {ROLE_LABELS.get(role, role)}; required: "
                                   f"{', '.join(req['required_roles']) or 'none'}")
        if any(s.role == role for s in req["signoffs"]):
            raise ActionError(409, f"{ROLE_LABELS.get(role, role)} has already signed off this stage",
                              missing=[])
        now = timezone.now()
        SignOff.objects.create(stage=plan.current_stage, role=role, username=username, signed_at=now,
                               comment=comment or "", policy_version=row.version, plan_revision=plan.revision)
        _audit(kind=AuditEntry.Kind.SIGNOFF, actor=username, action="sign_off", version=row.version,
               reason=comment or "", detail={"role": role, "stage": plan.current_stage, "plan_revision": plan.revision},
               at=now)
        _announce_plan("signed_off", username, {"role": role, "stage": plan.current_stage})
    return ramp_status()


def advance(*, actor: str, reason: str) -> dict:
    """Move to the next stage now (same rules as an increase of traffic); 409 lists what is missing."""
    clean_reason = _reason(reason)
    plan = RampPlan.objects.filter(pk=1).first()
    if plan is None:
        ensure_initialized()
        plan = RampPlan.objects.get(pk=1)
    stages = _stages(plan)
    if plan.current_stage + 1 >= len(stages):
        raise ActionError(409, "no further stage: the plan is at its last stage", missing=["a next stage"])
    target = stages[plan.current_stage + 1]
    document = current_policy()
    params = {"traffic_pct": target.traffic_pct}
    if document["mode"] == "off":
        # Starting (or restarting after a kill): the advance itself switches the model on.
        try:
            with transaction.atomic():
                row, locked = _lock()
                _check_increase(locked, stages, row, target.traffic_pct, actor=actor, action="advance", now=timezone.now())
                fields = _fields(row.document)
                fields.update(mode="active", traffic_pct=target.traffic_pct)
                result = _write_version(row, fields, action="advance", params=params, reason=clean_reason, actor=actor)
                _move_plan(locked, locked.current_stage + 1, actor=actor)
                return result
        except ActionError as exc:
            _record_refusal(exc, action="advance", params=params, reason=clean_reason, actor=actor)
            raise
    return apply_action(action="set_traffic", params=params, reason=clean_reason, actor=actor,
                        expected_version=document["version"])


def _validate_stages(stages) -> list[dict]:
    if not isinstance(stages, list) or not stages:
        _bad("stages", "a non-empty list of stages is required")
    cleaned, previous, names = [], 0.0, set()
    for i, stage in enumerate(stages):
        field = f"stages[{i}]"
        if not isinstance(stage, dict):
            _bad(field, "must be an object")
        name = stage.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 32 or name in names:
            _bad(f"{field}.name", "a unique name of 1-32 characters is required")
        names.add(name)
        traffic = _number(stage, "traffic_pct", low=0.01, high=100, field=f"{field}.traffic_pct")
        if traffic <= previous:
            _bad(f"{field}.traffic_pct", f"stages must increase (after {previous:g}%)")
        previous = traffic
        dwell = stage.get("min_dwell_minutes")
        if isinstance(dwell, bool) or not isinstance(dwell, int) or not 0 <= dwell <= 60 * 24 * 60:
            _bad(f"{field}.min_dwell_minutes", "an integer number of minutes (0 to 86400) is required")
        gate_names = stage.get("gates", [])
        if not isinstance(gate_names, list) or not all(isinstance(g, str) and g for g in gate_names):
            _bad(f"{field}.gates", "a list of guardrail names is required")
        roles = stage.get("required_roles", [])
        if not isinstance(roles, list) or any(r not in SIGNOFF_ROLES for r in roles):
            _bad(f"{field}.required_roles", f"roles from {', '.join(SIGNOFF_ROLES)}")
        cleaned.append({"position": i, "name": name, "traffic_pct": traffic, "min_dwell_minutes": dwell,
                        "gates": list(dict.fromkeys(gate_names)), "required_roles": list(dict.fromkeys(roles))})
    return cleaned


def edit_plan(*, stages: list[dict] | None = None, actor: str, reason: str, auto_advance: bool | None = None,
              missing_data_limit_minutes: int | None = None) -> dict:
    """Replace the stages and/or settings; a new revision, which expires every sign-off."""
    clean_reason = _reason(reason)
    rows = _validate_stages(stages) if stages is not None else None
    if missing_data_limit_minutes is not None and (isinstance(missing_data_limit_minutes, bool) or not isinstance(
            missing_data_limit_minutes, int) or not 1 <= missing_data_limit_minutes <= 60 * 24 * 14):
        _bad("missing_data_limit_minutes", "an integer between 1 and 20160")
    with transaction.atomic():
        row, plan = _lock()
        before = {"stages": [_stage_dict(s) for s in _stages(plan)], "auto_advance": plan.auto_advance,
                  "missing_data_limit_minutes": plan.missing_data_limit_minutes}
        if rows is not None:
            RampStage.objects.filter(plan=plan).delete()
            RampStage.objects.bulk_create([RampStage(plan=plan, **r) for r in rows])
            index = _stage_for_traffic(_stages(plan), row.document["traffic_pct"])
            if index != plan.current_stage:
                plan.current_stage, plan.stage_started_at = index, timezone.now()
        if auto_advance is not None:
            plan.auto_advance = bool(auto_advance)
        if missing_data_limit_minutes is not None:
            plan.missing_data_limit_minutes = missing_data_limit_minutes
        plan.revision += 1
        plan.updated_by = actor
        plan.save()
        _audit(kind=AuditEntry.Kind.PLAN, actor=actor, action="edit_plan", version=row.version, reason=clean_reason,
               detail={"before": before, "after": {"stages": rows, "auto_advance": plan.auto_advance,
                                                   "missing_data_limit_minutes": plan.missing_data_limit_minutes},
                       "revision": plan.revision})
        _announce_plan("plan_edited", actor, {"revision": plan.revision})
    return ramp_status()


def pause_plan(*, actor: str, reason: str) -> dict:
    clean_reason = _reason(reason)
    with transaction.atomic():
        row, plan = _lock()
        if not plan.paused:
            plan.paused, plan.paused_reason, plan.updated_by = True, clean_reason, actor
            plan.save()
        _audit(kind=AuditEntry.Kind.PLAN, actor=actor, action="pause", version=row.version, reason=clean_reason)
        _announce_plan("paused", actor, {"reason": clean_reason})
    return ramp_status()


def resume_plan(*, actor: str, reason: str) -> dict:
    clean_reason = _reason(reason)
    with transaction.atomic():
        row, plan = _lock()
        plan.paused, plan.paused_reason, plan.updated_by = False, "", actor
        plan.waiting_for_data_since = None
        plan.save()
        _audit(kind=AuditEntry.Kind.PLAN, actor=actor, action="resume", version=row.version, reason=clean_reason)
        _announce_plan("resumed", actor, {"reason": clean_reason})
    return ramp_status()


def auto_advance(*, now: datetime | None = None) -> str:
    """One step of the ramp engine (Celery beat). Returns what it did, for logs and tests."""
    ensure_initialized()
    now = now or timezone.now()
    statuses, unavailable = gates_module.latest_guardrail_statuses()
    with transaction.atomic():
        row, plan = _lock()
        if not plan.auto_advance or plan.paused:
            return "idle: " + ("paused" if plan.paused else "auto-advance off")
        stages = _stages(plan)
        if plan.current_stage < 0 or plan.current_stage + 1 >= len(stages):
            return "idle: plan not started or at its last stage"
        if row.document["mode"] != "active":
            return "idle: the model is not active"
        req = _requirements(plan, stages, row.version, actor=ENGINE, now=now, statuses=statuses, unavailable=unavailable)
        if not req["missing"]:
            target = stages[plan.current_stage + 1]
            fields = _fields(row.document)
            fields["traffic_pct"] = target.traffic_pct
            decision = {"action": "auto_advance", "target_traffic_pct": target.traffic_pct,
                        "from_stage": plan.current_stage, "gates": req["gates"], "missing": []}
            _audit(kind=AuditEntry.Kind.GATE_DECISION, actor=ENGINE, action="advance_allowed", version=row.version,
                   reason=f"stage {req['current'].name}: dwell passed, gates hold, sign-offs present", detail=decision, at=now)
            _write_version(row, fields, action="auto_advance", params={"traffic_pct": target.traffic_pct},
                           reason=f"ramp plan: stage {req['current'].name} passed every requirement", actor=ENGINE)
            _move_plan(plan, plan.current_stage + 1, actor=ENGINE, now=now)
            return f"advanced to {target.name}"
        if req["dwell_seconds_left"] > 0:
            return "waiting: dwell time"
        lacking = [g for g in req["gates"] if g["missing_data"]]
        if not lacking:
            if plan.waiting_for_data_since is not None:
                plan.waiting_for_data_since = None
                plan.save()
            return "waiting: " + "; ".join(req["missing"])
        names = ", ".join(g["name"] for g in lacking)
        if plan.waiting_for_data_since is None:
            plan.waiting_for_data_since = now
            plan.save()
            _audit(kind=AuditEntry.Kind.GATE_DECISION, actor=ENGINE, action="stage_extended", version=row.version,
                   reason=f"stage {req['current'].name} extended: gates without sufficient data ({names})",
                   detail={"gates": req["gates"]}, at=now)
            _announce_plan("stage_extended", ENGINE, {"gates": [g["name"] for g in lacking]})
            return f"extended: missing data for {names}"
        if now - plan.waiting_for_data_since >= timedelta(minutes=plan.missing_data_limit_minutes):
            why = (f"gates {names} had no sufficient data for {plan.missing_data_limit_minutes} minutes after the dwell "
                   f"time of stage {req['current'].name}")
            plan.paused, plan.paused_reason, plan.updated_by = True, why, ENGINE
            plan.save()
            _audit(kind=AuditEntry.Kind.GATE_DECISION, actor=ENGINE, action="plan_paused", version=row.version,
                   reason=why, detail={"gates": req["gates"]}, at=now)
            _announce_plan("paused", ENGINE, {"reason": why})
            return f"paused: {why}"
        return f"extended: missing data for {names}"


def record_guardrail_alert(*, alert_id: int, guardrail: str, action: str) -> bool:
    """Claim an alert for handling; False when it was handled before (unique alert_id)."""
    from rollout.models import GuardrailActionRecord

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {GuardrailActionRecord._meta.db_table} (alert_id, guardrail, action, handled_at, outcome) "
            "VALUES (%s, %s, %s, now(), '') ON CONFLICT (alert_id) DO NOTHING RETURNING id",
            [alert_id, guardrail, action])
        return cursor.fetchone() is not None


__all__ = ["ActionError", "PolicyNotFound", "apply_action", "bootstrap_policy", "current_policy", "policy_document",
           "ramp_status", "request_advance", "sign_off", "advance", "edit_plan", "pause_plan", "resume_plan",
           "auto_advance"]
