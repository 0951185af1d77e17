"""The stages: claim a lead, call the domain, save, and return the nudges to send after the commit."""
