"""Real registry clients for tests: images built offline with umoci, skopeo, and oras-py.

Typical use::

    ref = build_image(tmp_path, layers=2)  # "oci:<tmp_path>/image:1"
    skopeo("copy", "--dest-tls-verify=false", ref, f"docker://{registry.host}/test/img:1")
    client = oras_client(registry.host)  # plain HTTP
"""

from __future__ import annotations

import os
import subprocess
import typing as t
from pathlib import Path

import pytest

if t.TYPE_CHECKING:
    import oras.client

__all__ = ["build_image", "needs_tools", "oras_client", "skopeo"]

#: Seconds any single client command may take; generous for slow CI machines.
COMMAND_TIMEOUT = 600.0


#: A test that builds and copies images with skopeo and umoci (see :mod:`tests.peers` for a missing one).
needs_tools = pytest.mark.needs("skopeo", "umoci")


def _run(command: t.Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with status {result.returncode}:\n{result.stderr.strip()}"
        )
    return result


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``skopeo --insecure-policy ARGS...`` and return its captured (text) output.

    :raises RuntimeError: with skopeo's stderr, when it fails and ``check`` is true.
    """
    return _run(["skopeo", "--insecure-policy", *args], check=check)


def build_image(workdir: Path, *, layers: int = 1, layer_size: int = 1024, tag: str = "1") -> str:
    """Build an image offline into the OCI layout ``workdir/image`` and return ``oci:<layout>:<tag>``.

    Every layer holds one file of ``layer_size`` random bytes, so each call gives new digests. Several tags
    can be built into the same layout by calling again with another ``tag``.
    """
    layout = workdir / "image"
    if not (layout / "index.json").exists():
        _run(["umoci", "init", "--layout", str(layout)])
    image = f"{layout}:{tag}"
    _run(["umoci", "new", "--image", image])
    content = workdir / f"content-{tag}"
    content.mkdir(parents=True, exist_ok=True)
    for number in range(1, layers + 1):
        source = content / f"layer{number}.bin"
        source.write_bytes(os.urandom(layer_size))
        _run(["umoci", "insert", "--image", image, str(source), f"/data/layer{number}.bin"])
    _run(["umoci", "config", "--image", image, "--config.cmd", "/bin/true"])
    return f"oci:{layout}:{tag}"


def oras_client(host: str, **kwargs: t.Any) -> oras.client.OrasClient:
    """An oras-py client for ``host`` (``127.0.0.1:PORT``); plain HTTP unless ``insecure=False`` is given.

    Other keyword arguments (``auth_backend="basic"``, ``tls_verify=...``) go to ``OrasClient``.
    """
    import oras.client

    options: dict[str, t.Any] = {"hostname": host, "insecure": True, **kwargs}
    return oras.client.OrasClient(**options)
