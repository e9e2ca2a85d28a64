"""`dmpc run <scenario>`: the scenario's nodes as separate OS processes, exactly as `ros2 launch` would start them.

Expands the scenario into node specs (as the launch files do), writes one parameter file, starts plant, agents and
lifecycle manager each with `--ros-args`, forwards their output with a name prefix, records every plan/state/input/
status to an MCAP bag, prints the steps done when stdout is no terminal, and stops everything cleanly on Ctrl-C, at
scenario end (the plant exits) or when a node dies (exit non-zero naming it). Results follow the `dmpc sim` contract.
`--respawn agents|all` starts a dead node process again after `--respawn-delay` (at most `--respawn-limit` times);
the lifecycle manager brings it up again and the run goes on (issue 28, crash and rejoin).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
import yaml
from rclpy.signals import SignalHandlerOptions

from dmpc_ros_msgs.msg import AgentStatus

from ..bag import gap_lines, gap_summary
from ..progress import piped_step_lines
from ..process_group import STOP_SIGNALS, ProcessGroup, RespawnPolicy, interrupted_code
from ..report import BAG_METADATA, RunBag, plant_trajectory, read_run_bag, result_from_records
from ..scenarios import Scenario
from ..scenarios.csv_series import copy_data_files
from ..scenarios.node_specs import (JOINER_LEAD, KINDS, NodeSpec, host_agents, is_head, joiner_starts, member_count,
                                    node_specs, parameters_file, select_nodes)
from ..scenarios.parameters import DEFAULTS
from ..scenarios.source import is_factory, source_path
from ..sim.results import STRICT_EXIT, SimulationResult
from .environment import lossy_link_environment, reserve_domain_id, ros_environment
from .plant_node import TEAM_GONE_EXIT
from .recorder import Recording, RunRecorder
from .spin import make_executor, spin_once_taking

PLANS_REFUSED, INPUTS_REFUSED = "plans_refused_", "inputs_refused_"   # authentication counts (ros/authentication.py)
DISCOVERY_TIMEOUT = 30.0  # [s] for the recorder to see every node before bring-up starts
BRING_UP_FAILED = 1   # the lifecycle manager's exit code when bring-up failed: a restart would repeat it
TEAM_TIMEOUT = 120.0      # [s] … of a team split across computers (the others may start later), at most --timeout
MODULES = {"agent": "dmpc_ros.ros.agent_node", "plant": "dmpc_ros.ros.plant_node",
           "lifecycle_manager": "dmpc_ros.ros.lifecycle_manager", "agent_container": "dmpc_ros.ros.agent_container"}


@dataclass
class RunOutcome:
    code: int   # 0 ok; 1 bring-up failed / node died / timeout; 3 strict; 128 + signal: interrupted (130: Ctrl-C)
    message: str
    result: SimulationResult | None = None   # also after a failure: the steps done (result.stopped says why)
    team: dict | None = None   # a run with team_changes: the plant's team_changes.json (TeamRun.summary)


class StopRequest:
    """The handler of the stop signals (SIGINT, SIGTERM, SIGHUP) while a run is in progress: it sets `event` and
    keeps the first signal's number. A hang-up also means the terminal is gone: writing to it would fail (EIO) and
    stop the output forwarding, so standard output and error that were a terminal go to /dev/null from then on."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.signum = signal.SIGINT
        self._terminal = [fd for fd in (1, 2) if os.isatty(fd)]

    def __call__(self, signum: int, frame) -> None:
        if not self.event.is_set():
            self.signum = signum
        if signum == signal.SIGHUP and self._terminal:
            null = os.open(os.devnull, os.O_WRONLY)
            for fd in self._terminal:
                os.dup2(null, fd)
            os.close(null)
            self._terminal = []
        self.event.set()

    def reason(self) -> str:
        """The reason of the outcome: "interrupted" (Ctrl-C), "interrupted by SIGTERM", "interrupted by SIGHUP"."""
        return "interrupted" if self.signum == signal.SIGINT else f"interrupted by {signal.Signals(self.signum).name}"


def executable_command(spec: NodeSpec) -> list[str]:
    """lib/dmpc_ros/<executable> of the install (venv or colcon prefix); else the module with this Python."""
    candidates = [Path(sys.prefix) / "lib" / spec.package / spec.executable]
    try:
        from ament_index_python.packages import get_package_prefix
        candidates.append(Path(get_package_prefix(spec.package)) / "lib" / spec.package / spec.executable)
    except Exception:  # not in the ament index: the venv install or the module fallback
        pass
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path)]
    return [sys.executable, "-m", MODULES[spec.executable]]


