"""QP back ends: the one registry through which every QP and LP of the package is solved.

A back end is a `QPBackend`: a name, the problem forms (`FORMS`) it serves and one method per form. Callers ask
for a back end by name and form (`qp_backend("daqp", "dense")`); the name they use today is a default argument,
never an import, so a back end added here serves the agents' QPs, the SQP subproblems, the mpQP exploration, the
feasibility projections and the centralized MPC alike. Back ends are found like the model families: the modules
of this package that define a `BACKEND`, then the Python entry points of group `dmpc_ros.qp_backends` (an
instance or a class), so another package adds one without editing dmpc_ros. Nothing here knows any solver.

Problem forms (vectors change per solve, matrices as stated):
- dense:      min ½z'Hz + q'z  s.t.  lower ≤ A z ≤ upper, H and A fixed, rows flagged as equalities, warm start
              (`dense` returns a `DenseModel`; `set_hessian` may change H).
- dense_once: one such QP with its row multipliers (`solve_dense`).
- dense_soft: one such QP whose flagged rows are soft: violated at a penalty when nothing else is feasible
              (`solve_dense(..., soft=mask)`; SQP's elastic mode).
- sparse:     min ½x'Px + q'x  s.t.  A x = b on the first `num_equalities` rows, A x ≤ b on the rest, P given by
              its upper triangle, all sparse; q and b updatable (`sparse` returns a `SparseModel`).
- lp:         min c'z  s.t.  lower ≤ A z ≤ upper, rows flagged as equalities (`solve_lp`).
Bounds may be ±inf (no bound). Multipliers `duals` follow one row each, positive at an active upper bound.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Protocol

import numpy as np
import scipy.sparse as sp

ENTRY_POINT_GROUP = "dmpc_ros.qp_backends"
FORMS = {
    "dense": "dense QPs with fixed matrices, vector updates and warm start",
    "dense_once": "one dense QP with its multipliers",
    "dense_soft": "one dense QP with soft rows",
    "sparse": "sparse QPs with equality rows and vector updates",
    "lp": "one dense LP with equality rows",
}
METHODS = {"dense": "dense", "dense_once": "solve_dense", "dense_soft": "solve_dense", "sparse": "sparse",
           "lp": "solve_lp"}   # the QPBackend method a form needs


@dataclass
class QPResult:
    """What every back end returns: the minimizer, whether the solver reports it solved, its own status text,
    iterations, the row multipliers (when it has them) and whether it found the constraints infeasible."""

    x: np.ndarray
    ok: bool
    status: str
    iterations: int = 0
    duals: np.ndarray | None = None
    infeasible: bool = False


class DenseModel(Protocol):
    """A dense QP with fixed (H, A) set up once (form `dense`)."""

    num_variables: int

    def solve(self, q: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              warm_start: np.ndarray | None) -> QPResult: ...

    def set_hessian(self, H: np.ndarray) -> None: ...


class SparseModel(Protocol):
    """A sparse QP set up once (form `sparse`); `update` changes q and/or b before the next `solve`."""

    def update(self, q: np.ndarray | None = None, b: np.ndarray | None = None) -> None: ...

    def solve(self) -> QPResult: ...


class QPBackend:
    """A solver behind the registry. Subclasses set `name` and `forms` and define the method of each form."""

    name: str = ""
    forms: frozenset[str] = frozenset()

    def dense(self, H: np.ndarray, A: np.ndarray, equalities: np.ndarray, tolerance: float) -> DenseModel:
        """Form dense: H symmetric, A (rows × n), equalities a bool mask of A's rows (lower = upper there)."""
        raise NotImplementedError(refusal(self.name, "dense"))

    def solve_dense(self, H: np.ndarray, q: np.ndarray, A: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                    equalities: np.ndarray | None = None, soft: np.ndarray | None = None) -> QPResult:
        """Forms dense_once and dense_soft (rows of the `soft` mask soft)."""
        raise NotImplementedError(refusal(self.name, "dense_soft" if soft is not None else "dense_once"))

    def solve_lp(self, c: np.ndarray, A: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 equalities: np.ndarray | None = None, tolerance: float = 1e-9) -> QPResult:
        """Form lp."""
        raise NotImplementedError(refusal(self.name, "lp"))

    def sparse(self, P: sp.spmatrix, q: np.ndarray, A: sp.spmatrix, b: np.ndarray, num_equalities: int,
               tolerance: float, max_iterations: int = 200) -> SparseModel:
        """Form sparse: P's upper triangle, the first `num_equalities` rows of A x ≤ b held with equality."""
        raise NotImplementedError(refusal(self.name, "sparse"))


