"""The Celery configuration (acks late, JSON only, ids in arguments); read by tasks/app.py only."""
from urllib.parse import parse_qsl, urlencode, urlsplit

from kombu import Queue

from config import queues
from config.settings import settings


def celery_url(url: str) -> str:
    """redis-py's Unix-socket url (unix:///path?db=N) as Celery spells it (redis+socket:///path?virtual_host=N)."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return url
    query = dict(parse_qsl(parts.query))
    db = query.pop("db", "0")
    return f"redis+socket://{parts.path}?{urlencode({**query, 'virtual_host': db})}"


broker_url = celery_url(settings.redis_url)
result_backend = celery_url(settings.redis_url)

# Redis keeps nothing on disk here and BRPOP is not atomic with the unacked bookkeeping:
# ack late, one message at a time, and hand a message back when its worker dies.
task_acks_late = True
worker_prefetch_multiplier = 1
task_reject_on_worker_lost = True
broker_transport_options = {"visibility_timeout": 300, "max_connections": 200}
result_backend_transport_options = {"visibility_timeout": 300}
broker_connection_retry_on_startup = True
redis_max_connections = 200

# Results only for chord headers (they carry a count, never personal data).
task_ignore_result = True
result_expires = 600
accept_content = ["json"]
task_serializer = "json"
result_serializer = "json"
result_extended = False

task_routes = queues.ROUTES
task_default_queue = queues.VALIDATE
task_queues = [Queue(name, routing_key=name) for name in queues.ALL]
task_create_missing_queues = False

# Flower sees every task: the arguments are ids only. Workers send task-received, -started,
# -succeeded, -failed and -retried: Flower builds each task from task-received (name, args, ids),
# so task-sent (one more Redis PUBLISH per message, from every sender) shows it nothing more.
worker_send_task_events = settings.task_events
task_send_sent_event = False
# A worker's task events leave in one publish every 0.1 s at most, not one or more per task.
worker_consumer = "tasks.app:EventBatchingConsumer"
worker_hijack_root_logger = False
worker_redirect_stdouts = False
timezone = "UTC"
enable_utc = True

# Beat keeps its schedule in memory: every entry is an interval, so nothing is worth keeping
# across restarts, and the default scheduler's file is a pickle (shelve) that beat opens as
# it finds it, so a file planted in a shared directory ran code as beat's user.
beat_scheduler = "celery.beat:Scheduler"
