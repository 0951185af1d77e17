"""Developer tools: mock buyers, demo, benchmark and its floor, the process runner (not the product)."""
