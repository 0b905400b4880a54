"""Options declared once: one field declaration carries the default, the help, the bounds or
choices, and whether a resumed run may change it.

Every options class of the library (the strategies' options, the training settings, the data,
stop, fitness and execution sections) is a frozen dataclass whose fields are made with
:func:`option`. Its values are checked from the declarations (:func:`check_fields`, run by the
class's ``__post_init__``), and the command line builds its flags from the same declarations
(``alife_nas.cli._common``), so a new knob is one field: it is a config key, a ``--flag`` with
its default shown in ``--help``, a key of the stored config and of ``status --json`` at once.

Pure data: no torch, no click.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from alife_nas.genome import shown
from alife_nas.validation import check_bool, check_choice, check_int, check_number

__all__ = ["Spec", "option", "spec_of", "specs", "check_fields", "KINDS"]

#: What a value is: ``int``, ``number`` (int or float), ``bool``, ``choice`` (one of ``choices``),
#: ``text`` (a non-empty string), ``filters`` (a set of filter counts, checked by the class) and
#: ``genomes`` (a list of genomes, checked by the class; the command line reads them from a file).
KINDS = ("int", "number", "bool", "choice", "text", "filters", "genomes")


@dataclass(frozen=True)
class Spec:
    """What one option is; see :func:`option`."""

    help: str
    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    none_means: str = "none"
    resume: bool = False
    check: Callable[[str, Any], Any] | None = None
    flags: tuple[str, ...] = ()
    flag_value: str | None = None
    cli: bool = True

    def validate(self, name: str, value: Any) -> Any:
        """``value`` in its canonical type, or a one-line ValueError naming ``name``."""
        if value is None and self.optional:
            return None
        if self.check is not None:
            return self.check(name, value)
        if self.kind == "int":
            return check_int(name, value, _whole(self.low), _whole(self.high))
        if self.kind == "number":
            return check_number(name, value, self.low, self.high, low_open=self.low_open)
        if self.kind == "bool":
            return check_bool(name, value)
        if self.kind == "choice":
            return check_choice(name, value, self.choices)
        if self.kind == "text":
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty text, got {shown(value)}")
            if "\0" in value:  # no file name may hold one; refused here, not as a traceback when opened
                raise ValueError(f"{name} must not contain a NUL character, got {shown(value)}")
            return value
        raise ValueError(f"{name}: an option of kind {self.kind!r} needs its own check")


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


def option(default: Any, help: str, *, kind: str | None = None, low: float | None = None,
           high: float | None = None, low_open: bool = False, choices: Sequence[str] = (),
           optional: bool | None = None, none_means: str = "none", resume: bool = False,
           check: Callable[[str, Any], Any] | None = None, flags: Sequence[str] = (), flag_value: str | None = None,
           cli: bool = True) -> Any:
    """A dataclass field that declares an option.

    ``kind`` defaults from the default's type (see :data:`KINDS`; ``choices`` make it a
    choice). ``low``/``high`` bound numbers (``low_open``: ``low`` itself refused). ``optional``
    (default: the default is None) lets None through; ``none_means`` says what None means in
    ``--help``. ``resume``: a resumed run may change it without changing any result. ``check``
    replaces the standard check (``check(name, value) -> value``). ``flags`` are the
    command-line spellings (default ``--name-with-dashes``); ``flag_value`` is what the flag alone
    means (``--ray`` = ``--ray local``); ``cli=False`` keeps it off the command line (still a
    config key).
    """
    if kind is None:
        kind = ("choice" if choices else "bool" if isinstance(default, bool) else "int" if isinstance(default, int)
                else "number" if isinstance(default, float) else "text" if isinstance(default, str) else None)
        if kind is None:
            raise TypeError(f"option(default={default!r}): give its kind")
    if kind not in KINDS:
        raise TypeError(f"unknown option kind {kind!r}; expected one of {', '.join(KINDS)}")
    spec = Spec(help=" ".join(help.split()), kind=kind, low=low, high=high, low_open=low_open,
                choices=tuple(choices), optional=default is None if optional is None else optional,
                none_means=none_means, resume=resume, check=check, flags=tuple(flags), flag_value=flag_value,
                cli=cli)
    return dataclasses.field(default=default, metadata={"option": spec})


def spec_of(field: dataclasses.Field) -> Spec | None:
    """The declaration of a dataclass field made with :func:`option` (None for another field)."""
    return field.metadata.get("option")


def specs(cls: type) -> dict[str, Spec]:
    """Every declared option of an options class, by name, in declaration order."""
    return {f.name: s for f in dataclasses.fields(cls) if (s := spec_of(f)) is not None}


def declared(cls: type) -> Iterator[tuple[str, Spec, Any]]:
    """(name, spec, default) of every declared option of ``cls``."""
    for f in dataclasses.fields(cls):
        s = spec_of(f)
        if s is not None:
            yield f.name, s, f.default


def check_fields(instance: Any) -> None:
    """Check every declared field of a frozen dataclass and store its canonical value.

    Called first in the class's ``__post_init__``; checks that tie fields together (a tournament
    no larger than the population) come after it, in the class.
    """
    for name, spec, _default in declared(type(instance)):
        object.__setattr__(instance, name, spec.validate(name, getattr(instance, name)))


def filters_option() -> Any:
    """The search space's filter set, an option of every strategy (one declaration for all)."""
    from alife_nas.genome import DEFAULT_FILTERS, normalize_filters

    return option(DEFAULT_FILTERS, "Filter set, comma-separated (at least two distinct counts).", kind="filters",
                  check=lambda _name, value: normalize_filters(value))


def inherit_weights_option() -> Any:
    """``--inherit-weights``, an option of the strategies whose children come from trained parents
    (neuralfinder, regularized): one declaration for both."""
    return option(False, "Children start from their parents' trained layers where shapes allow (docs/method.md, "
                  "Weight inheritance); the weights of what the search holds are kept in RUN/weights.")


def inherited_epochs_option() -> Any:
    """``--inherited-epochs``: the shorter budget of a child that inherits (with :func:`inherit_weights_option`)."""
    return option(1.0, "With --inherit-weights: a child that starts from inherited weights trains this share of the "
                  "epoch limit (rounded up; 1 = all of it).", low=0.0, low_open=True, high=1.0)


def check_inheritance(instance: Any) -> None:
    """A strategy's options: a shorter inherited budget means nothing without inheritance."""
    if instance.inherited_epochs != 1.0 and not instance.inherit_weights:
        raise ValueError(f"inherited_epochs {instance.inherited_epochs} needs inherit_weights: without it no child "
                         "starts from inherited weights")
