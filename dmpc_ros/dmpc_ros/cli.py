"""The `dmpc` command: demo, in-process simulation and ROS runs of DMPC scenarios."""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .api import save
from .scenarios.parameters import NODE_SETTINGS, PARAMETERS, TABLE, Parameter, flag_parameters, peer_addresses
from .scenarios.node_specs import HEAD_NODES, NodeSpec, member_count, select_nodes
from .scenarios.validation import one_line
from .sim.results import STRICT_EXIT
from .process_group import ProcessGroup
from .ros.environment import DOMAIN_ID_LIMIT, reserve_domain_id, ros_environment


def smoke_demo(count: int, timeout: float) -> int:
    """Two nodes in separate processes exchange PredictedTrajectory messages; print what they exchanged."""
    reservation = reserve_domain_id()
    env = ros_environment(reservation.domain_id)
    print(f"dmpc smoke: ROS_DOMAIN_ID={reservation.domain_id}, discovery limited to localhost")
    module = [sys.executable, "-m", "dmpc_ros.ros.smoke"]
    with ProcessGroup() as group:
        listener = group.start("listener", module + ["listener", "--count", str(count)], env)
        group.start("talker", module + ["talker", "--rate", "5"], env)
        try:
            code = group.wait(listener, timeout=timeout)
        except Exception:
            print(f"dmpc smoke: the listener received fewer than {count} plans within {timeout:.0f} s", file=sys.stderr)
            return 1
    reservation.release()
    print(f"dmpc smoke: listener exited with {code}")
    return code


class UsageError(Exception):
    """A bad command line: printed as one line naming the flag, the value and what is allowed (exit code 2)."""


# flag → Scenario.with_overrides field (validated like the scenario file, cross-field rules included)
FLAG_OVERRIDES = {p.flag: p.name for p in TABLE if p.override}


def overrides_of(args: argparse.Namespace) -> dict:
    return {field: getattr(args, dest(flag)) for flag, field in FLAG_OVERRIDES.items()
            if getattr(args, dest(flag), None) is not None}   # (a command has only some of them)


def dest(flag: str) -> str:
    """argparse's attribute for --<flag>."""
    return flag.replace("-", "_")


def add_parameter_flags(command: argparse.ArgumentParser, name: str) -> None:
    """The flags of `dmpc <name>` that set a parameter of the table: its type, default, choices and help.
    An override's flag defaults to None (not given: the scenario's value)."""
    for parameter in flag_parameters(name):
        option = f"--{parameter.flag}"
        if parameter.override:
            where = ".".join(parameter.override)
            if parameter.type is bool:
                command.add_argument(option, action="store_true", default=None, help=parameter.description)
            else:
                command.add_argument(option, type=parameter.type, help=f"override {where}: {parameter.description}")
            continue
        if parameter.type is bool:
            command.add_argument(option, action="store_true", default=parameter.default, help=parameter.help)
            continue
        if parameter.by_mode:   # not given: the run decides by its mode
            command.add_argument(option, type=parameter.type, default=None, choices=parameter.choices or None,
                                 help=f"{parameter.help} (default: by mode)")
            continue
        command.add_argument(option, type=parameter.type, default=parameter.default, choices=parameter.choices or None,
                             help=f"{parameter.help} (default: {parameter.default})")


