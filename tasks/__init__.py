"""The thin Celery shell over pipeline/: one module per queue (`celery -A tasks worker -Q ping`)."""
from pipeline.adapters import heap
from pipeline.service.nudges import install_sender
from tasks import award, deliver, flower_search, flower_state, ping, probes, rerun, score, signals, validate  # noqa: F401,E501  (registers)
from tasks.app import app
from tasks.dispatch import send

install_sender(send)    # the composition root of every Celery process: nudges go out through it
flower_search.install()  # in Flower: its search index parses each kwargs text once
flower_state.install()   # Flower's evicted tasks freed at once, not by a full garbage collection
# Flower (`celery -A tasks flower`) has no start-up signal: the heap imported by now (Celery,
# pipeline/, and Flower's own modules in Flower) is settled here; workers, beat and the API settle
# again once started (tasks/signals.py, pipeline/entrypoints/http.py).
heap.settle()

celery = app
__all__ = ["app", "celery"]
