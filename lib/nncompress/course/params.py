"""Notebook parameters: presets and validation.

Every chapter declares its parameters once, as a :class:`Spec` (name, type, allowed
values, and one default per preset).  A notebook's ``parameters`` cell assigns every
name (``None`` means "take the preset's value"); the next cell calls
:func:`resolve` with ``globals()``, which

* rejects names that are not parameters of the chapter (a papermill ``-p temprature 3``
  typo fails at once, with a "did you mean" hint),
* rejects values of the wrong type or outside the allowed set/range, naming the
  parameter, the value and what is allowed,
* fills ``None`` from the chosen preset (``cpu``: the <= 90 s default; ``gpu``: the
  full-scale experiment the chapter is modelled on).

The result is a read-only :class:`Params` mapping with attribute access.
"""
from __future__ import annotations

import difflib
import math
import types
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

PRESETS = ("cpu", "gpu")
DEVICES = ("auto", "cpu", "cuda", "mps")


class ParameterError(ValueError):
    """A notebook parameter has an unknown name or a value that is not allowed."""


@dataclass(frozen=True)
class Spec:
    """One parameter: its type, what is allowed, and its default in each preset.

    ``default`` applies to every preset unless ``presets`` overrides it, e.g.
    ``Spec(int, low=1, presets={"cpu": 8, "gpu": 200})``.  ``kind`` is one of
    ``int``, ``float``, ``str``, ``bool``, ``list`` (a list of ``item`` values) or
    ``"path"`` (a string or ``None``).
    """

    kind: Any
    default: Any = None
    presets: Mapping[str, Any] = field(default_factory=dict)
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    item: Any = None  # element kind for list parameters
    allow_none: bool = False
    help: str = ""

    def default_for(self, preset: str) -> Any:
        return self.presets.get(preset, self.default)

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            name = self.kind if isinstance(self.kind, str) else self.kind.__name__
            if self.kind is list:
                item = self.item.__name__ if self.item is not None else "value"
                name = f"a list of {item}"
            text = name
            if self.low is not None and self.high is not None:
                text += f" in [{self.low}, {self.high}]"
            elif self.low is not None:
                text += f" >= {self.low}"
            elif self.high is not None:
                text += f" <= {self.high}"
        if self.allow_none:
            text += " (or None)"
        return text


def _check_scalar(name: str, value: Any, kind: Any, spec: Spec) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(
            f"parameter {name!r} = {value!r} is not allowed: expected {spec.allowed()}")
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and value.is_integer():
            value, ok = int(value), True
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    elif kind in (str, "path"):
        ok = isinstance(value, str)
    else:  # pragma: no cover - programming error in a Spec
        raise TypeError(f"unsupported kind {kind!r} for parameter {name!r}")
    if not ok:
        raise ParameterError(
            f"parameter {name!r} = {value!r} is not allowed: expected {spec.allowed()}")
    if spec.choices is not None and value not in spec.choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ParameterError(
            f"parameter {name!r} = {value!r} is not allowed{extra}: expected {spec.allowed()}")
    if spec.low is not None and value < spec.low or spec.high is not None and value > spec.high:
        raise ParameterError(
            f"parameter {name!r} = {value!r} is out of range: expected {spec.allowed()}")
    return value


def check_value(name: str, value: Any, spec: Spec) -> Any:
    """Validate (and lightly normalise) one value against its spec."""
    if value is None:
        if spec.allow_none or spec.kind == "path":
            return None
        raise ParameterError(f"parameter {name!r} = None is not allowed: expected {spec.allowed()}")
    if spec.kind is list:
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            raise ParameterError(
                f"parameter {name!r} = {value!r} is not allowed: expected {spec.allowed()}")
        item_spec = Spec(spec.item, choices=spec.choices, low=spec.low, high=spec.high)
        return [_check_scalar(name, v, spec.item, item_spec) for v in value]
    return _check_scalar(name, value, spec.kind, spec)


def common_specs() -> dict[str, Spec]:
    """Parameters every chapter has."""
    return {
        "preset": Spec(str, "cpu", choices=PRESETS, help="scale: cpu (<= 90 s) or gpu (full size)"),
        "seed": Spec(int, 0, low=0, high=2**31 - 1, help="base random seed"),
        "device": Spec(str, "auto", choices=DEVICES, help="auto picks cuda, then mps, then cpu"),
        "data_root": Spec("path", None, help="folder with real datasets (None: offline data only)"),
    }


class Params(Mapping):
    """Validated parameters: a read-only mapping with attribute access."""

    def __init__(self, values: Mapping[str, Any]):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("Params are read-only; change them in the parameters cell")

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Params({inner})"


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_BASELINE = "_nncompress_parameter_names"


def _user_names(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The names a parameters cell (or papermill) assigned: plain data, no modules."""
    out = {}
    for name, value in namespace.items():
        if name.startswith("_") or name in _IPYTHON_NAMES:
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)):
            continue
        out[name] = value
    return out


def resolve(specs: Mapping[str, Spec], namespace: Mapping[str, Any] | None = None,
            *, ignore: Iterable[str] = (), **values: Any) -> Params:
    """Validate parameters against ``specs`` and fill ``None`` from the preset.

    ``namespace`` is usually ``globals()`` of the notebook; every plain-data name in it
    must be a parameter (a typo is an error).  Keyword ``values`` override it.
    """
    given = _user_names(namespace or {})
    baseline = (namespace or {}).get(_BASELINE)
    if baseline is not None:  # a re-run: ignore names the notebook defined after the first call
        given = {k: v for k, v in given.items() if k in baseline}
    for name in ignore:
        given.pop(name, None)
    given.update(values)
    unknown = sorted(set(given) - set(specs))
    if unknown:
        name = unknown[0]
        hint = difflib.get_close_matches(name, list(specs), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ParameterError(
            f"unknown parameter {name!r}{extra}; this notebook's parameters are: "
            + ", ".join(sorted(specs))
            + (f" (if you already removed it from the parameters cell, run `del {name}` or restart the kernel)"
               if name not in values else ""))
    preset = given.get("preset") or specs["preset"].default
    preset = check_value("preset", preset, specs["preset"])
    out = {}
    for name, spec in specs.items():
        value = given.get(name)
        if value is None:
            value = spec.default_for(preset)
        out[name] = check_value(name, value, spec)
    if isinstance(namespace, dict):
        namespace[_BASELINE] = frozenset(given)
    return Params(out)


def describe(specs: Mapping[str, Spec]):
    """A table (pandas DataFrame) of the parameters, their presets and allowed values."""
    import pandas as pd

    rows = [{"parameter": n, **{p: s.default_for(p) for p in PRESETS},
             "allowed": s.allowed(), "meaning": s.help} for n, s in specs.items()]
    return pd.DataFrame(rows).set_index("parameter")
