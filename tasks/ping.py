"""Queue `ping`: the chord header (a shard of buyers pinged at once) and the waterfall walk."""
import logging

from pipeline.service import lifecycle
from tasks.app import STAGE_RETRY, app
from tasks.dispatch import send

log = logging.getLogger(__name__)


# No `expires` here: an expired chord header fails the chord and the award never runs.
@app.task(name="pingtree.ping_shard", ignore_result=False)
def ping_shard(auction_id: str, shard: int) -> int:
    try:
        nudges = lifecycle.ping_shard(auction_id, shard)
    except Exception:  # a header that raises kills the chord; the deadline close still awards
        log.exception("ping shard %s/%s failed; the deadline close will award", auction_id, shard)
        return 0
    send(nudges)
    return 1


@app.task(name="pingtree.walk_waterfall", **STAGE_RETRY)
def walk_waterfall(auction_id: str, step: int = 0) -> None:
    send(lifecycle.walk_waterfall(auction_id, step))
