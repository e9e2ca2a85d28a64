"""A QP back end from outside dmpc_ros (test fixture): `tally` serves every problem form by handing each problem
to the built-in back end of that form (DAQP, or Clarabel for sparse problems) and counts, per form, how many
problems it was given, so a test can see which of dmpc_ros's QPs reached it and that its answers are unchanged.
Registered through the entry point group dmpc_ros.qp_backends (dist-info beside this package)."""
from __future__ import annotations

from collections import Counter

from dmpc_ros.mpc.qp_backends import FORMS, QPBackend, qp_backend

CALLS: Counter = Counter()   # form → problems handed over (dense: solves of its models)


class _CountedModel:
    def __init__(self, inner, form: str) -> None:
        self.inner, self.form = inner, form
        self.num_variables = getattr(inner, "num_variables", 0)

    def solve(self, *args, **kwargs):
        CALLS[self.form] += 1
        return self.inner.solve(*args, **kwargs)

    def set_hessian(self, H) -> None:
        self.inner.set_hessian(H)

    def update(self, **vectors) -> None:
        self.inner.update(**vectors)


class TallyBackend(QPBackend):
    name = "tally"
    forms = frozenset(FORMS)

    def dense(self, H, A, equalities, tolerance):
        return _CountedModel(qp_backend("daqp", "dense").dense(H, A, equalities, tolerance), "dense")

    def solve_dense(self, H, q, A, lower, upper, equalities=None, soft=None):
        form = "dense_once" if soft is None else "dense_soft"
        CALLS[form] += 1
        return qp_backend("daqp", form).solve_dense(H, q, A, lower, upper, equalities, soft)

    def solve_lp(self, c, A, lower, upper, equalities=None, tolerance=1e-9):
        CALLS["lp"] += 1
        return qp_backend("daqp", "lp").solve_lp(c, A, lower, upper, equalities, tolerance)

    def sparse(self, P, q, A, b, num_equalities, tolerance, max_iterations=200):
        return _CountedModel(qp_backend("clarabel", "sparse").sparse(P, q, A, b, num_equalities, tolerance,
                                                                    max_iterations), "sparse")