_BACKENDS: dict[str, QPBackend] = {}
_BROKEN: dict[str, str] = {}   # entry point name → why its plugin failed to load


def register_backend(backend: QPBackend) -> QPBackend:
    """Add a back end by its name (what an entry point does; tests may call it in-process). Refused: an unnamed
    one, an unknown form, a form whose method it does not define, a second back end of a name."""
    if not isinstance(backend, QPBackend) or not backend.name:
        raise TypeError(f"{backend!r} is not a named QPBackend")
    unknown = set(backend.forms) - set(FORMS)
    if unknown:
        raise ValueError(f"QP back end '{backend.name}': forms {sorted(unknown)} are not allowed: one of "
                         f"{', '.join(FORMS)}")
    missing = sorted(f for f in backend.forms if getattr(type(backend), METHODS[f]) is getattr(QPBackend, METHODS[f]))
    if missing:
        raise ValueError(f"QP back end '{backend.name}' declares {', '.join(missing)} but does not define "
                         f"{', '.join(sorted({METHODS[f] for f in missing}))}")
    known = _BACKENDS.get(backend.name)
    if known is not None and type(known) is not type(backend):
        raise ValueError(f"QP back end '{backend.name}' is registered twice: {type(known).__module__} and "
                         f"{type(backend).__module__}")
    _BACKENDS[backend.name] = backend
    return backend


@cache
def _load() -> None:
    """Once per process: the modules of this package with a BACKEND, then the entry points."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        found = getattr(importlib.import_module(f"{__name__}.{module.name}"), "BACKEND", None)
        if found is not None:
            register_backend(found)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            register_backend(loaded() if isinstance(loaded, type) else loaded)
        except Exception as error:   # a broken plugin must not hide the others; it is named when asked for
            _BROKEN[entry.name] = f"{entry.value}: {type(error).__name__}: {error}"


def backend_names(form: str | None = None) -> tuple[str, ...]:
    """Names of the registered back ends (serving `form` if given), sorted."""
    _load()
    return tuple(sorted(name for name, b in _BACKENDS.items() if form is None or form in b.forms))


def refusal(name: str, form: str) -> str:
    """The one-line reason a back end cannot serve a form, naming those that can."""
    able = [n for n, b in sorted(_BACKENDS.items()) if form in b.forms]
    return (f"QP back end '{name}' cannot solve {form} problems ({FORMS[form]}): back ends that can: "
            f"{', '.join(able) or 'none'}")


def qp_backend(name: object, form: str) -> QPBackend:
    """The back end `name` for problems of `form`, or a ValueError saying what is allowed."""
    if form not in FORMS:
        raise ValueError(f"QP problem form '{form}' is not allowed: one of {', '.join(FORMS)}")
    _load()
    backend = _BACKENDS.get(name) if isinstance(name, str) else None
    if backend is None:
        if isinstance(name, str) and name in _BROKEN:
            raise ValueError(f"QP back end '{name}' is registered but its plugin failed to load ({_BROKEN[name]})")
        raise ValueError(f"QP back end {name!r} is not allowed: must be one of {', '.join(backend_names(form))} "
                         f"(more through entry points of group {ENTRY_POINT_GROUP})")
    if form not in backend.forms:
        raise ValueError(refusal(backend.name, form))
    return backend


class BackendNames(Sequence):
    """The names of the back ends serving a form, read from the registry when used (so plugins count), e.g. the
    allowed values of `controller.solver`."""

    def __init__(self, form: str) -> None:
        self.form = form

    def __getitem__(self, index):
        return backend_names(self.form)[index]

    def __len__(self) -> int:
        return len(backend_names(self.form))

    def __repr__(self) -> str:
        return repr(backend_names(self.form))
