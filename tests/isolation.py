"""One test run's private database and Redis db index, and each pytest-xdist worker's share of them."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDIS_DBS = 16


def per_worker(database_url: str, redis_url: str, worker: str) -> tuple[str, str]:
    """The URLs the xdist worker `worker` ("gw0", "gw1", ..., or "" outside xdist) uses: its own
    database (the run's name + "_gwN") and the Redis db index N above the run's, so parallel
    workers never flush, truncate or consume each other's data and messages."""
    if not worker:
        return database_url, redis_url
    n = int(worker.removeprefix("gw"))
    db = urlsplit(database_url)
    database_url = urlunsplit(db._replace(path=f"{db.path}_{worker}"))
    redis = urlsplit(redis_url)
    base = int(redis.path.strip("/") or 0)
    index = base + n
    if index >= REDIS_DBS:
        raise ValueError(f"xdist worker {worker} would need Redis db {index} above {redis_url}: "
                         f"start from a lower PINGTREE_TEST_REDIS_URL index or run fewer workers")
    return database_url, urlunsplit(redis._replace(path=f"/{index}"))
