"""The tangler: turns the marked code blocks of the chapter pages into src/llm_from_scratch/."""

from tangler.core import TangleError, differences, tangle, write

__all__ = ["TangleError", "differences", "tangle", "write"]
