"""Support's own records: who looked up what (Compliance reads it), notes, labels, escalations.

Decisions and outcomes stay in the event store (metrics); a label is also written there as a
review outcome event so the KPIs see it.
"""
from django.conf import settings
from django.db import models


class LookupLog(models.Model):
    """One look-up of customer data. Append-only: nothing edits or deletes these rows."""

    class Kind(models.TextChoices):
        ORDER = "order", "order page"
        BUYER = "buyer", "buyer page"
        SELLER = "seller", "seller page"
        SEARCH = "search", "search"
        SELLER_EXPORT = "seller_export", "seller CSV export"
        AFFECTED_EXPORT = "affected_export", "affected customers CSV export"
        AFFECTED = "affected", "affected customers page"

    class SearchBy(models.TextChoices):
        ORDER = "order", "order id"
        BUYER = "buyer", "buyer id"
        EMAIL = "email", "buyer e-mail"
        SELLER = "seller", "seller id"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Kept apart from the foreign key so the log stays readable after a user is deleted.
    actor = models.CharField(max_length=150, help_text="user name, or 'token:NAME' for API clients")
    via = models.CharField(max_length=8, default="page")  # page | api
    kind = models.CharField(max_length=20, choices=Kind.choices)
    search_by = models.CharField(max_length=8, choices=SearchBy.choices, blank=True)
    # What was looked up: an order/buyer/seller/incident id, or a *masked* e-mail (never the clear one).
    subject = models.CharField(max_length=254)
    results = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["user", "-at"]), models.Index(fields=["subject", "-at"])]

    def __str__(self):
        return f"{self.actor} {self.kind} {self.subject}"


class Note(models.Model):
    order_id = models.CharField(max_length=64, db_index=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class DecisionLabel(models.Model):
    """Support's verdict on a decision. `legitimate` and `fraud` are also stored as the review
    outcome events of CONTRACT section 2 (`review_legit`, `review_fraud`); `unclear` has no
    outcome kind in the contract, so it lives here only and moves no KPI."""

    class Label(models.TextChoices):
        LEGITIMATE = "legitimate"
        FRAUD = "fraud"
        UNCLEAR = "unclear"

    order_id = models.CharField(max_length=64, db_index=True)
    label = models.CharField(max_length=12, choices=Label.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    comment = models.CharField(max_length=200, blank=True)
    outcome_event_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class Escalation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    order_id = models.CharField(max_length=64, db_index=True)
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    reason = models.TextField(max_length=2000)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
