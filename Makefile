# One-command set-up and entry points. Every target sets up what it needs on first use;
# stamps in .venv/ make `make setup` rerun only the steps whose inputs changed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MSG_INPUTS := dmpc_ros_msgs/CMakeLists.txt dmpc_ros_msgs/package.xml $(wildcard dmpc_ros_msgs/msg/*.msg)
PKG_INPUTS := dmpc_ros/setup.py dmpc_ros/setup.cfg dmpc_ros/package.xml tools/register_ament.py \
  $(wildcard dmpc_ros/launch/*.launch.py dmpc_ros/config/*)
# The ROS 2 launch stack and `ros2` CLI wheels (`make launch-stack`; the folder's ../src has their interface sources).
WHEELS ?= ../shared/ros2-launch/wheels
PYTEST_ARGS ?= --durations=15
# Serial by default. PYTEST_WORKERS="-n 2 --dist loadgroup" runs two xdist workers, the ROS tests on one of them in
# sequence (conftest.pytest_collection_modifyitems): 13.5 min instead of 19 here, but a ROS node process under that
# load once failed to exit within launch's SIGTERM grace (test_launch_files), so CI stays serial.
# The ROS tests share one lock-step `dmpc run` per scenario (conftest.lock_step_run; bench/RESULTS.md "The test
# suite's own time"); every ROS process, test_hosts's namespaces too, is in the xdist group "ros".
PYTEST_WORKERS ?=
# one BLAS thread per process: the suite's matrices are small, and on 2 busy cores OpenBLAS's spinning threads made
# an SQP agent 7× slower (a profile of the pushed quadruple tank: 292 s → 40 s for 5 steps)
SINGLE_BLAS := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: setup launch-stack demo test test-fast bench clean
.DEFAULT_GOAL := demo

setup: $(VENV)/.stamp-package

$(VENV)/.stamp-requirements: requirements.txt tools/fix_wheel_cmake.py tools/check_prereqs.sh
	@python=$$(tools/check_prereqs.sh) || exit 1; \
	  [ -x $(PY) ] || { echo "creating $(VENV) with $$python"; $$python -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) tools/fix_wheel_cmake.py $(VENV)
	@touch $@

$(VENV)/.stamp-msgs: $(VENV)/.stamp-requirements $(MSG_INPUTS) tools/build_msgs.sh
	@mkdir -p build
	tools/build_msgs.sh $(VENV)
	@touch $@

$(VENV)/.stamp-package: $(VENV)/.stamp-msgs $(PKG_INPUTS)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e dmpc_ros
	@# setup.cfg puts executables in lib/dmpc_ros (where `ros2 run` looks); put the `dmpc` CLI on the venv's PATH too.
	ln -sf ../lib/dmpc_ros/dmpc $(VENV)/bin/dmpc
	@# share/dmpc_ros and the ament index entry, so that `ros2 launch dmpc_ros ...` / `ros2 run dmpc_ros ...` find it.
	$(PY) tools/register_ament.py $(VENV)
	@touch $@

launch-stack: $(VENV)/.stamp-launch

$(VENV)/.stamp-launch: $(VENV)/.stamp-package requirements-launch.txt tools/install_launch_stack.sh
	tools/install_launch_stack.sh $(VENV) $(WHEELS)
	@touch $@

demo: setup
	$(VENV)/bin/dmpc run mass_spring --output runs/demo

test: setup
	$(VENV)/bin/ruff check .
	$(SINGLE_BLAS) $(PY) -m pytest dmpc_ros/test $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/ruff check .
	$(SINGLE_BLAS) $(PY) -m pytest dmpc_ros/test -m "not slow" $(PYTEST_WORKERS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dmpc_ros/build dmpc_ros/*.egg-info