def load_with_overrides(args: argparse.Namespace):
    """(source, scenario with the command line's overrides, the overrides); UsageError naming what is wrong."""
    from .scenarios import ScenarioError
    from .scenarios.source import load_source

    try:
        scenario = load_source(args.scenario)
    except ScenarioError as error:
        raise UsageError(str(error)) from None
    overrides = overrides_of(args)
    try:
        scenario = scenario.with_overrides(**overrides)
    except ScenarioError as error:
        for flag, field in FLAG_OVERRIDES.items():   # which flag alone breaks a rule, so the message names it
            if field in overrides:
                try:
                    scenario.with_overrides(**{field: overrides[field]})
                except ScenarioError as alone:
                    raise UsageError(f"--{flag} {overrides[field]}: {alone}") from None
        flags = " ".join(f"--{flag} {overrides[field]}" for flag, field in FLAG_OVERRIDES.items()
                         if field in overrides)
        raise UsageError(f"{flags}: {error}") from None   # only the combination (e.g. --horizon with missed_steps)
    for note in scenario.notes:   # advice of the load-time checks, before any work starts
        print(f"note: {note}", file=sys.stderr, flush=True)
    return args.scenario, scenario, overrides


def check_output(value: str | None) -> None:
    """--output: a directory that is or can be made here (its nearest existing parent must be a directory we can
    create entries in: tried, not guessed from permission bits, which say yes to root under /proc)."""
    if value is None:
        return
    if not value or not is_path_text(value):
        raise UsageError(f"--output {value!r}: is not allowed: give a directory path")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output {value}: is an existing file; give a directory (created if missing)")
    check_writable_parent(path, value)


def check_writable_parent(path: Path, value: str) -> None:
    """The nearest existing folder on `path` (itself included) is a directory we can create entries in."""
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise UsageError(f"--output {value}: {parent} is not a directory")
    try:
        shutil.rmtree(tempfile.mkdtemp(prefix=".dmpc-write-test-", dir=parent))
    except OSError as error:
        raise UsageError(f"--output {value}: {parent} is not writable ({error.strerror})") from None


def is_path_text(value: str) -> bool:
    """A command-line text the OS can take: no NUL, and encodable (a lone surrogate that no shell produces is not)."""
    if "\0" in value:
        return False
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        return False
    return True


def check_texts(args: argparse.Namespace) -> None:
    """Every text argument one the OS can take (a NUL or a lone surrogate would fail deep inside a path call)."""
    for name, value in vars(args).items():
        if isinstance(value, str) and not is_path_text(value):
            flag = "the scenario" if name == "scenario" else f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} {ascii(value)[:60]}: is not allowed: a NUL or a lone surrogate cannot be a "
                             f"name or path")


# Numeric flags of `dmpc` outside the parameter table, checked by the same rule (Parameter.problem): finite, in range.
COMMAND_FLAGS: dict[str, tuple[Parameter, ...]] = {
    "smoke": (Parameter("count", int, 3, "plans the listener waits for", low=1, high=1_000_000, flag="count"),
              Parameter("timeout", float, 60.0, "give up after this many seconds", low=0.0, open_low=True, high=1e6,
                        flag="timeout")),
    "run": (Parameter("domain_id", int, 0, "ROS_DOMAIN_ID", flag="domain-id",
                      rule=lambda value: 0 <= value <= DOMAIN_ID_LIMIT,
                      rule_text=f"ROS domain ids are 0..{DOMAIN_ID_LIMIT} (0..101 keep DDS ports below Linux's "
                                f"ephemeral range)"),
            Parameter("foxglove", int, 8765, "Foxglove WebSocket port", flag="foxglove",
                      rule=lambda value: 0 <= value <= 65535, rule_text="a TCP port 1..65535 (0: any free one)")),
}


def check_parameter_flags(args: argparse.Namespace, command: str) -> None:
    """Every numeric or checked flag of `dmpc <command>` but the scenario overrides (the scenario parse checks those):
    the table's and COMMAND_FLAGS, each by its Parameter's rule; an absent optional flag (None) is not checked."""
    for parameter in flag_parameters(command) + COMMAND_FLAGS.get(command, ()):
        value = getattr(args, dest(parameter.flag))
        problem = None if parameter.override or value is None else parameter.problem(value, unset_allowed=False)
        if problem:
            raise UsageError(f"--{parameter.flag} {value}: is not allowed: {problem}")


