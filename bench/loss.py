"""Robust to real loss, on one host: `dmpc run` on a loopback that loses packets, beside the `dmpc sim` prediction.

For each scenario (tube mode: mass_spring_robust; nominal DMPC: mass_spring), time keeping (lock_step, real_time),
plans' QoS (reliable, best_effort) and loss rate (0, 10, 30 %), one ROS run inside a network namespace of its own
whose `lo` drops that share of the packets (bench/lossy_loopback.py: iptables statistic match, no shared memory), and
one `dmpc sim` run with the same loss on every link between agents (each agent a host of its own; sim/network.py,
loss_model = the QoS: best_effort loses the plan, reliable delays it by retransmit_delay per lost try). Printed per
row, ROS / sim: steps with a constraint violated, inputs outside U (applied or refused by the plant), steps with a
NaN input, the closed-loop cost against the same row's 0 % run, plans missing (substituted after a deadline) and late
(arrived after that), the longest outage (steps a neighbour's plan was missing in a row) against the tube bound D,
and for ROS the wall-clock step period (median / max, from the states' arrival in the bag), the plant's late inputs
and the share of AgentStatus messages the recorder got (its best-effort subscription loses them too, so ROS's
missing / late / outage counts are from that share).

Harsher than the multi-host case: on `lo` every packet is exposed (plant ↔ agent, discovery, lifecycle, recorder),
not only the plans between hosts. Needs root, `ip netns` and iptables (installed by apt-get when missing).

    python bench/loss.py [--steps 15] [--scenarios mass_spring_robust mass_spring] [--losses 0 0.1 0.3]
                         [--modes lock_step real_time] [--qos reliable best_effort] [--late-inputs plan hold]
--late-inputs: what the plant applies for a late input (plant parameter late_input: the agent's shifted plan, or the
last input held); "fallback steps" counts the steps on the shifted plan.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lossy_loopback import ENVIRONMENT, dropped_packets, in_namespace, lossy_loopback, unavailable  # noqa: E402

LOCK_STEP_TIMEOUT = 0.2   # [s] iteration timeout of the lock-step runs (ROS wall clock, sim simulated time)
TOLERANCE = 1e-6          # a constraint violated by more than this counts [constraint units]


def metrics(result, scenario) -> dict:
    """What the table shows of one run (ROS or sim)."""
    from dmpc_ros.coordination.negotiator import OUTAGE_COUNTER

    plant = scenario.plant()
    u = np.asarray(result.u, float)
    outside = int(result.refused_inputs)
    for k in range(u.shape[0]):
        for i, sub in enumerate(plant.subsystems):
            u_i = u[k, plant.input_slice(i)]
            outside += bool(np.all(np.isfinite(u_i)) and sub.input_constraint.violation(u_i) > TOLERANCE)
    outage = result.counters.get(OUTAGE_COUNTER)
    unheard = longest = None
    if outage is not None:   # outage k + 1 at step k: a neighbour never heard from since the start (bring-up)
        k = np.arange(outage.shape[0])[:, None]
        never = outage == k + 1
        unheard = int(np.max(np.where(never, k + 1, 0), initial=0))
        longest = int(np.max(np.where(never, 0, outage), initial=0))
    return {"violations": int(np.sum(np.asarray(result.violation) > TOLERANCE)), "outside_U": outside,
            "nan": int(np.sum(~np.all(np.isfinite(u), axis=1))), "cost": float(np.nansum(result.stage_cost)),
            "missing": int(result.messages_missing), "late": int(result.messages_late),
            "outage": longest, "unheard": unheard, "steps": int(u.shape[0]),
            "late_inputs": int(result.late_inputs)}


def bag_figures(bag: Path, agents: int, steps: int) -> dict:
    """Step period (median, max) [s] from agent 0's state messages' arrival, and the share of statuses recorded."""
    from dmpc_ros.bag import read_bag

    contents = read_bag(bag)
    topics = {c.id: c.topic for c in contents.channels.values()}
    arrivals = [m.log_time for m in contents.messages if topics[m.channel_id].endswith("agent_0/state")]
    statuses = sum(topics[m.channel_id].endswith("/status") for m in contents.messages)
    periods = np.diff(np.asarray(arrivals, float)) * 1e-9
    return {"period_median": float(np.median(periods)) if periods.size else None,
            "period_max": float(np.max(periods)) if periods.size else None,
            "statuses": statuses / max(agents * steps, 1)}


def one_ros_run(spec: dict) -> dict:
    """Inside the namespace: `dmpc run` of spec's scenario, its metrics as JSON."""
    from dmpc_ros.ros.runner import run_scenario
    from dmpc_ros.scenarios.source import load_source

    scenario = load_source(spec["scenario"]).with_overrides(steps=spec["steps"])
    out = Path(spec["output"])
    started = time.monotonic()
    timeout = LOCK_STEP_TIMEOUT if spec["mode"] == "lock_step" else scenario.sample_time / 4
    outcome = run_scenario(scenario, spec["scenario"], out, mode=spec["mode"], iteration_timeout=timeout, echo=True,
                           timeout=spec["timeout"], overrides={"steps": spec["steps"]},
                           settings={"plan_qos": spec["qos"], **spec.get("settings", {})})
    figures = {"code": outcome.code, "message": outcome.message, "wall": time.monotonic() - started}
    if outcome.result is not None:
        figures.update(metrics(outcome.result, scenario))
        if (out / "run.mcap").is_file():
            figures.update(bag_figures(out / "run.mcap", scenario.num_agents, spec["steps"]))
        if (out / "plant.npz").is_file():
            counts = json.loads(str(np.load(out / "plant.npz")["plant_inputs"]))
            figures["fallback_steps"] = int(sum(counts.get("plan_fallback_steps", [])))
    (out / "loss_figures.json").write_text(json.dumps(figures))
    return figures


