"""The Lucide icon set: names from the `lucide` package, loose-name resolution, sanitised SVGs."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from metric_cards import icons
from metric_cards.catalog import METRICS
from metric_cards.icons import icon_match, icon_svg, lucide_names, resolve_icon

# Catalog icons that are Lucide's *old* names (still resolved, but the catalog should use the
# current ones): pie-chart -> chart-pie, alert-triangle -> triangle-alert.
CATALOG_LEGACY_NAMES = {"pie-chart": "chart-pie", "alert-triangle": "triangle-alert"}


def test_names_come_from_the_package() -> None:
    names = lucide_names()
    assert len(names) > 1000
    assert {"dollar-sign", "users", "trending-up", "triangle-alert", "chart-pie"} <= names
    assert lucide_names() is names  # loaded once


def test_every_catalog_icon_is_a_lucide_icon() -> None:
    unresolved = {icon for m in METRICS for icon in m.icons if resolve_icon(icon) is None}
    assert not unresolved, f"catalog icons missing from Lucide: {sorted(unresolved)}"


def test_catalog_icons_not_spelled_as_current_lucide_names_are_known_renames() -> None:
    inexact = {icon for m in METRICS for icon in m.icons if icon not in lucide_names()}
    assert inexact <= set(CATALOG_LEGACY_NAMES), f"rename in catalog: {sorted(inexact)}"
    for old, new in CATALOG_LEGACY_NAMES.items():
        assert icon_match(old) == (new, "legacy")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dollar", "dollar-sign"),
        ("bar-chart", "chart-no-axes-column-increasing"),  # Lucide's own rename of Feather's
        ("trend-up", "trending-up"),
        ("money-bill", "banknote"),
        ("exclamation-triangle", "triangle-alert"),
        ("refresh", "refresh-cw"),
        ("users", "users"),
        ("Dollar Sign", "dollar-sign"),
        ("dollar_sign", "dollar-sign"),
        ("DollarSign", "dollar-sign"),
        ("TRENDING-UP", "trending-up"),
        ("  trending up  ", "trending-up"),
        ("fas fa-users", "users"),
        ("lucide:ShoppingCart", "shopping-cart"),
        ("alert-triangle", "triangle-alert"),
        ("BarChart3", "chart-column"),
        ("home", "house"),
        ("user-times", "user-x"),
        ("sign-out-alt", "log-out"),
        ("heartbeat", "heart-pulse"),
        ("support-agent", "headset"),
        ("error_outline", "circle-alert"),
    ],
)
def test_resolve_icon(name: str, expected: str) -> None:
    assert resolve_icon(name) == expected


@pytest.mark.parametrize("name", ["renew", "expenses", "chart-growth", "", "   ", "-", "fa"])
def test_unknown_icons(name: str) -> None:
    assert resolve_icon(name) is None
    assert icon_match(name) == (None, "unknown")


def test_non_string_is_unknown() -> None:
    assert icon_match(42) == (None, "unknown")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("dollar-sign", "exact"),
        ("DollarSign", "variant"),
        ("alert-triangle", "legacy"),
        ("dollar", "alias"),
        ("renew", "unknown"),
    ],
)
def test_match_kinds(name: str, kind: str) -> None:
    assert icon_match(name)[1] == kind


def test_alias_tables_point_at_real_icons() -> None:
    names = lucide_names()
    assert set(icons._FOREIGN_ALIASES.values()) <= names
    legacy = icons._legacy_renames()
    assert len(legacy) > 200
    assert set(legacy.values()) <= names
    assert not set(legacy) & names  # an old name never shadows a current one


def test_icon_svg_is_the_lucide_markup() -> None:
    svg = icon_svg("dollar")
    assert svg is not None and svg.startswith("<svg")
    assert svg == icon_svg("dollar-sign")
    root = ElementTree.fromstring(svg)
    assert root.get("viewBox") == "0 0 24 24"
    assert root.get("class") == "lucide lucide-dollar-sign"
    assert root.get("stroke") == "currentColor"
    assert len(list(root)) >= 2 and "\n" not in svg
    assert icon_svg("renew") is None


def test_every_catalog_icon_has_an_svg() -> None:
    for metric in METRICS:
        for icon in metric.icons:
            assert (icon_svg(icon) or "").startswith("<svg"), icon


def test_sanitiser_drops_anything_that_could_run() -> None:
    root = ElementTree.fromstring(
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)" viewBox="0 0 24 24">'
        '<script>alert(1)</script><path d="M1 1" onclick="x()"/>'
        '<a href="javascript:alert(1)"><circle r="1"/></a>'
        '<rect fill="url(http://evil/x)" x="1"/><foreignObject/></svg>'
    )
    icons._sanitise(root)
    markup = ElementTree.tostring(root, encoding="unicode")
    for bad in ("script", "onload", "onclick", "javascript", "href", "url(", "foreignObject"):
        assert bad not in markup
    assert '<path d="M1 1"' in markup.replace("ns0:", "")
