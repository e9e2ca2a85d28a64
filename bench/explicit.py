"""Explicit DMPC against the QP DMPC it replaces (Brahmbhatt, Ganesh & Avraamidou 2026, Section IV).

The paper's M = 2 plant (config/facet_two_plants.yaml), then random plants as in the paper: n_x,i = 2, n_u,i = 1,
A_i and B_ij entries uniform in [−1, 1], kept when the plant is stable and controllable; state bounds lower in
[−100, −10] and upper in [10, 100], input bounds lower in [−5, −1] and upper in [1, 5]; N_p = 3, ε = 1e-8,
p_max = 100; Q_i = I, R_i = 1; x(0) uniform in half the state box, redrawn until centralized MPC keeps every
limit from it (a choice: the paper gives none).

Time per step: every whole agent call of the step (begin_step and each iterate, timed by the simulator) summed
over the agents, as if they shared one core; the iteration-free agents each compute the same fixed point, and
that redundancy is counted. Prints the tables; writes explicit_time.png and explicit_regions.png.

    .venv/bin/python bench/explicit.py --plants 20 20 10 5 --steps 30
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # one core per agent call, as the agents would have
import numpy as np   # noqa: E402

import dmpc_ros as dmpc   # noqa: E402
from dmpc_ros.scenarios.explicit_cache import build   # noqa: E402

VARIANTS = ("jacobi", "explicit_iterative", "wegstein", "explicit_iteration_free", "explicit_facet")
LABELS = {"jacobi": "DiMPC (QP)", "explicit_iterative": "I-mpDiMPC", "wegstein": "I-mpDiMPC + Wegstein",
          "explicit_iteration_free": "IF-mpDiMPC", "explicit_facet": "FACET-DiMPC", "centralized": "centralized MPC"}
TABLE_I = {2: (38, 19.99), 3: (62, 33.97), 4: (100, 49.86), 5: (100, 66.05)}   # max / average DiMPC iterations


def random_plant(M: int, rng: np.random.Generator) -> tuple[dmpc.LinearNetwork, np.ndarray]:
    """A stable, controllable plant of M two-state, one-input subsystems, and an initial state."""
    while True:
        A = [rng.uniform(-1, 1, (2, 2)) for _ in range(M)]
        B = [[rng.uniform(-1, 1, (2, 1)) for _ in range(M)] for _ in range(M)]
        full_A = np.zeros((2 * M, 2 * M))
        for i in range(M):
            full_A[2 * i:2 * i + 2, 2 * i:2 * i + 2] = A[i]
        full_B = np.block([[B[i][j] for j in range(M)] for i in range(M)])
        controllable = np.hstack([np.linalg.matrix_power(full_A, k) @ full_B for k in range(2 * M)])
        if np.max(np.abs(np.linalg.eigvals(full_A))) < 1 and np.linalg.matrix_rank(controllable) == 2 * M:
            break
    agents, x0 = [], []
    for i in range(M):
        x_low, x_high = rng.uniform(-100, -10, 2), rng.uniform(10, 100, 2)
        u_low, u_high = rng.uniform(-5, -1, 1), rng.uniform(1, 5, 1)
        agents.append(dmpc.LinearAgent(
            name=f"plant_{i + 1}", A=A[i], B=B[i][i],
            couplings={f"plant_{j + 1}": dmpc.Coupling(B=B[i][j]) for j in range(M) if j != i},
            Q=np.eye(2), R=np.eye(1), state_constraint=dmpc.PolytopicConstraint.box(x_low, x_high),
            input_constraint=dmpc.PolytopicConstraint.box(u_low, u_high)))
        x0.append(rng.uniform(x_low / 2, x_high / 2).tolist())
    return dmpc.LinearNetwork(agents, sample_time=1.0, time="discrete"), x0


def feasible_plant(M: int, rng: np.random.Generator, steps: int) -> dmpc.Scenario:
    """A random plant and x(0) from which centralized MPC keeps every limit (x(0) redrawn until it does: some
    states half-way to a limit cannot be held inside it with N = 3)."""
    network, x0 = random_plant(M, rng)
    for _ in range(100):
        scenario = scenario_of(network, x0, steps)
        run = dmpc.simulate(scenario, "centralized")
        if not run.failures()["failed_steps"] and float(np.max(run.violation)) == 0.0:
            return scenario
        boxes = [a.state_constraint.bounding_box(2) for a in network.agents]
        x0 = [rng.uniform(low / 2, high / 2).tolist() for low, high in boxes]
    raise RuntimeError(f"no admissible x(0) found for a random plant with M = {M}")


def scenario_of(network, x0, steps: int, wegstein: bool = False) -> dmpc.Scenario:
    return dmpc.scenario(network, name="random_plant", controller={
        "algorithm": "explicit_facet", "horizon": 3, "max_iterations": 100, "tolerance": 1e-8,
        "explicit": {"wegstein": wegstein}}, simulation={"steps": steps, "initial_state": x0})


def with_wegstein(scenario: dmpc.Scenario) -> dmpc.Scenario:
    return with_explicit(scenario, wegstein=True)


def with_explicit(scenario: dmpc.Scenario, **settings) -> dmpc.Scenario:
    """The scenario with controller.explicit settings changed (the same laws: they do not enter the mpQPs)."""
    from dmpc_ros.scenarios import parse_scenario
    from dmpc_ros.scenarios.yaml_file import read_yaml

    if isinstance(scenario.model, dmpc.LinearNetwork) and scenario.name == "random_plant":
        data = {"model": scenario.model, **scenario.sections}
    else:
        data = read_yaml(Path(scenario.source))
    data["controller"] = dict(data["controller"], explicit=dict(data["controller"].get("explicit") or {}, **settings))
    return parse_scenario(data, scenario.source)


def step_times(result) -> np.ndarray:
    """Per step: every agent's whole calls summed (one core) [s]."""
    return np.array([sum(sum(calls) for calls in step) for step in result.agent_call_times])