def run_scenario(scenario: Scenario, source: str | Path, output: Path, mode: str = DEFAULTS["mode"],
                 namespace: str = DEFAULTS["namespace"], domain_id: int | None = None, localhost_only: bool = True,
                 timeout: float = DEFAULTS["timeout"], death_grace: float = DEFAULTS["death_grace"],
                 iteration_timeout: float = DEFAULTS["iteration_timeout"], echo: bool = True,
                 overrides: dict | None = None, agents_per_process: int = DEFAULTS["agents_per_process"],
                 foxglove_port: int | None = None, settings: dict | None = None,
                 recording: Recording = Recording(), authenticate: bool = DEFAULTS["authenticate"],
                 keystore: str = DEFAULTS["keystore"], nodes: str = DEFAULTS["nodes"],
                 peers: tuple[str, ...] = (), repair_period: float = DEFAULTS["repair_period"],
                 respawn: str = DEFAULTS["respawn"], respawn_limit: int = DEFAULTS["respawn_limit"],
                 respawn_delay: float = DEFAULTS["respawn_delay"]) -> RunOutcome:
    """Run `scenario` (already with `overrides` applied) from `source`, its YAML file (copied into the output,
    which the nodes then read) or its Python factory (module:function or file.py:function, which the nodes
    call; a module is imported from the current directory too). `agents_per_process` > 1 hosts that many agent
    nodes in each agent container process. `foxglove_port`: also serve every recorded topic live over the
    Foxglove WebSocket protocol on that loopback port (0: any free one). `settings`: other node parameters of the
    table (the plant's guard), for the nodes that declare them. `recording`: how the recorder subscribes (its
    default was chosen by bench/bag_completeness.py). `authenticate`, `keystore`: require authentication of
    plans and inputs beyond the scenario's security section (scenarios/security.py). `nodes`: the nodes this
    computer runs (node_specs.select_nodes; the others run on other computers of the team, found through `peers`,
    static discovery, in the same `domain_id`); the computer with the lifecycle manager and the plant leads: it
    waits for every node, brings the team up, records and writes the results; the others start their nodes and
    end when these end (run_member). `repair_period`: the heartbeat period of reliable topics when the team is not
    on one computer (environment.lossy_link_environment). `respawn` (none, agents, all), `respawn_limit`,
    `respawn_delay`: which dead node processes of this computer start again, how often, after how long; the nodes
    then keep what they resume from in <output>/resume."""
    policy = RespawnPolicy(respawn, respawn_limit, respawn_delay,
                           final={"lifecycle_manager": (BRING_UP_FAILED,), "plant": (TEAM_GONE_EXIT,)})
    output.mkdir(parents=True, exist_ok=True)
    (output / "plant.npz").unlink(missing_ok=True)   # what the plant writes (partial or whole) is this run's
    reservation = reserve_domain_id(domain_id, exclusive=not peers)
    env = ros_environment(reservation.domain_id, localhost_only, single_blas_thread=mode == "real_time", peers=peers)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    os.environ.pop("ROS_STATIC_PEERS", None)
    os.environ.update({k: env[k] for k in ("ROS_STATIC_PEERS",) if k in env})
    if peers or not localhost_only:   # links that may lose packets: fast repair of reliable topics
        profile = lossy_link_environment(output, repair_period, env)
        env.update(profile)
        os.environ.update(profile)
        if mode == "real_time" and repair_period > 0 and not (settings or {}).get("plan_qos"):
            # measured (bench/faults.py, three hosts, 30 % loss): reliable plans with fast repair kept the longest
            # outage within the tube bound (1 step) and the cost at the loss-free run's; best effort 5 steps, +17 %
            settings = {**(settings or {}), "plan_qos": DEFAULTS["plan_qos"]}   # the table's: reliable
    if is_factory(str(source)):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
    else:
        copy = output / "scenario.yaml"
        shutil.copyfile(source_path(str(source)), copy)
        copy_data_files(Path(source_path(str(source))), output)   # the CSV series it names, at the same paths
        source = copy
    specs = node_specs(scenario, source, namespace, mode, output_file=str(output / "plant.npz"),
                       exit_on_completion=True, iteration_timeout=iteration_timeout, overrides=overrides,
                       settings=settings, authenticate=authenticate, keystore=keystore, respawn=respawn,
                       resume_dir=str(output / "resume") if policy.scope != "none" else "")
    if policy.scope != "none":
        shutil.rmtree(output / "resume", ignore_errors=True)   # what a respawned node resumes from is this run's
    joiners = joiner_starts(scenario)   # team_changes: these agent nodes start during the run
    team = [node.full_name for spec in specs for node in spec.nodes if spec.executable != "lifecycle_manager"]
    specs = select_nodes(specs, nodes)
    here = "" if len(specs) == len(team) + 1 else f"; this computer runs {', '.join(s.name for s in specs)}"
    if agents_per_process > 1:   # a joiner is a process of its own
        specs = host_agents([s for s in specs if s.name not in joiners], agents_per_process) + \
            [s for s in specs if s.name in joiners]
    params = output / "parameters.yaml"
    params.write_text(yaml.safe_dump(parameters_file(specs), sort_keys=False))
    processes_text = "" if agents_per_process == 1 else f" in {sum(1 for s in specs if s.hosted)} processes"
    discovery = f"static peers {','.join(peers)}" if peers else 'localhost' if localhost_only else 'subnet'
    joining = f" (+{len(joiners)} joining later)" if joiners else ""
    print(f"dmpc run: {scenario.name}, {scenario.num_agents} agents{processes_text}{joining}, {mode}, "
          f"ROS_DOMAIN_ID={reservation.domain_id}, discovery {discovery}{here}; parameters in {params}", flush=True)
    if not is_head(specs):
        try:
            return run_member(specs, params, env, namespace, timeout, echo, policy)
        finally:
            reservation.release()

    # SROS2 (ROS_SECURITY_ENABLE=true with a keystore from `dmpc keys sros2`): each process in its node's enclave
    secured = env.get("ROS_SECURITY_ENABLE", "").lower() == "true"
    enclave = (lambda name: ["--enclave", f"{namespace.rstrip('/')}/{name}"]) if secured else (lambda name: [])
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", *enclave("recorder")] if secured else None, context=context,
               domain_id=reservation.domain_id, signal_handler_options=SignalHandlerOptions.NO)
    recorder = bridge = None
    outcome = None
    strict_step = None   # the step strict mode stopped at
    group = ProcessGroup(echo=echo)
    # Ctrl-C, SIGTERM and SIGHUP set a flag the loops below check: a KeyboardInterrupt raised inside the executor's
    # native code could leave it unusable for the shutdown spinning that records the last messages.
    # Installed even when SIGINT arrives ignored: a process started with SIGINT ignored (it was, from the full
    # test suite's pytest process) would otherwise run on after Ctrl-C until the scenario ends.
    interrupted = threading.Event()
    lost = 0   # messages the recorder's executor was told of but found gone (spin.TAKE_RACE)
    stop = StopRequest(interrupted)
    previous_handlers = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        executor = make_executor(context=context)
        metadata = {"scenario": str(source), "overrides": json.dumps(overrides or {}), "mode": mode}
        if foxglove_port is not None:
            from .foxglove_bridge import FoxgloveBridge
            bridge = FoxgloveBridge(foxglove_port)
        plans_qos = (settings or {}).get("plan_qos") or ("reliable" if mode == "lock_step" else "best_effort")
        recorder = RunRecorder(namespace, member_count(scenario), output / "run.mcap", plans_qos, context=context,
                               metadata=(BAG_METADATA, metadata), live=bridge, recording=recording)
        if bridge is not None:   # announced once every channel exists
            print(f"dmpc run: Foxglove live at {bridge.url} (Foxglove app: Open connection → Foxglove WebSocket)",
                  flush=True)
        executor.add_node(recorder)
        processes = {}

        def start(spec: NodeSpec) -> None:
            processes[spec.name] = group.start(spec.name, node_command(spec, params, enclave(spec.name)), env)

        managers = [spec for spec in specs if spec.executable == "lifecycle_manager"]
        later = {spec.name: spec for spec in specs if spec.name in joiners}
        for spec in [spec for spec in specs if spec not in managers and spec.name not in later]:
            start(spec)
        # a split team: the nodes of the other computers too (they may start later: a longer wait)
        await_discovery(executor, recorder, set(team) - {f"{namespace.rstrip('/')}/{name}" for name in joiners}, group,
                        DISCOVERY_TIMEOUT if here == "" else max(DISCOVERY_TIMEOUT, min(timeout, TEAM_TIMEOUT)),
                        interrupted)
        if not interrupted.is_set():
            for spec in managers:
                start(spec)
        started = time.monotonic()
        died: tuple[str, int, float] | None = None
        seen, done, progress = 0, -1, piped_step_lines("dmpc run")   # statuses checked (strict mode), step done
        kinds = {spec.name: KINDS[spec.executable] for spec in specs}
        respawning: dict[str, float] = {}   # process name → when it starts again (monotonic)
        left: set[str] = set()   # agents that ended cleanly in a run with team changes (taken down by the manager)
        while outcome is None:
            lost += not spin_once_taking(executor, 0.02)
            done = max([done] + [status.step for status in recorder.statuses[seen:]])
            progress(done + 1, scenario.steps)
            if later:   # joiners, a few steps before their change step (the plant waits for their votes)
                for name in [name for name in later if done + 1 >= joiners[name]]:
                    print(f"dmpc run: starting {name} (joins at step {joiners[name] + JOINER_LEAD})", flush=True)
                    start(later.pop(name))
            if policy.scope != "none" and died is None:
                group.respawn_dead(processes, policy, kinds, respawning)
            plant, manager = processes["plant"], processes.get("lifecycle_manager")
            failed, seen = (failed_status(recorder.statuses, seen) if scenario.strict else None), len(recorder.statuses)
            if interrupted.is_set():
                outcome = RunOutcome(interrupted_code(stop.signum), stop.reason())
            elif failed is not None:
                strict_step = failed.step
                outcome = RunOutcome(STRICT_EXIT, f"strict: step {failed.step} applied a fallback input after "
                                                  f"{failed.infeasible_problems} infeasible local problems and "
                                                  f"{failed.solver_failures} solver failures (agent {failed.agent_id})")
            elif plant.popen.poll() == 0:
                outcome = RunOutcome(0, "scenario complete") if plant_completed(output / "plant.npz", scenario) \
                    else RunOutcome(1, "the plant was stopped before the scenario's end (a signal to it or to the "
                                       "lifecycle manager)")
            elif manager.popen.poll() == BRING_UP_FAILED:
                outcome = RunOutcome(1, "bring-up failed (see the lifecycle_manager and node logs above)")
            elif died is None:
                exited = group.first_exited(ignore=frozenset(respawning) | left)
                if exited is not None and policy.scope != "none":   # died since respawn_dead looked: its turn now
                    group.respawn_dead(processes, policy, kinds, respawning)
                    exited = None if exited.name in respawning else exited
                if exited is not None and scenario.team_changes and kinds.get(exited.name) == "agent" and \
                        exited.popen.returncode == 0:
                    left.add(exited.name)   # a member that left the team, or a refused joiner: the manager ended it
                elif exited is not None:
                    died = (exited.name, exited.popen.returncode, time.monotonic())
                    print(f"dmpc run: node {exited.name} exited with code {exited.popen.returncode}; "
                          f"stopping in {death_grace:.0f} s", flush=True)
            elif time.monotonic() - died[2] > death_grace:
                outcome = RunOutcome(1, f"node {died[0]} died (exit code {died[1]})")
            if outcome is None and time.monotonic() - started > timeout:
                outcome = RunOutcome(1, f"timed out after {timeout:.0f} s")
    finally:
        # Stop the nodes (manager first: it takes the others down in order) while the recorder keeps
        # listening, so the shutdown traffic (safe commands, last statuses) is in the bag too.
        stopping = threading.Thread(target=group.stop_all, kwargs={"grace": 10.0, "first": ("lifecycle_manager",)})
        stopping.start()
        while stopping.is_alive():
            if recorder is not None:
                lost += not spin_once_taking(executor, 0.02)
            else:
                stopping.join(timeout=0.02)
        if recorder is not None:
            for _ in range(20):  # take in what is still in flight
                lost += not spin_once_taking(executor, 0.01)
            recorder.close()
            recorder.destroy_node()
            executor.shutdown()
        if bridge is not None:
            bridge.close()
        rclpy.try_shutdown(context=context)
        reservation.release()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    bag = read_run_bag(output / "run.mcap") if recorder is not None else None
    if scenario.team_changes:   # the team's stretches differ in size: the plant wrote their summary
        team = output / "team_changes.json"
        outcome.team = json.loads(team.read_text()) if team.is_file() else None
        return outcome
    rebuilt = 0
    if bag is not None and not (output / "plant.npz").is_file():   # the plant was killed before it could write
        rebuilt = rebuild_plant_file(scenario, bag, output / "plant.npz")
        if rebuilt:
            print(f"dmpc run: the plant left no plant.npz (killed?); rebuilt its trajectory of {rebuilt} steps from "
                  f"run.mcap into {output / 'plant.npz'}", flush=True)
    if (output / "plant.npz").is_file() and np.load(output / "plant.npz")["u"].shape[0]:
        # after a failure too: the plant wrote the steps it did (none: nothing to report)
        outcome.result = collect_result(scenario, output / "plant.npz", recorder)
        if strict_step is not None:   # as `dmpc sim`: the run ends with the step that had no solution
            outcome.result.truncated(min(strict_step + 1, outcome.result.steps), "")
        done = outcome.result.steps
        if outcome.code != 0 or done < scenario.steps:
            outcome.result.stopped = f"{outcome.message} after {done} of {scenario.steps} steps"
        if rebuilt:
            outcome.result.stopped += "; the plant's trajectory was rebuilt from run.mcap"
        if bag is not None:
            outcome.result.bag_missing_steps = gap_summary(bag.gaps)
        outcome.result.respawns = dict(policy.restarts)
        if mode == "lock_step" and outcome.result.messages_missing:
            print(f"dmpc run: warning: agents substituted {outcome.result.messages_missing} missing plan(s) after "
                  f"their iteration timeout ({iteration_timeout:g} s); this lock-step run is not reproducible: give "
                  "slow local solves more room (--iteration-timeout)", flush=True)
    if lost:
        print(f"dmpc run: warning: {lost} message(s) were gone from the recorder's queue before it could take them",
              flush=True)
    if bag is not None:
        for line in gap_lines(bag.gaps):
            print(f"dmpc run: warning: run.mcap lacks steps: {line}", flush=True)
    return outcome


