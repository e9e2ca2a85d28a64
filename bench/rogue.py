"""Benchmark: a rogue on the team's topics during `dmpc run mass_spring` (lock-step), authentication off and on.

The rogue joins the run's ROS domain and reacts to the genuine traffic as soon as it sees it:
- each genuine ControlInput of agent 1 (step k) is followed at once by a forged one of 50 N (the limit is 1 N) for
  the same step and by a replay of the genuine message itself; and FLOOD_RATE times a second, a forged input of
  FORGED_FORCE (inside the limit, pushing mass 1 away from rest) for the plant's current step (from agent 1's
  state topic): in lock-step the plant applies the input it holds last when the team's last input arrives;
- each genuine plan of agent 2 (step k, iteration p) is followed at once by a spoofed one of the same step and
  iteration flagged final (its states moved by SPOOF_OFFSET m), and by a replay of the genuine plan.
Forgeries carry agent's sniffed key id, the next nonce and a random 32-byte MAC (what a rogue without the key can do).
Counted from the run: steps whose applied input (plant.npz) is a forged value; inputs the plant refused
(authentication, by reason; range: outside U_i, sim/plant_inputs.py); plans the listeners of agent 2 refused
(AgentStatus.messages_rejected in the bag; the statuses of the last step may be missing) and why (summary.json);
the closed-loop cost and the deviation from `dmpc sim` without a rogue (a lock-step run equals it bit for bit).
Usage: python bench/rogue.py [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
import rclpy.executors
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rich.console import Console
from rich.table import Table

from dmpc_ros.auth import create_keystore
from dmpc_ros.ros.qos import CONTROL_QOS, STATE_QOS, plan_qos
from dmpc_ros_msgs.msg import ControlInput, PredictedTrajectory, SubsystemState
from side_run import DOMAIN, run_beside

SCENARIO = "mass_spring"
AGENTS = 4
VICTIM_INPUT, VICTIM_PLAN = 1, 2     # the agent whose inputs are forged, the agent whose plans are spoofed
BIG_FORCE = 50.0                     # [N], outside U_1 = [-1, 1] N
FORGED_FORCE = -0.987654             # [N], inside U_1; mass 1 starts at -0.5 m, this pushes it further out
FLOOD_RATE = 200.0                   # [1/s] forged in-range inputs for the plant's current step
SPOOF_OFFSET = 0.3                   # [m] added to every position of a spoofed plan
ROGUE = "rogue"                      # header.frame_id of the rogue's messages (so it can tell them from the team's)


@dataclass
class Rogue:
    """What the rogue sent."""
    big: int = 0
    forged: int = 0
    input_replays: int = 0
    spoofed: int = 0
    plan_replays: int = 0
    errors: list = field(default_factory=list)


def forge(message, rogue_fields: dict) -> None:
    """Make `message` look signed: the sniffed key id, the next nonce, a random MAC; mark it as the rogue's."""
    for name, value in rogue_fields.items():
        setattr(message, name, value)
    message.header.frame_id = ROGUE
    message.mac = secrets.token_bytes(32) if message.key_id else b""


