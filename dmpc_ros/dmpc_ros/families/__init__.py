"""The built-in model families of the scenario format, one module each (found by scenarios.family's registry:
every module here with a FAMILY is registered under FAMILY.name; a user's package adds families through the
entry point group `dmpc_ros.models`)."""