def ros_run(scenario: str, mode: str, qos: str, loss: float, steps: int, scratch: Path, timeout: float = 150.0,
            settings: dict | None = None) -> dict:
    """One `dmpc run` in a namespace whose lo loses `loss` of the packets (this script again, with --one)."""
    settings = settings or {}
    spec = {"scenario": scenario, "mode": mode, "qos": qos, "steps": steps, "timeout": timeout, "settings": settings,
            "output": str(scratch / f"{scenario}-{mode}-{qos}-{loss:g}-{settings.get('late_input', 'plan')}")}
    with lossy_loopback(loss) as namespace:
        done = subprocess.run(in_namespace(namespace, [sys.executable, __file__, "--one", json.dumps(spec)]),
                              env={**os.environ, **ENVIRONMENT}, capture_output=True, text=True,
                              timeout=timeout + 60)
        dropped = dropped_packets(namespace)
    figures = Path(spec["output"]) / "loss_figures.json"
    (Path(spec["output"]) / "run.log").write_text(done.stdout + done.stderr)
    if not figures.is_file():
        return {"code": done.returncode or 1, "message": (done.stderr or done.stdout).strip()[-300:],
                "dropped": dropped}
    result = json.loads(figures.read_text())
    if result.get("code"):   # why: the lines of the run's log that say what failed
        said = [line for line in (done.stdout + done.stderr).splitlines() if "fail" in line or "error" in line.lower()]
        result["message"] = f"{result.get('message', '')}: {' | '.join(said[-3:])}"[:400]
    return {**result, "dropped": dropped}


def sim_run(scenario_name: str, mode: str, qos: str, loss: float, steps: int) -> dict:
    """`dmpc sim` with `loss` on every link between agents (each a host of its own), modelled for `qos`."""
    from dmpc_ros.api import simulate
    from dmpc_ros.scenarios.source import load_source

    scenario = load_source(scenario_name).with_overrides(steps=steps, link_loss=loss, loss_model=qos)
    timeout = LOCK_STEP_TIMEOUT if mode == "lock_step" else scenario.sample_time / 4
    return metrics(simulate(scenario, iteration_timeout=timeout), scenario)


