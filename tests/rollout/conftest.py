import pytest

from rollout import services


@pytest.fixture
def rollout_ready(db):
    services.ensure_initialized()
    return services


@pytest.fixture
def people(db):
    """One person per role, by role name."""
    from tests.factories import UserFactory

    return {role: UserFactory(username=f"{role}-person", role=role)
            for role in ("risk_ops", "engineering", "compliance", "product", "support", "leadership")}


@pytest.fixture
def simple_plan(rollout_ready):
    """A plan without gates (the guardrail engine is another app's) and short dwell times."""
    def make(*, roles=("risk_ops", "engineering"), dwell=0, gates=()):
        return services.edit_plan(stages=[
            {"name": "1%", "traffic_pct": 1, "min_dwell_minutes": dwell, "gates": list(gates), "required_roles": list(roles)},
            {"name": "5%", "traffic_pct": 5, "min_dwell_minutes": dwell, "gates": list(gates), "required_roles": list(roles)},
            {"name": "25%", "traffic_pct": 25, "min_dwell_minutes": dwell, "gates": list(gates), "required_roles": list(roles)},
        ], actor="test-admin", reason="test plan")
    return make


def sign(stage_roles: dict) -> None:
    """stage_roles: {role: username}: each signs the current stage."""
    for role, username in stage_roles.items():
        services.sign_off(username=username, role=role, comment="looks good")
