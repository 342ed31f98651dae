from django.db import migrations

FEATURES = [
    # name, kind, description, default, min, max, allowed, segment, monitored
    ("account_age_days", "number", "days since the buyer's account was created", 0, 0, 20000, None, False, True),
    ("signup_method", "string", "how the account signs in", "unknown", None, None,
     ["email", "phone", "social_google", "social_apple", "guest"], True, True),
    ("is_repeat_buyer", "boolean", "has completed an order here before", None, None, None, None, True, True),
    ("prior_good_orders", "number", "completed orders without a chargeback", 0, 0, 100000, None, False, True),
    ("amount_band", "string", "order value band", None, None, None, ["b1", "b2", "b3", "b4", "b5"], True, True),
    ("device_risk", "number", "device reputation score", None, 0, 1, None, False, True),
    ("bin_country_match", "boolean", "card BIN country equals shipping country", None, None, None, None, False, True),
    ("velocity_1h", "number", "checkout attempts by this buyer in the last hour", None, 0, 1000, None, False, True),
]

REASON_CODES = [
    ("HIGH_RISK_SCORE", "The fraud model scored this checkout as high risk.",
     "Our security checks could not approve this payment.", "Risk score above the decline threshold.", "Risk Ops"),
    ("NEW_ACCOUNT", "The account looked new to the model (short account age).",
     "Your account is new to us, so we asked for extra checks.", "Insufficient account history.", "Risk Ops"),
    ("DEVICE_RISK", "The device has a poor reputation.",
     "We could not verify the device used for this payment.", "Device reputation.", "Risk Ops"),
    ("BIN_COUNTRY_MISMATCH", "The card's country differs from the shipping country.",
     "The card's country did not match the delivery address.", "Card issuing country mismatch.", "Risk Ops"),
    ("HIGH_VELOCITY", "Many checkout attempts in the last hour.",
     "We saw several payment attempts in a short time.", "Unusual transaction velocity.", "Risk Ops"),
    ("HIGH_AMOUNT", "The order value is unusually high for this buyer.",
     "The order value needed an extra check.", "Transaction amount outside usual pattern.", "Risk Ops"),
    ("SCORING_TIMEOUT", "The fraud model did not answer in time; the fallback rule decided.",
     "A temporary issue on our side meant we asked for an extra check.", "Fallback rule applied (model unavailable).", "Payments Eng"),
    ("RULES_DECLINE", "A legacy risk rule declined the payment.",
     "Our security checks could not approve this payment.", "Rule-based decline.", "Risk Ops"),
    ("MANUAL_REVIEW", "A risk analyst reviewed the order.",
     "A specialist reviewed your order.", "Manual review outcome.", "Risk Ops"),
]


def seed(apps, schema_editor):
    Feature = apps.get_model("metrics", "FeatureDefinition")
    for name, kind, description, default, low, high, allowed, segment, monitored in FEATURES:
        Feature.objects.get_or_create(name=name, defaults=dict(
            kind=kind, description=description, default_value=default, min_value=low, max_value=high,
            allowed_values=allowed, segment_dimension=segment, monitored=monitored))
    Reason = apps.get_model("metrics", "ReasonCode")
    for code, support, customer, adverse, owner in REASON_CODES:
        Reason.objects.get_or_create(code=code, defaults=dict(
            support_text=support, customer_text=customer, adverse_action_text=adverse, owner=owner))


class Migration(migrations.Migration):
    dependencies = [("metrics", "0002_registry")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
