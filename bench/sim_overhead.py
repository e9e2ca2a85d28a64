"""Benchmark: the in-process simulator's own cost (bookkeeping around the agents' calls) on the peer chain.

Runs `dmpc sim`'s closed loop (sim.simulate) of the chain of M masses (bench/scaling.py's problem, N = 20) for a few
steps per scheme, each case in its own process with one BLAS thread, and prints the process CPU time of the closed
loop, the agents' own call time (Σ of their begin_step/iterate calls) and the rest (the negotiators, the plan books,
the simulated network): what the simulator adds around the agents. Compare two commits by running it under each
(PYTHONPATH=<checkout>/dmpc_ros); the closed-loop cost is printed to the last bit so that the runs can be checked
to be the same.

    python bench/sim_overhead.py [--sizes 16 64] [--schemes gauss_seidel jacobi] [--steps 6]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(M: int, scheme: str, steps: int) -> dict:
    import timing
    from scaling import chain_design

    from dmpc_ros.sim import SimulationSettings, simulate

    design, plant, x0, stopping = chain_design(M)
    design.lqr
    before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    result = simulate(design, plant, x0, SimulationSettings(scheme, steps, stopping))
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - before
    calls = float(sum(timing.per_step_one_core(result)))
    return {"M": M, "scheme": scheme, "cpu": cpu, "calls": calls, "cost": repr(result.closed_loop_cost)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--schemes", nargs="+", default=["gauss_seidel", "jacobi"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], int(args.child[2]))))
        return 0
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(HERE)])))
    print("| M | scheme | closed loop CPU [s] | agents' calls [s] | simulator's rest [s] | closed-loop cost |")
    print("|---|---|---|---|---|---|")
    for M in args.sizes:
        for scheme in args.schemes:
            done = subprocess.run([sys.executable, __file__, "--child", str(M), scheme, str(args.steps)], env=env,
                                  capture_output=True, text=True)
            if done.returncode:
                print(f"| {M} | {scheme} | failed: {done.stderr.strip().splitlines()[-1:]} |")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {M} | {scheme} | {r['cpu']:.2f} | {r['calls']:.2f} | {r['cpu'] - r['calls']:.2f} | {r['cost']} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
