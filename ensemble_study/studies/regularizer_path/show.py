"""The regularizer_path study's figure and documentation blocks, from its saved table only."""

from __future__ import annotations

from . import STUDY  # noqa: F401
