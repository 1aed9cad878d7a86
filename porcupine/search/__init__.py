"""The search: a sketch of candidate kernels, its encoding for Z3, and the
counterexample-guided loop that finds the cheapest verified kernel in it.

:mod:`~porcupine.search.sketch` (the candidate space), :mod:`~porcupine.search.encode` and
:mod:`~porcupine.search.models` (the sketch as Z3 constraints, and models back to Quill),
:mod:`~porcupine.search.refine` (what a wrong candidate teaches), :mod:`~.restrictions`
(what a spec rules out before the search), :mod:`~porcupine.search.bounds` (lower bounds
that end it), :mod:`~porcupine.search.cegis` (the loop) and :mod:`~.diagnose` (why nothing
was found).
"""

from porcupine.search.cegis import Found, SearchResult, meets_lower_bound, search

__all__ = ["Found", "SearchResult", "meets_lower_bound", "search"]
