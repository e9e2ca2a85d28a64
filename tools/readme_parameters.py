"""Rewrite README.md's parameter table from the one table (dmpc_ros/dmpc_ros/scenarios/parameters.py).
Usage: .venv/bin/python tools/readme_parameters.py [README.md]; test_parameters.py checks the README equals it."""
import sys
from pathlib import Path

from dmpc_ros.scenarios.parameters import write_readme

if __name__ == "__main__":
    write_readme(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "README.md")
