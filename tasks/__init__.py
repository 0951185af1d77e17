"""The thin Celery shell over pipeline/: one module per queue (`celery -A tasks worker -Q ping`)."""
from pipeline.service.nudges import install_sender
from tasks import award, deliver, ping, probes, rerun, score, signals, validate  # noqa: F401  (registers)
from tasks.app import app
from tasks.dispatch import send

install_sender(send)    # the composition root of every Celery process: nudges go out through it

celery = app
__all__ = ["app", "celery"]
