"""`python -m pipeline.entrypoints.cli`: the `pingtree` command."""
import sys

from pipeline.entrypoints.cli import main

sys.exit(main())
