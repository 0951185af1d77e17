"""The store: the SQL of the stages, intake and tree load, each function taking a cursor, one
module per table group (reports are in views.py). `store.<name>` reaches every function."""
from __future__ import annotations

from pipeline.adapters.store.auctions import (  # noqa: F401
    auction,
    auction_bids,
    auction_pings,
    claim_shard,
    close_auction,
    close_lone_shard,
    finish_shard,
    lock_rotation,
    mark_ping,
    open_auction,
    overdue_auctions,
    record_pings,
    release_caps,
    release_shard,
    reserve_caps,
    set_rotation,
    unfinished_shards,
    usage,
)
from pipeline.adapters.store.cycles import (  # noqa: F401
    count_redrive,
    due_held,
    lead_history,
    lead_row,
    stuck,
    touch,
)
from pipeline.adapters.store.delivery import (  # noqa: F401
    begin_post,
    claim_post,
    expire_post,
    open_post,
    pause_if_rejecting,
    posted_buyers,
    settle,
)
from pipeline.adapters.store.leads import (  # noqa: F401
    TERMINAL,  # noqa: F401
    add_suppressions,
    claim,
    claim_to_score,
    claim_to_validate,
    consent,
    contact_history,
    insert_lead,
    list_suppressions,
    lock_contact,
    move,
    record_event,
    remove_suppression,
    sell,
)
from pipeline.adapters.store.tree import (  # noqa: F401
    buyers,
    load_tree,
    network,
    tiers,
    tree_document,
)
