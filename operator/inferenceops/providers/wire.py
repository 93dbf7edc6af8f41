"""Wire types that keep what a provider body can make the operator hold in proportion to what the
adapter uses, not to what the provider sent.

pydantic-core parses a body straight into the models and skips an undeclared field without
building it, but every item of a declared list of models becomes a model (~400 bytes for a
3-byte `{}`) before any length check. So the adapters declare only the fields they map, and:

- a list whose items only feed a count or the first/last item keeps each item *reduced* to the
  few values the adapter reads (`Reduced`), interned per parse, so a million identical items are
  one value a million times;
- a listing keeps only the entries of the endpoints asked about, once each (`wanted_entry`,
  `wanted_key`), and counts the rest.

Both use the `ParseContext` that `get_json` passes to every parse (docs/providers.md, "Hostile
bodies").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Any

from pydantic import AfterValidator, BaseModel, GetCoreSchemaHandler, ValidationInfo
from pydantic_core import CoreSchema, PydanticOmit, core_schema

__all__ = ["ParseContext", "Reduced", "wanted_entry", "wanted_key"]

#: Distinct reductions interned per parse: floods of equal items share one value, and floods of
#: distinct ones do not grow the table past this.
_INTERN_LIMIT = 1024


@dataclass(slots=True)
class ParseContext:
    """State of one parse. `wanted`: the endpoint ids a listing is read for (None: keep all)."""

    wanted: Collection[object] | None = None
    #: How many entries the listing had, kept or not (offset paging advances by it).
    listed: int = 0
    seen: set[object] = field(default_factory=set)
    interned: dict[Hashable, Hashable] = field(default_factory=dict)

    def keep(self, ident: object) -> bool:
        """Whether a listing entry with this id is kept: wanted and not already seen."""
        self.listed += 1
        if self.wanted is None:
            return True
        if ident not in self.wanted or ident in self.seen:
            return False
        self.seen.add(ident)
        return True


class Reduced:
    """`Annotated[T, Reduced(Model, reduce)]`: validate an item as `Model`, keep `reduce(item)`.

    The model is dropped as soon as it is reduced; equal reductions within one parse are the
    same object, so a list of a million `{}` costs a list of pointers to one tuple.
    """

    def __init__(self, model: type[BaseModel], reduce: Callable[[Any], Hashable]) -> None:
        self._model = model
        self._reduce = reduce

    def _reduced(self, item: Any, info: ValidationInfo) -> Hashable:
        value = self._reduce(item)
        context = info.context
        if not isinstance(context, ParseContext):
            return value
        interned = context.interned
        if len(interned) < _INTERN_LIMIT:
            return interned.setdefault(value, value)
        return interned.get(value, value)

    def __get_pydantic_core_schema__(
        self, _source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.with_info_after_validator_function(
            self._reduced, handler.generate_schema(self._model)
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
