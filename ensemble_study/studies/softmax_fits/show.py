"""The softmax_fits study's figure and documentation blocks (from its saved table only)."""
