"""Builders for events, users and tokens used across the suite."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import factory
from django.contrib.auth.models import Group, User

from shopswift_ops.tokens import create_token

_seq = itertools.count(1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def decision_event(**overrides) -> dict:
    n = next(_seq)
    event = {
        "event_id": f"d-{n}",
        "type": "decision",
        "order_id": f"o-{n}",
        "occurred_at": iso(datetime.now(UTC) - timedelta(seconds=30)),
        "buyer_id": f"b-{n % 97}",
        "seller_id": "s-1",
        "amount_minor": 4599,
        "currency": "EUR",
        "arm": "treatment",
        "policy_version": 2,
        "model_version": "fraud-gbm-v3",
        "score": 0.42,
        "decision": "approve",
        "decided_by": "model",
        "reason_codes": [],
        "latency_ms": 41.5,
        "timed_out": False,
        "features": {"account_age_days": 700, "signup_method": "email", "is_repeat_buyer": True,
                     "prior_good_orders": 12, "amount_band": "b2", "device_risk": 0.1,
                     "bin_country_match": True, "velocity_1h": 1},
    }
    event.update(overrides)
    return event


def outcome_event(order_id: str, kind: str = "checkout_completed", **overrides) -> dict:
    n = next(_seq)
    event = {
        "event_id": f"x-{n}",
        "type": "outcome",
        "order_id": order_id,
        "occurred_at": iso(datetime.now(UTC) - timedelta(seconds=10)),
        "kind": kind,
    }
    event.update(overrides)
    return event


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "correct horse battery staple")
        if create:
            self.save(update_fields=["password"])

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted and extracted != "admin":
            self.groups.add(Group.objects.get_or_create(name=extracted)[0])
        elif extracted == "admin":
            self.is_superuser = self.is_staff = True
            self.save()


def token_for(*scopes: str, name: str | None = None) -> str:
    _, raw = create_token(name=name or f"t-{next(_seq)}", scopes=list(scopes))
    return raw
