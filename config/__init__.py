"""Every setting, queue name and schedule of pingtree, defined once."""