def cell(ros: dict, sim: dict, key: str, form: str = "{}") -> str:
    def one(value) -> str:
        return "—" if value is None else form.format(value)
    return f"{one(ros.get(key))} / {one(sim.get(key))}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--scenarios", nargs="+", default=["mass_spring_robust", "mass_spring"])
    parser.add_argument("--losses", nargs="+", type=float, default=[0.0, 0.1, 0.3])
    parser.add_argument("--modes", nargs="+", default=["lock_step", "real_time"])
    parser.add_argument("--qos", nargs="+", default=["reliable", "best_effort"])
    parser.add_argument("--late-inputs", nargs="+", default=["plan"], choices=("plan", "hold"))
    parser.add_argument("--repeats", type=int, default=1, help="ROS runs per row (a row per run)")
    parser.add_argument("--keep", help="keep the runs' folders (run.log, run.mcap, summary) here")
    args = parser.parse_args()
    if args.one:
        one_ros_run(json.loads(args.one))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))   # namespaces go in the finally
    reason = unavailable(install=True)
    if reason:
        print(f"bench/loss.py: skipped: {reason}")
        return 0
    from dmpc_ros.scenarios.source import load_source

    header = ("| scenario | mode | plan QoS | late input | loss | violations | outside U | NaN | cost vs 0 % | missing "
              "| late | longest outage (D) | never heard [steps] | step period median / max [ms] | late inputs | "
              "fallback steps | statuses recorded | dropped pkts |")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dmpc_loss_") as temporary:
        scratch = args.keep or temporary
        for name in args.scenarios:
            scenario = load_source(name)
            compatibility = None if scenario.tubes is None else scenario.tubes.compatibility
            D = None if compatibility is None else compatibility.missed_steps
            for mode, qos, late, repeat in ((m, q, li, r) for m in args.modes for q in args.qos
                                            for li in args.late_inputs for r in range(args.repeats)):
                    base: dict = {}
                    for loss in args.losses:
                        ros = ros_run(name, mode, qos, loss, args.steps, Path(scratch) / f"r{repeat}",
                                      settings={"late_input": late})
                        sim = sim_run(name, mode, qos, loss, args.steps)
                        if loss == args.losses[0]:
                            base = {"ros": ros.get("cost"), "sim": sim.get("cost")}

                        def increase(cost, reference):
                            return None if cost is None or not reference else 100 * (cost / reference - 1)
                        ros["increase"], sim["increase"] = increase(ros.get("cost"), base["ros"]), \
                            increase(sim["cost"], base["sim"])
                        if ros.get("code"):
                            print(f"| {name} | {mode} | {qos} | {late} | {loss:.0%} | run failed ({ros['code']}): "
                                  f"{ros.get('message', '')[:120]} |", flush=True)
                            continue
                        period = "—" if ros.get("period_median") is None else \
                            f"{1e3 * ros['period_median']:.0f} / {1e3 * ros['period_max']:.0f}"
                        print(f"| {name} | {mode} | {qos} | {late} | {loss:.0%} | {cell(ros, sim, 'violations')} | "
                              f"{cell(ros, sim, 'outside_U')} | {cell(ros, sim, 'nan')} | "
                              f"{cell(ros, sim, 'increase', '{:+.1f} %')} | {cell(ros, sim, 'missing')} | "
                              f"{cell(ros, sim, 'late')} | {cell(ros, sim, 'outage')} ({D if D is not None else '—'})"
                              f" | {cell(ros, sim, 'unheard')} | {period} | {ros.get('late_inputs', '—')} | "
                              f"{ros.get('fallback_steps', '—')} | {ros.get('statuses', 0):.0%} | "
                              f"{ros.get('dropped', 0)} |", flush=True)
    print(f"\n{args.steps} steps per run; cells ROS / sim; total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