def node_command(spec: NodeSpec, params: Path, enclave: list[str]) -> list[str]:
    """The command line of one node process (or agent container) with its name, namespace and parameter file."""
    naming = [s.name for s in spec.hosted] + ["--ros-args"] if spec.hosted else ["--ros-args", "-r",
                                                                                f"__node:={spec.name}"]
    return executable_command(spec) + naming + ["-r", f"__ns:={spec.namespace}", "--params-file", str(params),
                                                *enclave]


def run_member(specs: list[NodeSpec], params: Path, env: dict[str, str], namespace: str, timeout: float,
               echo: bool, policy: RespawnPolicy | None = None) -> RunOutcome:
    """A computer of a split team without the lifecycle manager: start its nodes and wait until they end (the
    head's manager brings them up and, at the run's end, shuts them down, which ends their processes). A stop
    signal or `timeout` stops them here. With a respawn `policy` a node process that dies is started again here,
    and the head's manager brings it up again as on the head. Exit 0 when every node ended cleanly; no results here
    (the head writes them). SROS2 enclaves as on the head."""
    secured = env.get("ROS_SECURITY_ENABLE", "").lower() == "true"
    group = ProcessGroup(echo=echo)
    interrupted = threading.Event()
    stop = StopRequest(interrupted)
    previous_handlers = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    outcome = None
    policy = policy or RespawnPolicy()
    kinds = {spec.name: KINDS[spec.executable] for spec in specs}
    processes, respawning = {}, {}
    try:
        for spec in specs:
            processes[spec.name] = group.start(spec.name, node_command(
                spec, params, ["--enclave", f"{namespace.rstrip('/')}/{spec.name}"] if secured else []), env)
        print(f"dmpc run: started {', '.join(s.name for s in specs)}; the head computer (plant and lifecycle "
              "manager) brings them up and ends them", flush=True)
        started = time.monotonic()
        while outcome is None:
            time.sleep(0.05)
            if policy.scope != "none":
                group.respawn_dead(processes, policy, kinds, respawning)
            codes = [p.popen.poll() for p in group.processes]
            if interrupted.is_set():
                outcome = RunOutcome(interrupted_code(stop.signum), stop.reason())
            elif all(code is not None for code in codes) and not respawning:
                failed = [(p.name, c) for p, c in zip(group.processes, codes) if c != 0]
                outcome = RunOutcome(0, "this computer's nodes ended") if not failed else \
                    RunOutcome(1, f"node {failed[0][0]} ended with exit code {failed[0][1]}")
            elif time.monotonic() - started > timeout:
                outcome = RunOutcome(1, f"timed out after {timeout:.0f} s")
    finally:
        group.stop_all(grace=10.0)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    return outcome


