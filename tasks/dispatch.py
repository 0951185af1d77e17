"""Turn the domain's nudges into Celery messages: plain sends, and the ping chord."""
from celery import chord

from pipeline.service.nudges import Fanout, Nudge
from tasks.app import app


def _signature(nudge: Nudge):
    return app.signature(nudge.task, args=nudge.args, immutable=True)


def send(nudges: list[Nudge | Fanout]) -> None:
    for nudge in nudges:
        if isinstance(nudge, Fanout):
            header = [_signature(n).set(ignore_result=False) for n in nudge.header]
            chord(header)(_signature(nudge.body))
        else:
            # ignore_result: no result subscription per message (it leaks, and blocks when Redis is down).
            app.send_task(nudge.task, args=nudge.args, countdown=nudge.countdown, ignore_result=True)
