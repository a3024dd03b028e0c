"""A protocol-faithful simulator of the Chutes validator's miner-facing API (HTTP streams,
signatures, launch configs, capacity rules, socket.io feed), with a control surface."""

from gepetto_sandbox.validator.catalog import Catalog, generate_catalog
from gepetto_sandbox.validator.faults import Fault
from gepetto_sandbox.validator.server import SandboxValidator

__all__ = ["Catalog", "Fault", "SandboxValidator", "generate_catalog"]