def plant_completed(path: Path, scenario: Scenario) -> bool:
    """The plant's output holds every step of the scenario (a plant stopped early writes the steps done)."""
    try:
        return int(np.load(path)["completed_steps"]) >= scenario.steps
    except (OSError, KeyError, ValueError):
        return False


def rebuild_plant_file(scenario: Scenario, bag: RunBag, path: Path) -> int:
    """plant.npz (t, x, u, completed_steps, steps) of a plant that was killed, from the states and inputs the run
    bag recorded (report.plant_trajectory; late and refused inputs are unknown there, written as 0, and
    `rebuilt_from` names the bag). Returns the steps rebuilt (0: none, no file)."""
    x, u, recomputed = plant_trajectory(scenario, bag.states, bag.inputs)
    steps = u.shape[0]
    if steps:
        np.savez_compressed(path, t=np.arange(steps + 1) * scenario.sample_time, x=x, u=u, late_inputs=0,
                            refused_inputs=0, completed_steps=steps, steps=scenario.steps, rebuilt_from="run.mcap",
                            recomputed_states=np.asarray(recomputed, int))
    return steps


def await_discovery(executor, recorder, names: set[str], group: ProcessGroup, timeout: float,
                    interrupted: threading.Event) -> None:
    """Wait until the recorder's participant knows every node process, so that the publishers they create when
    configured match the recorder at once: a late match loses the first volatile messages (control inputs).
    Returns early when a node process has exited (the main loop reports it) or on a stop signal."""
    deadline = time.monotonic() + timeout
    while not names <= set(recorder.get_fully_qualified_node_names()) and group.first_exited() is None \
            and not interrupted.is_set():
        if time.monotonic() > deadline:
            missing = sorted(names - set(recorder.get_fully_qualified_node_names()))
            print(f"dmpc run: warning: the recorder has not discovered {', '.join(missing)} after {timeout:.0f} s; "
                  "their first messages may be missing from run.mcap", flush=True)
            return
        spin_once_taking(executor, 0.02)


