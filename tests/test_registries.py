"""Every part that plugs in (providers, detectors, import and export formats) sits in the same kind of registry
(duologue.plugins.Registry), with the same rules: a name is taken once, a broken plugin is recorded and named
instead of breaking the others, an entry point may give one part or several."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from duologue import plugins
from duologue.backends.provider import Provider
from duologue.backends.registry import PROVIDERS
from duologue.detectors import DETECTORS, Detector
from duologue.errors import DuologueError
from duologue.exports import RUN_FORMATS, RunFormat, run_format
from duologue.importers import IMPORT_FORMATS, ImportFormat, import_format

REGISTRIES = {
    "provider": (PROVIDERS, lambda name: Provider(name, "test", make=lambda p, provider, n: None)),
    "detector": (DETECTORS, lambda name: Detector(name, make=lambda spec, settings: None)),
    "export format": (RUN_FORMATS, lambda name: RunFormat(name, "txt", "text/plain", "", lambda r, a, e: "")),
    "import format": (
        IMPORT_FORMATS,
        lambda name: ImportFormat(name, "", (), lambda path: False, lambda path, options: []),
    ),
}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_a_name_is_taken_once_unless_replaced(kind):
    registry, make = REGISTRIES[kind]
    first, second = make("twice"), make("twice")
    registry.register(first)
    try:
        with pytest.raises(DuologueError, match=f"{kind} 'twice' is already registered"):
            registry.register(second)
        assert registry["twice"] is first
        registry.register(second, replace=True)
        assert registry["twice"] is second and "twice" in list(registry)
    finally:
        registry.unregister("twice")
    assert "twice" not in registry


def test_a_broken_plugin_is_recorded_and_named_and_the_others_still_load(monkeypatch):
    good = Provider("fine", "test", make=lambda p, provider, n: None)
    points = [
        EntryPoint("broken", "no_such_module_anywhere:PROVIDER", "duologue.test"),
        EntryPoint("fine", "test_registries:GOOD", "duologue.test"),
        EntryPoint("many", "test_registries:SEVERAL", "duologue.test"),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: points if group == "duologue.test" else [])
    globals()["GOOD"] = good
    globals()["SEVERAL"] = lambda: [Provider("one", "test"), Provider("two", "test")]
    registry = plugins.Registry("provider", Provider, "duologue.test")
    assert list(registry) == ["fine", "one", "two"]
    assert "no_such_module_anywhere" in (registry.why_missing("broken") or "")
    assert set(registry.broken) == {"broken"}


def test_an_entry_point_that_repeats_a_name_is_recorded_the_first_kept(monkeypatch):
    points = [EntryPoint(n, "test_registries:SAME", "duologue.test") for n in ("first", "again")]
    monkeypatch.setattr(plugins, "entry_points", lambda group: points)
    globals()["SAME"] = Provider("same", "test")
    registry = plugins.Registry("provider", Provider, "duologue.test")
    assert list(registry) == ["same"] and "already registered" in registry.broken["again"]


def test_asking_for_a_format_a_broken_plugin_should_have_given_says_why(monkeypatch):
    for registry, group, ask in (
        (RUN_FORMATS, "duologue.exports", run_format),
        (IMPORT_FORMATS, "duologue.importers", import_format),
    ):
        broken = plugins.Registry(registry.what, registry.cls, group, builtins=lambda: ())
        monkeypatch.setattr(
            plugins, "entry_points", lambda group: [EntryPoint("odt", "no_such_module_anywhere:FORMAT", group)]
        )
        monkeypatch.setattr(registry, "_broken", broken.broken)
        with pytest.raises(DuologueError, match="plugin no_such_module_anywhere:FORMAT failed to load"):
            ask("odt")
