"""A conformance suite for any registry: the OCI distribution-spec checks, Docker compatibility, the pack
registry surface and checks derived from the registry's own configuration.

Run it with ``pytest --pyargs conformance --pax-registry-url URL`` (without a URL it starts the emulator
in process). It speaks HTTP only; ``conformance.plugin`` holds its options and reporting.
"""