def failed_status(statuses: list, start: int):
    """The first status from index `start` on whose agent applied a fallback input for want of a solution."""
    for status in statuses[start:]:
        if status.input_source != AgentStatus.INPUT_SOLVED and status.infeasible_problems + status.solver_failures:
            return status
    return None


def collect_result(scenario: Scenario, plant_file: Path, recorder) -> SimulationResult:
    """The plant's trajectory plus the agents' statuses in the same result object `dmpc sim` produces."""
    data = np.load(plant_file)
    result = result_from_records(scenario, data["x"], data["u"], recorder.statuses)
    T = result.steps
    result.messages[:] = recorder.plans // max(T, 1)
    result.bytes[:] = recorder.plan_bytes // max(T, 1)
    result.late_inputs = int(data["late_inputs"])
    result.refused_inputs = int(data["refused_inputs"]) if "refused_inputs" in data.files else 0
    result.plant_inputs = json.loads(str(data["plant_inputs"])) if "plant_inputs" in data.files else {}
    result.authentication = authentication_counts(result, data)
    return result


def authentication_counts(result: SimulationResult, plant_data) -> dict | None:
    """The refusals of an authenticated run by reason: the agents' plans (their AgentStatus counters
    plans_refused_<reason>, taken out of the scheme's counters) and the plant's inputs (plant.npz); None when the
    run was not authenticated."""
    plans = {name: result.counters.pop(name) for name in [n for n in result.counters if n.startswith(PLANS_REFUSED)]}
    inputs = {name[len(INPUTS_REFUSED):]: int(plant_data[name]) for name in plant_data.files
              if name.startswith(INPUTS_REFUSED)}
    if not plans and not inputs:
        return None
    return {"plans_refused": {name[len(PLANS_REFUSED):]: int(values.sum()) for name, values in plans.items()},
            "inputs_refused": inputs}
