"""How people and programs reach pingtree: the HTTP API and the `pingtree` command."""
