"""The database refuses to rewrite history: a timeline entry is never updated or deleted, and a
published status update is never updated or deleted (drafts stay editable)."""
from django.db import migrations

SQL = """
CREATE FUNCTION incidents_refuse_timeline_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'incident timeline entries are append-only (% refused); add a correction instead', TG_OP
    USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER incidents_timeline_append_only
  BEFORE UPDATE OR DELETE ON incidents_timelineentry
  FOR EACH ROW EXECUTE FUNCTION incidents_refuse_timeline_change();

CREATE FUNCTION incidents_refuse_published_update_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.published_at IS NOT NULL THEN
    RAISE EXCEPTION 'published status updates are immutable (% refused)', TG_OP
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER incidents_status_update_immutable
  BEFORE UPDATE OR DELETE ON incidents_statusupdate
  FOR EACH ROW EXECUTE FUNCTION incidents_refuse_published_update_change();
"""

REVERSE = """
DROP TRIGGER IF EXISTS incidents_timeline_append_only ON incidents_timelineentry;
DROP FUNCTION IF EXISTS incidents_refuse_timeline_change();
DROP TRIGGER IF EXISTS incidents_status_update_immutable ON incidents_statusupdate;
DROP FUNCTION IF EXISTS incidents_refuse_published_update_change();
"""


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_incidents")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
