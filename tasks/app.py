"""The Celery app: configuration from config/, and the broker workaround of tasks/broker.py."""
from celery import Celery

from config import celeryconfig, schedule
from pipeline.adapters.db import DatabaseDown
from tasks import broker

broker.install()        # workers survive a Redis restart (see tasks/broker.py)

app = Celery("pingtree")
app.config_from_object(celeryconfig)
app.conf.beat_schedule = schedule.BEAT_SCHEDULE

# A stage that hits a dropped PostgreSQL connection runs again soon on a fresh one (the pool
# drops every connection from before the outage). Every stage is idempotent: its claim makes
# a second run harmless. Beat tasks need none: their next run is the retry.
STAGE_RETRY = {"autoretry_for": (DatabaseDown,), "retry_backoff": 0.5, "retry_backoff_max": 5,
               "retry_jitter": False, "max_retries": 12}