def best_of(scenario: dmpc.Scenario, algorithm: str, repeats: int):
    """The run with the smallest mean step time of `repeats` identical runs (timer noise only adds); "wegstein" is
    explicit_iterative with controller.explicit.wegstein."""
    if algorithm == "wegstein":
        scenario, algorithm = with_wegstein(scenario), "explicit_iterative"
    runs = [dmpc.simulate(scenario, algorithm) for _ in range(repeats)]
    return min(runs, key=lambda r: float(np.mean(step_times(r))))


def evaluate(scenario: dmpc.Scenario, repeats: int) -> dict:
    """Offline build, then every variant and the centralized MPC in closed loop, on one plant."""
    started = time.perf_counter()
    solutions = build(scenario.design(with_laws=False), log=lambda line: None)
    row = {"regions": sum(len(s.regions) for s in solutions), "offline": time.perf_counter() - started,
           "mpqp": sum(s.build_time for s in solutions), "facets": sum(s.adjacency_time for s in solutions),
           "location": point_location(scenario, repeats)}
    results = {a: best_of(scenario, a, repeats) for a in VARIANTS + ("centralized",)}
    reference, optimum = results["jacobi"], results["centralized"]
    for name, result in results.items():
        row[name] = {"times": step_times(result), "iterations": result.iterations.copy(),
                     "error": float(np.max(np.abs(result.u - reference.u))),
                     "optimum_error": float(np.max(np.abs(result.u - optimum.u))),
                     "fallback_steps": int(np.sum(np.any(result.counter("iterative_fallbacks") > 0, axis=1))),
                     **{name: int(result.counter(name).sum())
                        for name in ("iterative_fallbacks", "full_searches", "qp_fallbacks")}}
    return row


def point_location(scenario: dmpc.Scenario, repeats: int) -> dict:
    """I-mpDiMPC's law evaluations in closed loop (point location plus the affine law, per call) with the scan of
    every region and with the walk from the last region: median [µs]."""
    times = {}
    for method in ("scan", "walk"):
        run = best_of(with_explicit(scenario, point_location=method), "explicit_iterative", repeats)
        times[method] = float(np.median([t for step in run.agent_solve_times for agent in step for t in agent]))
    return times