def node_settings(args: argparse.Namespace, command: str) -> dict:
    """The flags of `dmpc <command>` that set a node parameter and are passed as such (the plant's guard, the plans'
    QoS); a by-mode flag not given is left out."""
    return {p.name: getattr(args, dest(p.flag)) for p in flag_parameters(command)
            if p.name in NODE_SETTINGS and getattr(args, dest(p.flag)) is not None}


def check_run_flags(args: argparse.Namespace) -> None:
    """dmpc run's own flags, before any node starts."""
    check_parameter_flags(args, "run")
    if args.nodes.strip() not in ("", "all") and args.domain_id is None:
        raise UsageError(f"--nodes {args.nodes[:80]}: is not allowed without --domain-id: every computer of a split "
                         "team runs in the same ROS domain (give each the same --domain-id, and --peers)")
    if args.peers and args.network:
        raise UsageError("--peers and --network are not allowed together: static peers (unicast, no multicast) or "
                         "subnet discovery (multicast), not both")


def check_namespace(namespace: str) -> None:
    problem = PARAMETERS["namespace"].problem(namespace)
    if problem:
        raise UsageError(f"--namespace {namespace}: is not allowed: {problem}")


class SetUpProgress:
    """Shows the library's set-up stages on stderr once set-up has taken QUIET_SECONDS (from the start, or from the
    start of the phase the stage belongs to: progress.phase): the stage under way, and counted stages every tenth; a
    watcher thread prints a long stage while it runs (small scenarios print nothing)."""

    QUIET_SECONDS = 2.0

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.current: tuple[str, int, int] | None = None
        self.phase = ""
        self.shown: tuple[str, int] | None = None
        self._lock, self._done = threading.Lock(), threading.Event()

    def __call__(self, stage: str, done: int, total: int) -> None:
        from .progress import SET_UP_OVER, current_phase

        if done == SET_UP_OVER:   # the run steps now: the last stage is over, not to be shown as under way
            with self._lock:
                self.current = None
            return
        with self._lock:
            if current_phase() != self.phase:   # a new phase (the reference run's set-up): timed from its start
                self.phase, self.started = current_phase(), time.monotonic()
            self.current = (stage, done, total)
        self._show()

    def _show(self) -> None:
        with self._lock:
            elapsed = time.monotonic() - self.started
            if self.current is None or elapsed < self.QUIET_SECONDS:
                return
            stage, done, total = self.current
            key = (stage, 10 * done // total if total else 0)
            if key == self.shown:
                return
            self.shown = key
        print(f"set-up ({elapsed:.0f} s): {stage}{f' {done}/{total}' if total else ''}", file=sys.stderr, flush=True)

    def __enter__(self) -> "SetUpProgress":
        def watch() -> None:
            while not self._done.wait(0.5):
                self._show()
        threading.Thread(target=watch, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()


REFERENCE_LABEL = "reference"


def simulate_with_progress(scenario, algorithm: str, label: str, compare: bool, console, **options):
    """The in-process run with a progress bar on a terminal, else progress lines on stderr (progress.StepLines);
    its set-up stages named for the run (the centralized reference run: announced when it starts, never strict)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .api import simulate
    from .progress import StepLines, phase, set_up_over

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    name = f"{algorithm} run"
    if label == REFERENCE_LABEL:
        scenario = scenario.with_overrides(strict=False) if scenario.strict else scenario
        name = "centralized reference run"
        say(f"{name}: starting (centralized MPC from the same initial state, for the cost gap; --no-reference "
            "skips it)")

    def stepping(show: Callable[[int, int], None]) -> Callable[[int, int], None]:
        def step_done(k: int, total: int) -> None:
            if k == 1:
                set_up_over()
            show(k, total)
        return step_done

    with phase(name):
        if not console.is_terminal:
            return simulate(scenario, algorithm, compare_centralized=compare,
                            progress=stepping(StepLines(name, say, time.monotonic)), **options)
        with Progress(TextColumn(f"{label:>11}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=False) as progress:
            task = progress.add_task(label, total=scenario.steps)
            return simulate(scenario, algorithm, compare_centralized=compare,
                            progress=stepping(lambda k, total: progress.update(task, completed=k)), **options)


def summary_console():
    """The console of the summary table: the terminal's width, or 120 columns when the output is a file or a pipe
    (COLUMNS wins), so the table's rows do not wrap."""
    from rich.console import Console

    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=120)


def default_output(scenario, command: str) -> Path:
    from .printable import file_name

    return Path(f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{command}-{file_name(scenario.name)}-"
                f"{scenario.controller.algorithm}")


def run_simulation(args: argparse.Namespace) -> int:
    """`dmpc sim`: in-process closed loop of a scenario; summary table, summary.json, trajectory.npz, plots."""
    check_output(args.output)
    check_parameter_flags(args, "sim")
    _, scenario, _ = load_with_overrides(args)
    console = summary_console()
    output = Path(args.output) if args.output else default_output(scenario, "sim")
    from .coordination.scheme import scheme_of

    algorithm = scenario.controller.algorithm
    if scenario.team_changes:   # stretches between the change steps; no centralized reference of a changing team
        from .api import save_team, simulate_team

        save_team(simulate_team(scenario, iteration_timeout=args.iteration_timeout,
                                input_rate_limit=args.input_rate_limit), scenario, output, console)
        return 0
    result = simulate_with_progress(scenario, algorithm, algorithm, not args.no_reference, console,
                                    iteration_timeout=args.iteration_timeout, input_rate_limit=args.input_rate_limit,
                                    plan_delay=args.plan_delay)
    reference = None
    if not args.no_reference:   # a run without agents is the centralized reference itself
        reference = result if not scheme_of(algorithm).runs_as_agents else \
            simulate_with_progress(scenario, "centralized", REFERENCE_LABEL, False, console)
    save(result, scenario, output, reference, console)
    return exit_code(result, "dmpc sim")


def run_ros(args: argparse.Namespace) -> int:
    """`dmpc run`: the scenario over ROS 2, one OS process per node; same output contract as `dmpc sim`."""
    from .ros.runner import run_scenario

    check_output(args.output)
    check_run_flags(args)
    source, scenario, overrides = load_with_overrides(args)
    from .coordination.scheme import scheme_names, scheme_of

    algorithm = scenario.controller.algorithm
    if scenario.team_changes:
        check_team_run(args)
    if not scheme_of(algorithm).runs_as_agents:
        raise UsageError(f"controller.algorithm '{algorithm}' has no agents to run over ROS; use `dmpc sim` or one of "
                         f"{', '.join(scheme_names(runs_as_agents=True))}")
    if scheme_of(algorithm).offline is not None:
        scenario.design()   # its offline part (explicit laws) must be in place before any node starts
    check_keystore(scenario, args.authenticate, args.keystore)
    try:   # the names against the scenario's agents, before any node starts
        select_nodes([NodeSpec(name, name, "") for name in HEAD_NODES] +
                     [NodeSpec("agent", f"agent_{i}", "") for i in range(member_count(scenario))], args.nodes)
    except ValueError as error:
        raise UsageError(f"--{error}") from None
    console = summary_console()
    output = Path(args.output) if args.output else default_output(scenario, "run")
    output.mkdir(parents=True, exist_ok=True)
    outcome = run_scenario(scenario, source, output, mode=args.mode, namespace=args.namespace,
                           domain_id=args.domain_id, localhost_only=not args.network, timeout=args.timeout,
                           death_grace=args.death_grace, iteration_timeout=args.iteration_timeout,
                           overrides=overrides, agents_per_process=args.agents_per_process,
                           foxglove_port=args.foxglove, settings=node_settings(args, "run"),
                           authenticate=args.authenticate, keystore=args.keystore, nodes=args.nodes,
                           peers=peer_addresses(args.peers), repair_period=args.repair_period, respawn=args.respawn,
                           respawn_limit=args.respawn_limit, respawn_delay=args.respawn_delay)
    if outcome.team is not None:   # a run with team changes: the announcements and the stretches' figures
        import json

        from .api import print_team
        summary = {"team_changes": outcome.team, "complete": outcome.code == 0, "message": outcome.message}
        (output / "summary.json").write_text(json.dumps(summary, indent=1))
        print_team(outcome.team, scenario, output, console, f" over ROS ({args.mode})")
    if outcome.result is not None:   # after a failure too: the steps done, marked incomplete
        reference = (None if args.no_reference
                     else simulate_with_progress(scenario, "centralized", REFERENCE_LABEL, False, console))
        save(outcome.result, scenario, output, reference, console, title_suffix=f" over ROS ({args.mode})")
    if outcome.code != 0:
        print(f"dmpc run: {outcome.message}", file=sys.stderr)
    return outcome.code


def check_team_run(args: argparse.Namespace) -> None:
    """What a run with team_changes over ROS supports so far: lock-step, no respawn, no authentication."""
    for flag, value, allowed in (("mode", args.mode, "lock_step"), ("respawn", args.respawn, "none")):
        if value != allowed:
            raise UsageError(f"--{flag} {value} is not allowed with team_changes: must be {allowed} (team changes over "
                             "ROS run in lock-step, without respawn)")
    if args.authenticate or args.keystore:
        raise UsageError("--authenticate/--keystore is not allowed with team_changes: joiners have no keys yet")


def check_keystore(scenario, authenticate: bool, keystore: str) -> None:
    """When the run is authenticated (the scenario's security section, --authenticate, --keystore), the keystore
    must load and hold a key for every agent: else one line, before any node starts."""
    from .auth import KeystoreError, load_keystore
    from .scenarios import ScenarioError
    from .scenarios.security import security_parameters

    try:
        security = security_parameters(scenario.security, authenticate, keystore)
        if security:
            load_keystore(security["keystore"]).require(scenario.num_agents)
    except (ScenarioError, KeystoreError) as error:
        raise UsageError(str(error)) from None


def keys_command(args: argparse.Namespace) -> int:
    """`dmpc keys create DIR --agents M` (or --scenario S: its agent count): a new team keystore for
    authenticated runs (dmpc_ros.auth); `dmpc keys sros2 DIR …`: an SROS2 keystore, one enclave per node of the run
    (scenarios/sros2.py)."""
    from .auth import KeystoreError, create_keystore

    if (args.agents is None) == (args.scenario is None):
        raise UsageError("give exactly one of --agents M and --scenario SCENARIO (its agent count)")
    agents = args.agents
    if args.scenario is not None:
        from .scenarios import ScenarioError
        from .scenarios.source import load_source
        try:
            agents = load_source(args.scenario).num_agents
        except ScenarioError as error:
            raise UsageError(str(error)) from None
    if args.action == "sros2":
        return sros2_command(args, agents)
    try:
        keystore = create_keystore(Path(args.directory), agents)
    except KeystoreError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"keystore {args.directory}: {error.strerror or error}") from None
    print(f"dmpc keys create: {len(keystore.keys)} keys (agents 0..{agents - 1}) in {keystore.directory} "
          f"(folder 0700, files 0600); use: dmpc run SCENARIO --keystore {keystore.directory}")
    return 0


