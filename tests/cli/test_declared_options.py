"""Every library option is a flag and a --config key with the same name: generated from the declarations.

For each declared option of SearchConfig's sections and of every strategy's options, the test
makes a valid value other than the default (from the declaration's kind, bounds and choices),
gives it once as a flag and once in a config file, and checks that the config the library gets
holds it. A new field is covered the day it is declared.
"""
from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.cli._common import DECLARED, DEFAULTS
from alife_nas.config import OPTION_CLASSES, SearchConfig
from alife_nas.options import Spec, specs
from alife_nas.strategies import STRATEGIES
from tests.cli.test_run import capture_config

#: Options whose valid values the declaration cannot guess (a free text, a cross-field rule).
SPECIAL = {"dataset": "cifar10", "data_dir": "elsewhere", "devices": "cpu,cpu", "ray": "auto", "device": "cpu",
           "filters": [16, 64], "radius": 2, "tournament": 3, "gpus_per_trial": 0.5, "strategy": "ga",
           "executor": "local"}
#: Options that need another one to be valid.
NEEDS = {"gpus_per_trial": {"ray": "auto"}, "radius": {"lattice": 5}, "masters": {"lattice": 9},
         "inherited_epochs": {"inherit_weights": True}}


def other_value(name: str, spec: Spec, default):
    """A valid value of the option that is not its default."""
    if name in SPECIAL:
        return SPECIAL[name]
    if spec.kind == "bool":
        return not default if default is not None else True
    if spec.kind == "choice":
        return next(c for c in spec.choices if c != default)
    if spec.kind == "int":
        low = int(spec.low) if spec.low is not None else 0
        value = low + 1 if default is None else default + 1
        return value if spec.high is None or value <= spec.high else default - 1
    if spec.kind == "genomes":  # a list in a config file, a file of one genome a line on the command line
        return ["32-64-M-128", "16-M"]
    if spec.kind == "number":
        low = spec.low if spec.low is not None else 0.0
        value = (low + 0.5) if default is None else default / 2 if default else 0.25
        return min(value, spec.high) if spec.high is not None else value
    raise AssertionError(f"no test value for {name} ({spec.kind})")


def declared_names() -> list[tuple[str, str | None]]:
    """(option, the strategy it needs or None) for every declared option."""
    names = [(n, None) for cls in OPTION_CLASSES for n in specs(cls)]
    for strategy, cls in STRATEGIES.items():
        names += [(n, strategy) for n in specs(cls.Options) if n not in dict(names)]
    return names


def option_of(config: SearchConfig, name: str):
    return config.options()[name]


def flags_for(options: dict, folder=None) -> list[str]:
    flags: list[str] = []
    for key, value in options.items():
        spec = DECLARED[key][0]
        dashed = key.replace("_", "-")
        if spec.kind == "genomes":
            (folder / f"{key}.txt").write_text("".join(f"{genome}\n" for genome in value))
            flags += [f"--{dashed}", str(folder / f"{key}.txt")]
        elif spec.kind == "bool":
            words = spec.flags[0].split("/") if spec.flags else [f"--{dashed}", f"--no-{dashed}"]
            flags.append(words[0].strip() if value else words[1].strip())
        else:
            flags += [f"--{dashed}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return flags


@pytest.mark.parametrize("name,strategy", declared_names(), ids=[n for n, _ in declared_names()])
def test_every_declared_option_is_a_flag_and_a_config_key(monkeypatch, tmp_path, name, strategy):
    spec = DECLARED[name][0]
    default = DEFAULTS.get(name)
    if name == "filters":
        default = [int(v) for v in default.split(",")]
    value = other_value(name, spec, default)
    options = {**({"strategy": strategy} if strategy else {}), **NEEDS.get(name, {}), name: value}
    by_flag = capture_config(monkeypatch, flags_for(options, tmp_path))
    file = tmp_path / "options.json"
    file.write_text(json.dumps(options))
    by_file = capture_config(monkeypatch, ["--config", str(file)])
    assert by_flag == by_file
    got = option_of(by_flag, name)
    assert got == value and got != (default if name != "filters" else list(default)), (name, got, value)


def test_every_option_of_evolve_is_declared_or_only_watches(monkeypatch):
    """Nothing on the command line that the library does not declare (watching options aside)."""
    command = main.commands["evolve"]
    names = {p.name for p in command.params if isinstance(p, click.Option)}
    # where the run goes and how it starts (out, config, download, force: not stored, change no result)
    assert names - set(DECLARED) == {"out", "config", "download", "force", "progress", "tensorboard",
                                     "tensorboard_every", "report_every"}
    assert {n for n, _ in declared_names()} <= names


def test_help_shows_the_library_default_of_every_option():
    text = " ".join(CliRunner().invoke(main, ["evolve", "--help"], terminal_width=400).output.split())
    for name in DECLARED:
        assert f"--{name.replace('_', '-')}" in text or name in ("torus",), name
    assert "--aug-flip / --no-aug-flip" in text and "[default: the preset's (paper: off, fast: auto)]" in text
    assert "--torus / --bounded" in text and "[default: torus]" in text


def test_status_json_config_fed_back_through_config_gives_the_same_config(monkeypatch, tmp_path):
    """A stored run config (nested sections, nulls included) is a config file as it is."""
    config = SearchConfig.from_options(strategy="rl", budget=30, aug_flip=None, preset="paper",
                                       image_size=None, workers=2, controller_batch=3)
    file = tmp_path / "config.json"
    file.write_text(json.dumps(config.to_dict()))
    assert capture_config(monkeypatch, ["--config", str(file)]) == config


def test_none_sets_an_optional_option_to_none(monkeypatch, tmp_path):
    config = capture_config(monkeypatch, ["--steps", "none", "--budget", "20"])
    assert config.stop.steps is None and config.stop.budget == 20
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"preset": "paper", "aug_flip": None}))
    assert capture_config(monkeypatch, ["--config", str(file)]).training.aug_flip is None  # paper's own is off
    file.write_text(json.dumps({"lattice": None}))
    result = CliRunner().invoke(main, ["evolve", "--out", "unused", "--config", str(file)])
    assert result.exit_code == 2 and "lattice cannot be null" in result.output
