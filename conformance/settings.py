"""The run's settings, apart from the plugin that resolves them so that the preflight and the fixtures can
take them without importing the plugin (which imports the preflight).

Standard library only: the plugin loads in every pytest run of an environment where the project is
installed.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Settings"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The target and the run's choices, resolved once from options and the environment."""

    url: str | None
    username: str | None
    password: str | None
    cacert: str | None
    client_cert: str | None
    client_key: str | None
    config_path: str | None
    namespace: str
    crossmount_namespace: str
    disabled: dict[str, str]
    profile: str = "oci"

    @property
    def target(self) -> str:
        return self.url or "the in-process emulator"