def attack(domain_id: int, stop: threading.Event, sent: Rogue) -> None:
    """The rogue: react to agent 1's inputs and agent 2's plans on /dmpc until `stop`."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node("rogue", namespace="/dmpc", context=context)
    control = node.create_publisher(ControlInput, f"agent_{VICTIM_INPUT}/control", CONTROL_QOS)
    plans = node.create_publisher(PredictedTrajectory, f"agent_{VICTIM_PLAN}/plan", plan_qos("reliable"))
    seen: set = set()   # genuine messages reacted to (the rogue hears its own replays too)

    def first_time(message, kind: str) -> bool:
        key = (kind, message.step, getattr(message, "iteration", 0), message.nonce, message.header.frame_id)
        if message.header.frame_id == ROGUE or key in seen:
            return False
        seen.add(key)
        return True

    step, sniffed = [-1], {"key_id": "", "nonce": 0}   # the plant's current step; agent 1's last key id and nonce

    def on_state(message: SubsystemState) -> None:
        step[0] = message.step

    def flood() -> None:   # in lock-step the input held last before the plant steps is applied: send many
        if step[0] >= 0:
            forged = ControlInput(agent_id=VICTIM_INPUT, step=step[0], input=[FORGED_FORCE])
            forge(forged, {"key_id": sniffed["key_id"], "nonce": sniffed["nonce"] + 1})
            control.publish(forged)
            sent.forged += 1

    def on_input(message: ControlInput) -> None:
        if not first_time(message, "input"):
            return
        sniffed.update(key_id=message.key_id, nonce=message.nonce)
        forged = ControlInput(agent_id=VICTIM_INPUT, step=message.step, input=[BIG_FORCE])
        forge(forged, {"key_id": message.key_id, "nonce": message.nonce + 1})
        control.publish(forged)
        sent.big += 1
        control.publish(message)   # the genuine message once more: a replay
        sent.input_replays += 1

    def on_plan(message: PredictedTrajectory) -> None:
        if not first_time(message, "plan"):
            return
        states = np.array(message.states, float).reshape(message.horizon + 1, message.state_dim)
        states[:, 0] += SPOOF_OFFSET
        spoof = PredictedTrajectory(
            agent_id=message.agent_id, step=message.step, iteration=message.iteration, sample_time=message.sample_time,
            horizon=message.horizon, state_dim=message.state_dim, input_dim=message.input_dim,
            states=states.ravel().tolist(), inputs=list(message.inputs), local_cost=message.local_cost, feasible=True,
            converged=True, final=True)
        forge(spoof, {"key_id": message.key_id, "nonce": message.nonce + 1})
        plans.publish(spoof)
        plans.publish(message)   # a replay
        sent.spoofed += 1
        sent.plan_replays += 1

    node.create_subscription(ControlInput, f"agent_{VICTIM_INPUT}/control", on_input, CONTROL_QOS)
    node.create_subscription(SubsystemState, f"agent_{VICTIM_INPUT}/state", on_state, STATE_QOS)
    node.create_timer(1.0 / FLOOD_RATE, flood)
    node.create_subscription(PredictedTrajectory, f"agent_{VICTIM_PLAN}/plan", on_plan, plan_qos("reliable"))
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.01)
    except Exception as error:   # the run's end took the participants down
        sent.errors.append(repr(error))
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


@dataclass
class RogueRun:
    authenticate: bool
    sent: Rogue
    x: np.ndarray
    u: np.ndarray
    summary: dict
    rejected_plans: int        # AgentStatus.messages_rejected summed over the listeners of agent 2's plans
    listeners: int             # agents that listen to agent 2's plans
    step_median: float         # [s] wall time per lock-step control step (plant.npz wall_time)
    returncode: int
    output: str

    @property
    def forged_applied(self) -> int:
        return int(np.sum(self.u[:, VICTIM_INPUT] == FORGED_FORCE))

    @property
    def big_applied(self) -> int:
        return int(np.sum(self.u[:, VICTIM_INPUT] == BIG_FORCE))

    @property
    def inputs_refused_auth(self) -> dict:
        return (self.summary.get("authentication") or {}).get("inputs_refused", {})

    @property
    def plans_refused_auth(self) -> dict:
        return (self.summary.get("authentication") or {}).get("plans_refused", {})


def rogue_run(authenticate: bool, steps: int, output: Path, timeout: float = 600.0) -> RogueRun:
    """`dmpc run mass_spring --steps steps` (with a fresh keystore when `authenticate`) under the rogue."""
    command = [sys.executable, "-m", "dmpc_ros.cli", "run", SCENARIO, "--steps", str(steps), "--output", str(output),
               "--no-reference"]
    if authenticate:
        command += ["--keystore", str(create_keystore(output.parent / f"{output.name}-keys", AGENTS).directory)]
    sent = Rogue()
    code, text = run_beside(command, lambda domain, stop: attack(domain, stop, sent), timeout, ready=DOMAIN)
    plant = np.load(output / "plant.npz")
    summary = json.loads((output / "summary.json").read_text()) if (output / "summary.json").exists() else {}
    listeners = [int(i) for i, heard in re.findall(r"configured agent (\d+) .*listens to \[([\d, ]*)\]", text)
                 if str(VICTIM_PLAN) in heard.replace(" ", "").split(",")]
    rejected = 0
    with (output / "run.mcap").open("rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        for _, _, _, status in reader.iter_decoded_messages(topics=[f"/dmpc/agent_{i}/status" for i in listeners]):
            rejected += status.messages_rejected
    return RogueRun(authenticate, sent, plant["x"], plant["u"], summary, rejected, len(listeners),
                    float(np.median(np.diff(plant["wall_time"]))), code, text)


def clean_run(steps: int):
    """`dmpc sim` without a rogue (what the lock-step ROS run reproduces bit for bit)."""
    from dmpc_ros import load, simulate

    scenario = load(SCENARIO).with_overrides(steps=steps)
    return simulate(scenario, scenario.controller.algorithm, compare_centralized=False)


def reasons(counts: dict) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items() if n) or "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    clean = clean_run(args.steps)
    with tempfile.TemporaryDirectory() as folder:
        runs = [rogue_run(on, args.steps, Path(folder) / f"auth_{'on' if on else 'off'}") for on in (False, True)]
    table = Table(title=f"{SCENARIO} over ROS, lock-step, {args.steps} steps, a rogue on agent_{VICTIM_INPUT}/control "
                        f"and agent_{VICTIM_PLAN}/plan")
    table.add_column("")
    for run in runs:
        table.add_column(f"authentication {'on' if run.authenticate else 'off'}", justify="right")

    def row(name: str, cell) -> None:
        table.add_row(name, *(cell(run) for run in runs))

    row("run exit code / complete", lambda r: f"{r.returncode} / {r.summary.get('complete')}")
    row(f"forged {BIG_FORCE:g} N inputs sent / steps applied", lambda r: f"{r.sent.big} / {r.big_applied}")
    row(f"forged {FORGED_FORCE:g} N inputs sent / steps applied", lambda r: f"{r.sent.forged} / {r.forged_applied}")
    row("replayed inputs sent", lambda r: str(r.sent.input_replays))
    row("inputs refused: authentication", lambda r: reasons(r.inputs_refused_auth))
    row("inputs refused: outside U (range)", lambda r: str(r.summary.get("refused_inputs")))
    row("spoofed final plans sent / replayed plans sent", lambda r: f"{r.sent.spoofed} / {r.sent.plan_replays}")
    row(f"plans refused by agent {VICTIM_PLAN}'s listeners", lambda r: f"{r.rejected_plans} ({r.listeners} listeners)")
    row("plans refused: authentication", lambda r: reasons(r.plans_refused_auth))
    row(f"closed-loop cost (dmpc sim, no rogue: {clean.closed_loop_cost:.5g})",
        lambda r: f"{r.summary.get('closed_loop_cost', float('nan')):.5g}")
    row("wall time per step, median [ms]", lambda r: f"{1e3 * r.step_median:.0f}")
    row("max |x − x of dmpc sim, no rogue|", lambda r: f"{np.max(np.abs(r.x - clean.x[: r.x.shape[0]])):.3g}")
    Console().print(table)
    for run in runs:
        if run.sent.errors:
            print(f"rogue ({'on' if run.authenticate else 'off'}): {run.sent.errors[0]}")


if __name__ == "__main__":
    main()
