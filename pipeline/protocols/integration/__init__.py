"""Buyer integrations: a buyer's own ping/post API described in the tree file, not in code."""
