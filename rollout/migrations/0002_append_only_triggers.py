"""Policy versions and the audit log are append-only, enforced by the database: an UPDATE or
DELETE raises whatever issues it (ORM, admin, psql). TRUNCATE (used only by test flushes and
explicit maintenance) is not a row operation and is not blocked."""
from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION rollout_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def trigger(table: str) -> str:
    return (f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION rollout_refuse_change();")


class Migration(migrations.Migration):
    dependencies = [("rollout", "0001_initial")]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS rollout_refuse_change() CASCADE;"),
        migrations.RunSQL(trigger("rollout_auditentry"), "DROP TRIGGER IF EXISTS rollout_auditentry_append_only ON rollout_auditentry;"),
        migrations.RunSQL(trigger("rollout_policyversion"),
                          "DROP TRIGGER IF EXISTS rollout_policyversion_append_only ON rollout_policyversion;"),
    ]
