"""One agent's optimal control problem: condensed prediction, QP back ends, terminal ingredients."""
