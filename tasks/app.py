"""The Celery app: configuration from config/, nothing imported from tasks/."""
from celery import Celery

from config import celeryconfig, schedule

app = Celery("pingtree")
app.config_from_object(celeryconfig)
app.conf.beat_schedule = schedule.BEAT_SCHEDULE
