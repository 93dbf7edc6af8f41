"""Registers the built-in providers. A new provider adds one line here."""

from . import dataarts, friendli, nsmodelserver, registry, runpod, takeoff

for _provider in (
    nsmodelserver.PROVIDER,
    takeoff.PROVIDER,
    dataarts.PROVIDER,
    friendli.PROVIDER,
    runpod.PROVIDER,
):
    registry.register(_provider)
