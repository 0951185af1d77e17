"""`python -m pipeline.devtools.bench`: the same as `pingtree bench`."""
import sys

from pipeline.devtools.bench import main

sys.exit(main())
