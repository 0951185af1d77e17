"""Buyer protocols: pure translations from a lead to requests and from answers to bids or passes."""
