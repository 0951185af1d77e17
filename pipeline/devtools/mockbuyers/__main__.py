"""`python -m pipeline.devtools.mockbuyers`: serve a simulated fleet."""
import sys

from pipeline.devtools.mockbuyers import main

sys.exit(main())
