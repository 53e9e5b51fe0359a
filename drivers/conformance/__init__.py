"""The driver conformance kit: proof, through the real gRPC server, that a driver honours
the contract. Subclass :class:`DriverConformance` in a pytest module, name the driver and
its credentials, and pytest runs the whole suite against it (see docs/writing-a-driver.md).

Also importable on their own: :class:`ServerProcess` (a server subprocess on a loopback
port) and :class:`Api` (every service's stub over one channel)."""

from .process import ServerProcess
from .stubs import Api, Failure, basic, failure, metadata

__all__ = ["Api", "DriverConformance", "Failure", "ServerProcess", "basic", "failure", "metadata"]


def __getattr__(name: str) -> object:
    # The suite imports pytest; load it only when a test module asks for it.
    if name == "DriverConformance":
        from .suite import DriverConformance

        return DriverConformance
    raise AttributeError(name)
