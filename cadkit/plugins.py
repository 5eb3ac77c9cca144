"""Entry-point plug-ins (metrics: ``cadkit.metrics``, erasure methods: ``cadkit.methods``): what is
installed under a group, by name, and which plug-ins are ignored because a built-in or an earlier
plug-in already has their name."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

__all__ = ["Plugin", "discover", "load"]


@dataclass(frozen=True)
class Plugin:
    name: str
    entry_point: EntryPoint
    #: ``plugin <distribution> <version>`` (or ``plugin <module:attr>`` without a distribution).
    source: str


def discover(group: str, builtin: Collection[str]) -> tuple[dict[str, Plugin], list[Plugin]]:
    """Installed plug-ins of ``group`` by name, and those ignored because their name is taken (in name,
    then value order, so the outcome does not depend on the order of ``sys.path``)."""
    found: dict[str, Plugin] = {}
    ignored: list[Plugin] = []
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        source = f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin {ep.value}"
        plug = Plugin(ep.name, ep, source)
        if ep.name in builtin or ep.name in found:
            ignored.append(plug)
        else:
            found[ep.name] = plug
    return found, ignored


def load(plug: Plugin, kind: str) -> object:
    """The object ``plug`` names; one line (:class:`~cadkit.errors.CadkitError`) when it fails to import."""
    from cadkit.errors import CadkitError

    try:
        return plug.entry_point.load()
    except Exception as exc:
        text = str(exc).strip().splitlines()
        why = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        raise CadkitError(f"{kind} plugin {plug.name} ({plug.source}) failed to load: {why}") from exc
