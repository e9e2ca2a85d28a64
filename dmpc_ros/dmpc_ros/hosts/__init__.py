"""A team split across network hosts on one machine (network namespaces, a bridge, per-link loss): the harness of
the multi-host tests and bench/faults.py. No ROS imports: it starts commands, the runs are `dmpc run --nodes`."""