def converged(name: str, entry: dict, max_iterations: int) -> float:
    """Share of steps that reached the fixed point: iterative schemes before p_max, iteration-free ones by the region
    search itself (no iterative fallback)."""
    if name in ("explicit_iteration_free", "explicit_facet"):
        return 1.0 - entry["fallback_steps"] / entry["times"].size
    return float(np.mean(entry["iterations"] < max_iterations))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plants", type=int, nargs=4, default=[20, 20, 10, 5], metavar=("M2", "M3", "M4", "M5"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; the fastest counts")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent))
    args = parser.parse_args(argv)
    os.environ["DMPC_EXPLICIT_CACHE"] = tempfile.mkdtemp(prefix="dmpc-explicit-bench-")
    output = Path(args.output)

    paper = dmpc.load("facet_two_plants")
    row = evaluate(paper, args.repeats)
    print(f"## The paper's M = 2 plant (config/facet_two_plants.yaml, {paper.steps} steps)\n")
    regions = [len(s.regions) for s in build(paper.design(with_laws=False), log=lambda line: None)]
    print(f"regions per controller: {regions}; offline {row['offline']:.2f} s (mpQP {row['mpqp']:.2f} s, facets "
          f"{row['facets']:.2f} s); DiMPC iterations mean {row['jacobi']['iterations'].mean():.2f}, max "
          f"{row['jacobi']['iterations'].max()}\n")
    print("| variant | time per step median / mean [µs] | max |u − u_DiMPC| | iterations mean |")
    print("|---|---|---|---|")
    for name in VARIANTS + ("centralized",):
        e = row[name]
        print(f"| {LABELS[name]} | {1e6 * np.median(e['times']):.0f} / {1e6 * np.mean(e['times']):.0f} | "
              f"{e['error']:.2g} | {e['iterations'].mean():.2f} |")

    paper_plot(paper, output)
    rng = np.random.default_rng(args.seed)
    rows: dict[int, list[dict]] = {}
    for M, count in zip((2, 3, 4, 5), args.plants):
        rows[M] = []
        for k in range(count):
            rows[M].append(evaluate(feasible_plant(M, rng, args.steps), args.repeats))
            print(f"  M = {M}: plant {k + 1}/{count} ({rows[M][-1]['regions']} regions, "
                  f"{rows[M][-1]['offline']:.1f} s offline)", file=sys.stderr, flush=True)
        with (output / "explicit_partial.md").open("w") as partial, contextlib.redirect_stdout(partial):
            tables(rows, args)   # what is done so far, in case a long M = 5 run is stopped
    means = tables(rows, args)
    if any(rows.values()):
        plot(rows, means, output)
    return 0


