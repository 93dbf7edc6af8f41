"""Registers the built-in providers. A new provider adds one line here."""

from . import nsmodelserver, registry

for _provider in (
    nsmodelserver.PROVIDER,
):
    registry.register(_provider)
