"""A `_target_`'s schema derived from its annotated signature: one field per parameter the config sets, of the
annotated type, every value MISSING (the value is written once, in the option's YAML). The caller says which
parameters the run supplies at build time (no config keys; the option is then built `_partial_`), which are tied to
a top-level knob (`${lr}`) and which are sections with a hand-written schema of their own."""

from __future__ import annotations

import copyreg
import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hydra.utils import get_object
from omegaconf import MISSING

from facenet.errors import ConfigError

SCALARS = (int, float, str, bool)


def parameters(target: Callable) -> dict[str, Any]:
    """name -> annotation (`inspect.Parameter.empty` if none) of what calling `target` takes: a function's
    parameters, or a class's `__init__`'s followed through `**kwargs` into the next base class that defines one
    (of the target's own package or this one: not into MindSpore's `nn.Cell`, whose own arguments no config sets)."""
    if not inspect.isclass(target):
        chain = [target]
    else:
        ours = {target.__module__.split(".")[0], __name__.split(".")[0]}
        chain = [c.__init__ for c in target.__mro__ if "__init__" in vars(c) and c.__module__.split(".")[0] in ours]
    out: dict[str, Any] = {}
    for fn in chain:
        params = list(inspect.signature(fn).parameters.values())[1 if inspect.isclass(target) else 0 :]
        for p in params:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                out.setdefault(p.name, (fn, p.annotation))
        if all(p.kind is not p.VAR_KEYWORD for p in params):
            break
    return {name: _resolved(fn, name, ann) for name, (fn, ann) in out.items()}


def _resolved(fn: Callable, name: str, annotation: Any) -> Any:
    """The annotation evaluated in `fn`'s module (a string under `from __future__ import annotations`), or the
    string itself if it names something that module does not import (a run-supplied parameter's type may not)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        return typing.get_type_hints(holder, getattr(fn, "__globals__", {}))[name]
    except NameError:
        return annotation


def config_type(tp: Any) -> Any:
    """The OmegaConf type holding a value annotated `tp` (sequences become lists); TypeError if none can."""
    if tp in SCALARS or tp is Any or dataclasses.is_dataclass(tp):
        return tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return config_type(rest[0]) | None if len(rest) < len(args) else config_type(rest[0])
    elif tp in (list, tuple) or origin in (list, tuple, Sequence):
        items = {a for a in args if a is not Ellipsis}
        return list[config_type(items.pop())] if len(items) == 1 else list[Any]
    elif tp is dict or origin in (dict, Mapping) and args[:1] == (str,):
        return dict[str, config_type(args[1]) if args else Any]
    raise TypeError("no annotation" if tp is inspect.Parameter.empty else f"{tp} is not a type a config value has")


class Derived(type):
    """Metaclass of derived schemas. They live in no module, so they pickle as the call that derives them again
    (a composed config carries its schemas; a parallel sweep's job pickles it)."""


class _Base(metaclass=Derived):
    pass


copyreg.pickle(Derived, lambda cls: (schema, cls.derived_from) if "derived_from" in vars(cls) else cls.__qualname__)


def schema(
    target: str,
    supplied: Sequence[str] = (),
    ties: Mapping[str, str] | None = None,
    sections: Mapping[str, type] | None = None,
) -> type:
    """The schema dataclass `<Name>Conf` of `target` (a dotted path): `_target_`; `_partial_: true` if the run
    supplies arguments; a field per other parameter, MISSING or its tie's interpolation, or a section's schema.
    One class per derivation (cached), so a config unpickled in this process keeps its schema's identity."""
    return _schema(target, tuple(supplied), *(tuple(sorted((d or {}).items())) for d in (ties, sections)))


@functools.cache
def _schema(target: str, supplied: tuple[str, ...], tie_items: tuple, section_items: tuple) -> type:
    ties, sections = dict(tie_items), dict(section_items)
    fields: list[tuple] = [("_target_", str, dataclasses.field(default=target))]
    if supplied:
        fields.append(("_partial_", bool, dataclasses.field(default=True)))
    for name, annotation in parameters(get_object(target)).items():
        if name in sections:
            fields.append((name, sections[name], dataclasses.field(default_factory=sections[name])))
        elif name not in supplied:
            try:
                tp = config_type(annotation)
            except TypeError as err:
                why = f"{target}: parameter {name!r}: {err}"
                raise ConfigError(f"{why} (annotate it with a config type, or the run supplies it: SUPPLIED)") from None
            fields.append((name, tp, dataclasses.field(default=ties.get(name, MISSING))))
    short = target.rsplit(".", 1)[-1]
    cls = dataclasses.make_dataclass(short[:1].upper() + short[1:] + "Conf", fields, bases=(_Base,))
    cls.__module__, cls.derived_from = __name__, (target, supplied, ties, sections)
    return cls