def sros2_command(args: argparse.Namespace, agents: int) -> int:
    """`dmpc keys sros2 DIR`: CA, one enclave per node of a run of `agents` agents, governance and permissions."""
    from .ros.sros2 import fastdds_has_security
    from .scenarios.sros2 import Sros2Error, create_sros2_keystore, run_enclaves, security_environment

    check_namespace(args.namespace)
    try:
        enclaves = run_enclaves(agents, args.namespace)
        create_sros2_keystore(Path(args.directory), enclaves)
    except (Sros2Error, OSError) as error:
        raise UsageError(str(error)) from None
    variables = " ".join(f"{k}={v}" for k, v in security_environment(Path(args.directory)).items())
    print(f"dmpc keys sros2: {len(enclaves)} enclaves ({', '.join(e.name for e in enclaves)}) in {args.directory}; "
          f"run with: {variables} dmpc run SCENARIO --namespace {args.namespace}")
    secure, why = fastdds_has_security()
    if not secure:
        print(f"dmpc keys sros2: note: {why}; a secured run needs a ROS 2 install with DDS Security", file=sys.stderr)
    return 0


def exit_code(result, command: str) -> int:
    """0, or STRICT_EXIT when strict mode ended the run at a step without a solution (said on stderr)."""
    if result.stopped.startswith("strict"):
        print(f"{command}: {result.stopped}", file=sys.stderr)
        return STRICT_EXIT
    return 0


