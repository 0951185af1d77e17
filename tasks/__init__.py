"""The thin Celery shell over pipeline/: one module per queue (`celery -A tasks worker -Q ping`)."""
from tasks import award, deliver, ping, probes, rerun, score, signals, validate  # noqa: F401  (registers)
from tasks.app import app

celery = app
__all__ = ["app", "celery"]
