"""Input specs: what a checkpoint accepts, typed once per domain.

An input spec travels with the weights as a JSON dict (``config.json`` -> ``input_spec``) and is enforced when a
model is fed. Each domain package declares one :class:`InputSpec` subclass per kind of input in its ``spec.py``
(audio, a table, a protein sequence, a CT/MR volume, multispectral bands, a graph, a time series) and each model
class names its spec class in ``input_spec_class``. The spec is checked when a checkpoint is saved (a model cannot
ship a spec its loader would refuse) and when it is loaded (an edited config is refused with the key it lacks).

A subclass states its keys and their JSON types; ``check`` adds rules that span keys::

    class AudioInput(InputSpec):
        modality = "audio"
        required = {"sample_rate": int, "channels": int}
        optional = {"min_seconds": (int, float)}

        @classmethod
        def check(cls, spec):
            if spec["sample_rate"] <= 0:
                raise InputSpecError(...)
"""

from __future__ import annotations

from typing import Any, ClassVar

from .errors import InputSpecError

_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "true/false", type(None): "null"}


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(_JSON_NAMES.get(t, t.__name__) for t in types)


def _is(value: Any, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:  # JSON true is not a number
        return False
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


class InputSpec:
    """Base class of the domains' input specs (see the module docstring). Never instantiated: the spec itself stays
    the JSON dict that config.json holds; the class validates it."""

    modality: ClassVar[str] = ""  # what kind of input ("audio", "table", "protein-sequence", ...)
    required: ClassVar[dict[str, type | tuple]] = {}  # key -> JSON type(s) it must have
    optional: ClassVar[dict[str, type | tuple]] = {}  # key -> JSON type(s) when present; other keys are kept

    @classmethod
    def validate(cls, spec: Any, where: str = "input_spec") -> dict:
        """``spec`` if it fits this class, else an :class:`InputSpecError` naming the key, the type expected and
        the value found."""
        if not isinstance(spec, dict):
            raise InputSpecError(f"{where}: expected a {cls.__name__} ({cls.modality or 'input'} spec) as a JSON "
                                 f"object with keys {sorted(cls.required)}, got {type(spec).__name__}")
        missing = [k for k in cls.required if k not in spec]
        if missing:
            raise InputSpecError(f"{where}: a {cls.__name__} needs the keys {sorted(cls.required)}; "
                                 f"missing {missing} (has {sorted(spec)})")
        for table in (cls.required, cls.optional):
            for key, types in table.items():
                if key in spec and not _is(spec[key], types):
                    raise InputSpecError(f"{where}[{key!r}]: expected {_type_name(types)}, "
                                         f"got {spec[key]!r} ({type(spec[key]).__name__})")
        cls.check(spec, where)
        return spec

    @classmethod
    def check(cls, spec: dict, where: str) -> None:
        """Rules across keys (a positive sample rate, as many means as bands, ...). Raise InputSpecError."""

    @classmethod
    def describe(cls) -> str:
        """One line for listings: the modality and the keys a spec of this kind carries."""
        return f"{cls.modality or cls.__name__}: {', '.join(cls.required)}"


def spec_class_of(model_or_class) -> type[InputSpec] | None:
    """The InputSpec subclass a model (or model class) declares in ``input_spec_class``, or None."""
    klass = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    spec_cls = getattr(klass, "input_spec_class", None)
    if spec_cls is not None and not (isinstance(spec_cls, type) and issubclass(spec_cls, InputSpec)):
        raise TypeError(f"{klass.__name__}.input_spec_class must be an fmzoo.core.spec.InputSpec subclass, "
                        f"got {spec_cls!r}")
    return spec_cls


def validate_input_spec(model_or_class, spec: Any, where: str = "input_spec") -> Any:
    """Validate ``spec`` against the model's declared spec class. No class declared, or no spec at all (a model
    built bare, before it has seen data: its card then shows none), is returned unchanged."""
    spec_cls = spec_class_of(model_or_class)
    return spec if spec_cls is None or spec is None else spec_cls.validate(spec, where)