def repair_bag_command(args: argparse.Namespace) -> int:
    """`dmpc bag repair RUN.mcap`: the complete records of a bag a killed recorder left, as a well-formed bag."""
    from .bag import repair_bag

    source = Path(args.bag)
    if not source.is_file():
        raise UsageError(f"{args.bag}: {'is a directory' if source.is_dir() else 'does not exist'}; give a .mcap file")
    check_bag_magic(source)
    target = Path(args.output) if args.output else source.with_name(source.stem + ".repaired.mcap")
    if target.resolve() == source.resolve():
        raise UsageError(f"--output {args.output}: is the bag itself; give another file")
    try:
        contents = repair_bag(source, target)
    except (ValueError, OSError) as error:   # bag.NotABag: not an MCAP file at all; an unwritable target
        raise UsageError(str(error)) from None
    state = "it was complete" if contents.complete else f"the torn tail was dropped ({contents.error})"
    print(f"dmpc bag repair: {len(contents.messages)} messages on {len(contents.channels)} topics written to {target}; "
          f"{state}")
    return 0


MCAP_MAGIC = b"\x89MCAP0\r\n"


def check_bag_magic(path: Path) -> None:
    """A file given as a bag must start as an MCAP file does (a folder is checked by the report itself)."""
    if path.is_file():
        with path.open("rb") as file:
            start = file.read(len(MCAP_MAGIC))
        if start != MCAP_MAGIC:
            raise UsageError(f"{path}: is not an MCAP bag (it does not start with the MCAP magic bytes); give a "
                             f"run.mcap or an output folder")


