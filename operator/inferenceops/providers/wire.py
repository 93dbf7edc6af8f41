"""Wire types that keep what a provider body can make the operator hold in proportion to what the
adapter uses, not to what the provider sent.

pydantic-core parses a body straight into the models and skips an undeclared field without
building it, but every item of a declared list of models becomes a model (~400 bytes for a
3-byte `{}`) before any length check. So the adapters declare only the fields they map, and:

- a list whose items only feed a count keeps each item *reduced* to the few values the adapter
  reads (`Reduced`): a worker that is `{}` is one `None`, not a model;
- a listing keeps only the entries of the endpoints asked about, once each (`wanted_entry`,
  `wanted_key`, with the listing's `ParseContext`), and counts the rest.

`get_json` bounds the number of items first (its JSON token budget); these bound what each item
costs once parsed (docs/providers.md, "Hostile bodies").
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from pydantic import AfterValidator, BaseModel, GetCoreSchemaHandler, ValidationInfo
from pydantic_core import CoreSchema, PydanticOmit, core_schema

__all__ = ["ParseContext", "Reduced", "wanted_entry", "wanted_key"]


@dataclass(slots=True)
class ParseContext:
    """State of one listing's parse: the endpoint ids it is read for."""

    wanted: Collection[object]
    #: How many entries the listing had, kept or not (offset paging advances by it).
    listed: int = 0
    seen: set[object] = field(default_factory=set)

    def keep(self, ident: object) -> bool:
        """Whether a listing entry with this id is kept: wanted and not already seen (a listing
        repeating a wanted entry a million times holds it once)."""
        self.listed += 1
        if ident not in self.wanted or ident in self.seen:
            return False
        self.seen.add(ident)
        return True


class Reduced:
    """`Annotated[T, Reduced(Model, reduce)]`: validate an item as `Model`, keep `reduce(item)`.

    The model (~400 bytes) is dropped as soon as it is reduced, to a value of the few fields the
    mapping reads.
    """

    def __init__(self, model: type[BaseModel], reduce: Callable[[Any], object]) -> None:
        self._model = model
        self._reduce = reduce

    def __get_pydantic_core_schema__(
        self, _source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._reduce, handler.generate_schema(self._model)
        )


def wanted_entry(id_of: Callable[[Any], object]) -> AfterValidator:
    """For a listing's entries: drop (PydanticOmit) those `ParseContext.keep` refuses."""

    def keep(entry: Any, info: ValidationInfo) -> Any:
        context = info.context
        if isinstance(context, ParseContext) and not context.keep(id_of(entry)):
            raise PydanticOmit
        return entry

    return AfterValidator(keep)


#: For a listing keyed by endpoint id: drops the entries of endpoints not asked about.
wanted_key = wanted_entry(lambda key: key)