def tables(rows: dict[int, list[dict]], args: argparse.Namespace) -> dict[str, list[float]]:
    """The random-plant tables (printed) and each variant's mean step time per M."""
    print(f"\n## Random plants ({args.steps} steps each, seed {args.seed})\n")
    print("| M | plants | DiMPC iterations max / avg (Table I) | regions mean / max | offline mean / max [s] "
          "(mpQP + facets) |")
    print("|---|---|---|---|---|")
    for M, entries in rows.items():
        if not entries:
            continue
        its = np.concatenate([e["jacobi"]["iterations"] for e in entries])
        per_plant_max = [e["jacobi"]["iterations"].max() for e in entries]
        regions = [e["regions"] for e in entries]
        offline = [e["offline"] for e in entries]
        print(f"| {M} | {len(entries)} | {max(per_plant_max)} / {its.mean():.2f} ({TABLE_I[M][0]} / {TABLE_I[M][1]}) "
              f"| {np.mean(regions):.0f} / {max(regions)} | {np.mean(offline):.1f} / {max(offline):.1f} "
              f"({np.mean([e['mpqp'] for e in entries]):.1f} + {np.mean([e['facets'] for e in entries]):.1f}) |")
    print("\n| M | variant | converged steps | max |u − u_DiMPC| | max |u − u_centralized| | full searches / "
          "iterative fallbacks / online QPs | time per step median / mean [µs] | mean vs DiMPC |")
    print("|---|---|---|---|---|---|---|---|")
    means: dict[str, list[float]] = {name: [] for name in VARIANTS + ("centralized",)}
    for M, entries in rows.items():
        if not entries:
            continue
        dimpc = np.mean(np.concatenate([e["jacobi"]["times"] for e in entries]))
        for name in VARIANTS + ("centralized",):
            times = np.concatenate([e[name]["times"] for e in entries])
            means[name].append(float(np.mean(times)))
            rate = np.mean([converged(name, e[name], 100) for e in entries])
            counts = [sum(e[name][c] for e in entries) for c in ("full_searches", "iterative_fallbacks",
                                                                 "qp_fallbacks")]
            print(f"| {M} | {LABELS[name]} | {100 * rate:.1f} % | {max(e[name]['error'] for e in entries):.2g} | "
                  f"{max(e[name]['optimum_error'] for e in entries):.2g} | "
                  f"{' / '.join(map(str, counts))} | {1e6 * np.median(times):.0f} / {1e6 * np.mean(times):.0f} | "
                  f"{dimpc / np.mean(times):.1f}× |")
    print("\n| M | I-mpDiMPC law evaluation, scan: median [µs] | walk from the last region: median [µs] | regions "
          "per law (mean) |")
    print("|---|---|---|---|")
    for M, entries in rows.items():
        if entries:
            loc = {key: np.median([e["location"][key] for e in entries]) for key in ("scan", "walk")}
            print(f"| {M} | {1e6 * loc['scan']:.1f} | {1e6 * loc['walk']:.1f} | "
                  f"{np.mean([e['regions'] for e in entries]) / M:.0f} |")
    print("\n| M | FACET time reduction vs DiMPC (paper 98 %) | vs IF-mpDiMPC (paper 42 %) | FACET vs IF |")
    print("|---|---|---|---|")
    for index, M in enumerate(m for m, entries in rows.items() if entries):
        facet, dimpc, free = means["explicit_facet"][index], means["jacobi"][index], \
            means["explicit_iteration_free"][index]
        print(f"| {M} | {100 * (1 - facet / dimpc):.1f} % ({dimpc / facet:.0f}×) | {100 * (1 - facet / free):.1f} % | "
              f"{free / facet:.2f}× |")

    return means


def paper_plot(paper: dmpc.Scenario, output: Path) -> None:
    """explicit_paper.png: the paper's plant under DiMPC, I-mp, IF and FACET (outputs y_i = sum of x_i as in the
    paper's Fig. 3, inputs with their limits): the four lie on top of each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    system = paper.plant()
    figure, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    for name, style in zip(("jacobi", "explicit_iterative", "explicit_iteration_free", "explicit_facet"),
                           ("-", "--", ":", "-.")):
        result = dmpc.simulate(paper, name)
        for i in range(2):
            axes[0, i].plot(result.t, result.x[:, system.state_slice(i)].sum(axis=1), style, label=LABELS[name])
            axes[1, i].step(result.t[:-1], result.u[:, i], style, where="post", label=LABELS[name])
    for i, sub in enumerate(system.subsystems):
        low, high = sub.input_constraint.bounding_box(1)
        for bound in (low[0], high[0]):
            axes[1, i].axhline(bound, color="k", linewidth=0.8, linestyle="--")
        axes[0, i].set_title(f"subsystem {i + 1}: y{i + 1} = x{i + 1}1 + x{i + 1}2")
        axes[1, i].set_title(f"u{i + 1} with its limits (dashed)")
        axes[1, i].set_xlabel("t [s]")
    axes[0, 0].legend()
    figure.tight_layout()
    figure.savefig(output / "explicit_paper.png", dpi=120)


def plot(rows: dict, means: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [M for M, entries in rows.items() if entries]
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, values in means.items():
        axis.semilogy(sizes, 1e6 * np.asarray(values), marker="o", label=LABELS[name])
    axis.set_xlabel("subsystems M")
    axis.set_ylabel("mean time per step, one core [µs]")
    axis.set_xticks(sizes)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(output / "explicit_time.png", dpi=120)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.boxplot([[e["regions"] for e in rows[M]] for M in sizes], tick_labels=[str(M) for M in sizes])
    axis.set_yscale("log")
    axis.set_xlabel("subsystems M")
    axis.set_ylabel("critical regions, all controllers")
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(output / "explicit_regions.png", dpi=120)


if __name__ == "__main__":
    sys.exit(main())