def viz_config_command(args: argparse.Namespace) -> int:
    """`dmpc viz-config SCENARIO`: an rviz2 config with a path and a marker display per agent."""
    from .scenarios import ScenarioError
    from .scenarios.source import load_source
    from .viz_config import rviz_config

    check_namespace(args.namespace)
    if args.output is not None and (not args.output or not is_path_text(args.output)):
        raise UsageError(f"--output {args.output!r}: is not allowed: give the .rviz file to write")
    if args.output and Path(args.output).is_dir():
        raise UsageError(f"--output {args.output}: is a directory; give the .rviz file to write")
    if args.output:
        check_writable_parent(Path(args.output).parent, args.output)
    try:
        text = rviz_config(load_source(args.scenario), args.namespace)
    except ScenarioError as error:
        raise UsageError(str(error)) from None
    if not args.output:
        print(text, end="")
        return 0
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(f"dmpc viz-config: wrote {args.output} (rviz2 -d {args.output})", file=sys.stderr)
    return 0


def plot_command(args: argparse.Namespace) -> int:
    """`dmpc plot RUN_DIR_OR_BAG`: the report's PNGs, rebuilt from what a run left."""
    from .report import render

    target = Path(args.target)
    if not target.exists():
        raise UsageError(f"{args.target}: does not exist; give an output folder or a .mcap file")
    output = Path(args.output) if args.output else None
    if target.is_dir() and (target / "robot_0.npz").is_file():   # robot mode: the fake bases' trajectories
        return robot_report(args, target, output)
    check_bag_magic(target)
    try:
        paths = render(target, output)
    except (ValueError, KeyError, OSError, struct.error) as error:
        raise UsageError(f"{args.target}: {error}" if str(args.target) not in str(error) else str(error)) from None
    except Exception as error:   # the bag reader's own errors (mcap.exceptions.McapError: a torn or foreign file)
        if type(error).__module__.startswith("mcap"):
            raise UsageError(f"{args.target}: cannot be read as a run bag ({type(error).__name__}: {error}); "
                             f"`dmpc bag repair` keeps the complete records of a torn one") from None
        raise
    print(f"dmpc plot: wrote {', '.join(str(p) for p in paths)}")
    return 0


def robot_report(args: argparse.Namespace, folder: Path, output: Path | None) -> int:
    """`dmpc plot FOLDER --scenario S --started-at T` of a robot run: robot_summary.json, its table and the PNGs."""
    from rich.table import Table

    from .report import render_robots
    from .summary_table import robot_rows

    if not args.scenario or args.started_at is None:
        raise UsageError(f"{folder}: holds a robot run (robot_<i>.npz): give --scenario (its source) and --started-at "
                         "(the agents' start_time, UNIX s)")
    try:
        paths, summary = render_robots(folder, args.scenario, args.started_at, output)
    except (ValueError, KeyError, OSError) as error:
        raise UsageError(f"{folder}: {error}") from None
    table = Table(title=f"{summary['scenario']} — robot run")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for row in robot_rows(summary):
        table.add_row(*row)
    console = summary_console()
    console.print(table)
    console.print(f"dmpc plot: wrote robot_summary.json, {', '.join(str(p) for p in paths)}", soft_wrap=True)
    return 0


def explicit_command(args: argparse.Namespace) -> int:
    """`dmpc explicit build SCENARIO`: every agent's mpQP solved into the cache the explicit schemes load."""
    from .coordination.scheme import scheme_names, scheme_of
    from .scenarios import ScenarioError

    source, scenario, _ = load_with_overrides(args)
    offline = scheme_of(scenario.controller.algorithm).offline
    if offline is None:
        explicit = [name for name in scheme_names() if scheme_of(name).offline is not None]
        raise UsageError(f"controller.algorithm {scenario.controller.algorithm}: has no explicit solution; give "
                         f"--algorithm {explicit[-1]} (or one of {', '.join(explicit)})")
    try:
        offline.build(scenario.design(with_laws=False))
    except (ScenarioError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(f"dmpc explicit build: done; `dmpc sim {source}` and the agent nodes now load these files")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the flag (no usage dump), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dmpc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    smoke = commands.add_parser("smoke", help="two nodes exchange PredictedTrajectory messages over DDS")
    smoke.add_argument("--count", type=int, default=3, help="plans the listener waits for")
    smoke.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    for name, help_text in (("sim", "simulate a scenario in-process (no ROS)"),
                            ("run", "run a scenario over ROS 2, one process per node"),
                            ("explicit", "explicit schemes: build (solve every agent's mpQP into the cache)")):
        command = commands.add_parser(name, help=help_text)
        if name == "explicit":
            command.add_argument("action", choices=("build",), help="build: solve and cache every agent's mpQP")
        command.add_argument("scenario", help="scenario name (config/<name>.yaml), a YAML file, or a Python factory "
                                              "module:function / file.py:function returning a Scenario")
        add_parameter_flags(command, name)
        if name != "explicit":   # the build writes the cache only
            command.add_argument("--output",
                                 help="output directory (default: runs/<timestamp>-<command>-<scenario>-<algorithm>)")
            command.add_argument("--no-reference", action="store_true", help="skip the centralized reference run")
        if name == "run":
            command.add_argument("--domain-id", type=int,
                                 help="ROS_DOMAIN_ID (default: a free one, reserved for the run)")
            command.add_argument("--network", action="store_true",
                                 help="discover peers on the subnet (real robots) instead of localhost only")
            command.add_argument("--foxglove", type=int, nargs="?", const=8765, metavar="PORT",
                                 help="serve the run's topics live to the Foxglove app (WebSocket on 127.0.0.1, "
                                      "default port 8765; 0: any free port)")
    plot = commands.add_parser("plot", help="render the standard report (PNGs) from an output folder or a run.mcap")
    plot.add_argument("target", help="an output folder of dmpc sim / dmpc run, or a run bag (.mcap)")
    plot.add_argument("--output", help="where to write the PNGs (default: the folder, or the bag's folder)")
    plot.add_argument("--scenario", help="a robot run's folder (robot_<i>.npz): the scenario it ran")
    plot.add_argument("--started-at", type=float, help="a robot run's folder: the agents' start_time [UNIX s]")
    viz = commands.add_parser("viz-config", help="write an rviz2 config for a scenario (a display per agent)")
    viz.add_argument("scenario", help="scenario name, YAML file or Python factory (as for dmpc sim)")
    add_parameter_flags(viz, "viz-config")
    viz.add_argument("--output", help="the .rviz file to write (default: standard output)")
    keys = commands.add_parser("keys", help="authentication: make a team keystore (HMAC keys, one per agent)")
    keys.add_argument("action", choices=("create", "sros2"), help="create: a new HMAC keystore folder (never "
                      "overwrites); sros2: an SROS2 keystore (CA, an enclave per node, governance, permissions)")
    keys.add_argument("directory", help="the keystore folder to create (mode 0700; one agent_<i>.key per agent, 0600)")
    keys.add_argument("--agents", type=int, help="number of agents M (keys for agents 0..M-1)")
    keys.add_argument("--scenario", help="or: as many keys as this scenario has agents")
    add_parameter_flags(keys, "keys")
    bag = commands.add_parser("bag", help="run bags: repair one a killed recorder left")
    bag.add_argument("action", choices=("repair",), help="repair: write its complete records as a well-formed bag")
    bag.add_argument("bag", help="the .mcap file (e.g. runs/<run>/run.mcap)")
    bag.add_argument("--output", help="where to write (default: <bag>.repaired.mcap beside it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .progress import reporting
    from .scenarios import ScenarioError

    args = build_parser().parse_args(argv)
    handlers = {"smoke": lambda: smoke_demo(args.count, args.timeout), "sim": lambda: run_simulation(args),
                "run": lambda: run_ros(args), "bag": lambda: repair_bag_command(args),
                "explicit": lambda: explicit_command(args), "plot": lambda: plot_command(args),
                "viz-config": lambda: viz_config_command(args), "keys": lambda: keys_command(args)}
    try:
        check_texts(args)
        if args.command == "smoke":
            check_parameter_flags(args, "smoke")
        with SetUpProgress() as progress, reporting(progress):
            return handlers[args.command]()
    except UsageError as error:   # one plain line (no console markup or wrapping that could eat the text)
        print(one_line(f"dmpc {args.command}: {error}"), file=sys.stderr)
        return 2
    except ScenarioError as error:   # found once the run builds its design (an explicit scheme's missing laws)
        print(one_line(f"dmpc {args.command}: {error}"), file=sys.stderr)
        return 2
    except OSError as error:   # writing the outputs failed (disk full, a folder removed meanwhile): say where
        print(one_line(f"dmpc {args.command}: cannot write {error.filename or 'the outputs'}: "
                       f"{error.strerror or error}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:   # Ctrl-C outside a run's own handling (set-up, writing the report): no traceback
        print(f"dmpc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
