"""The Lucide icon set: which names exist, how loose icon strings map onto them, and their SVGs.

The `lucide` PyPI package is the source of truth: it ships every Lucide SVG in `lucide/lucide.zip`.
A model asked for "an icon" writes names from whatever icon set it saw most (Feather, Font Awesome,
Material, Heroicons), in any case or separator style, or Lucide's own pre-1.0 names. `resolve_icon`
maps all of those onto the Lucide name a renderer would use; `icon_match` also says *how* the name
was matched, which the reward uses (an exact Lucide name is worth a little more than an alias).
"""

from __future__ import annotations

import re
import zipfile
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Literal
from xml.etree import ElementTree

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

MatchKind = Literal["exact", "variant", "legacy", "alias", "unknown"]

# Lucide's own renames (old name -> name in the shipped icon set), taken from the lucide-react
# package's name table (every old export name next to the icon file it points to) and Iconify's
# Lucide aliases, keeping only pairs whose target exists in the installed `lucide` package.
# Includes renames in both directions between Lucide releases (e.g. the newer
# "triangle-exclamation-point" maps back to the shipped "triangle-alert").
_LEGACY_TABLE = """
    activity-square=square-activity alarm-check=alarm-clock-check alarm-minus=alarm-clock-minus
    alarm-plus=alarm-clock-plus alert-circle=circle-alert alert-octagon=octagon-alert
    alert-triangle=triangle-alert align-center=text-align-center
    align-horizonal-distribute-center=align-horizontal-distribute-center
    align-horizonal-distribute-end=align-horizontal-distribute-end
    align-horizonal-distribute-start=align-horizontal-distribute-start
    align-justify=text-align-justify align-left=text-align-start align-right=text-align-end
    archive-arrow-up=archive-restore area-chart=chart-area arrow-down-01=arrow-down-0-1
    arrow-down-10=arrow-down-1-0 arrow-down-az=arrow-down-a-z arrow-down-circle=circle-arrow-down
    arrow-down-left-from-circle=circle-arrow-out-down-left
    arrow-down-left-from-square=square-arrow-out-down-left
    arrow-down-left-square=square-arrow-down-left
    arrow-down-right-from-circle=circle-arrow-out-down-right
    arrow-down-right-from-square=square-arrow-out-down-right
    arrow-down-right-square=square-arrow-down-right arrow-down-square=square-arrow-down
    arrow-down-za=arrow-down-z-a arrow-left-circle=circle-arrow-left
    arrow-left-square=square-arrow-left arrow-right-circle=circle-arrow-right
    arrow-right-square=square-arrow-right arrow-up-01=arrow-up-0-1 arrow-up-10=arrow-up-1-0
    arrow-up-az=arrow-up-a-z arrow-up-circle=circle-arrow-up
    arrow-up-left-from-circle=circle-arrow-out-up-left
    arrow-up-left-from-square=square-arrow-out-up-left arrow-up-left-square=square-arrow-up-left
    arrow-up-right-from-circle=circle-arrow-out-up-right
    arrow-up-right-from-square=square-arrow-out-up-right
    arrow-up-right-square=square-arrow-up-right arrow-up-square=square-arrow-up
    arrow-up-za=arrow-up-z-a arrows-from-axis-dashed-horizontal=unfold-vertical
    arrows-from-axis-dashed-vertical=unfold-horizontal
    arrows-to-axis-dashed-horizontal=fold-vertical arrows-to-axis-dashed-vertical=fold-horizontal
    asterisk-square=square-asterisk axis-3-d=axis-3d badge-exclamation-point=badge-alert
    badge-help=badge-question-mark bar-chart=chart-no-axes-column-increasing
    bar-chart-2=chart-no-axes-column bar-chart-3=chart-column bar-chart-4=chart-column-increasing
    bar-chart-big=chart-column-big bar-chart-horizontal=chart-bar
    bar-chart-horizontal-big=chart-bar-big battery-exclamation-point=battery-warning
    between-horizonal-end=between-horizontal-end between-horizonal-start=between-horizontal-start
    book-bookmark=book-marked book-exclamation-point=book-alert book-template=book-dashed
    box-select=square-dashed building-complex=building-2 candlestick-chart=chart-candlestick
    carets-to-axis-dashed-horizontal=flip-horizontal-2
    carets-to-axis-dashed-vertical=flip-vertical-2 check-circle=circle-check-big
    check-circle-2=circle-check check-square=square-check-big check-square-2=square-check
    chevron-down-circle=circle-chevron-down chevron-down-square=square-chevron-down
    chevron-left-circle=circle-chevron-left chevron-left-square=square-chevron-left
    chevron-right-circle=circle-chevron-right chevron-right-square=square-chevron-right
    chevron-up-circle=circle-chevron-up chevron-up-square=square-chevron-up
    circle-arrow-down-left-exit=circle-arrow-out-down-left
    circle-arrow-down-right-exit=circle-arrow-out-down-right
    circle-arrow-up-left-exit=circle-arrow-out-up-left
    circle-arrow-up-right-exit=circle-arrow-out-up-right circle-exclamation-point=circle-alert
    circle-help=circle-question-mark circle-letter-c=copyright circle-letter-p=circle-parking
    circle-letter-p-off=circle-parking-off circle-slashed=circle-slash-2
    clipboard-edit=clipboard-pen clipboard-signature=clipboard-pen-line
    clock-exclamation-point=clock-alert cloud-exclamation-point=cloud-alert code-2=code-xml
    code-square=square-code columns=columns-2 columns-settings=columns-3-cog
    contact-2=contact-round curly-braces=braces divide-circle=circle-divide
    divide-square=square-divide dot-square=square-dot download-cloud=cloud-download
    edit=square-pen edit-2=pen edit-3=pen-line eighth-note=music-2 eighth-notes=music
    equal-square=square-equal face-angry=angry face-expressionless=annoyed face-grinning=laugh
    face-neutral=meh face-slightly-frowning=frown face-slightly-smiling=smile
    face-slightly-smiling-plus=smile-plus file-audio=file-headphone file-audio-2=file-headphone
    file-axis-3-d=file-axis-3d file-badge-2=file-badge file-bar-chart=file-chart-column-increasing
    file-bar-chart-2=file-chart-column file-check-2=file-check-corner file-code-2=file-code-corner
    file-cog-2=file-cog file-edit=file-pen file-json=file-braces file-json-2=file-braces-corner
    file-key-2=file-key file-line-chart=file-chart-line file-lock-2=file-lock
    file-minus-2=file-minus-corner file-pie-chart=file-chart-pie file-plus-2=file-plus-corner
    file-question=file-question-mark file-search-2=file-search-corner file-signature=file-pen-line
    file-type-2=file-type-corner file-video=file-play file-video-2=file-video-camera
    file-volume-2=file-signal file-warning=file-exclamation-point file-x-2=file-x-corner
    filter=funnel filter-x=funnel-x fingerprint=fingerprint-pattern
    flip-horizontal=square-centerline-dashed-horizontal
    flip-vertical=square-centerline-dashed-vertical folder-cog-2=folder-cog folder-edit=folder-pen
    fork-knife=utensils fork-knife-crossed=utensils-crossed form-input=rectangle-ellipsis
    function-square=square-function gantt-chart=chart-no-axes-gantt
    gantt-chart-square=square-chart-gantt gauge-circle=circle-gauge
    git-commit=git-commit-horizontal globe-2=earth grab=hand-grab grid=grid-3x3
    grid-2-x-2=grid-2x2 grid-2-x-2-check=grid-2x2-check grid-2-x-2-plus=grid-2x2-plus
    grid-2-x-2-x=grid-2x2-x grid-3-x-2=grid-3x2 grid-3-x-3=grid-3x3 half-note=music-3
    help-circle=circle-question-mark helping-hand=hand-helping home=house ice-cream=ice-cream-cone
    ice-cream-2=ice-cream-bowl indent=list-indent-increase indent-decrease=list-indent-decrease
    indent-increase=list-indent-increase inspect=square-mouse-pointer kanban-square=square-kanban
    kanban-square-dashed=square-dashed-kanban laptop-2=laptop-minimal layers-3=layers
    layout=panels-top-left letter-b=bold letter-h=heading letter-text=text-initial
    library-square=square-library line-chart=chart-line loader-2=loader-circle
    location-edit=map-pin-pen m-square=square-m mail-alert=mail-warning
    mail-exclamation-point=mail-warning mail-question=mail-question-mark menu-square=square-menu
    message-circle-alert=message-circle-warning
    message-circle-exclamation-point=message-circle-warning
    message-circle-question=message-circle-question-mark
    message-square-alert=message-square-warning
    message-square-exclamation-point=message-square-warning mic-2=mic-vocal mic-signal=podcast
    minus-circle=circle-minus minus-square=square-minus more-horizontal=ellipsis
    more-vertical=ellipsis-vertical mouse-pointer-square=square-mouse-pointer
    mouse-pointer-square-dashed=square-dashed-mouse-pointer move-3-d=move-3d
    octagon-exclamation-point=octagon-alert outdent=list-indent-decrease
    paintbrush-2=paintbrush-vertical palmtree=tree-palm panel-bottom-inactive=panel-bottom-dashed
    panel-left-inactive=panel-left-dashed panel-right-inactive=panel-right-dashed
    panel-top-inactive=panel-top-dashed panels-left-right=columns-3 panels-top-bottom=rows-3
    parking-circle=circle-parking parking-circle-off=circle-parking-off
    parking-square=square-parking parking-square-off=square-parking-off pause-circle=circle-pause
    pause-octagon=octagon-pause pen-box=square-pen pen-square=square-pen
    percent-circle=circle-percent percent-diamond=diamond-percent percent-square=square-percent
    pi-square=square-pi pie-chart=chart-pie pilcrow-square=square-pilcrow play-circle=circle-play
    play-square=square-play plug-zap-2=plug-zap plus-circle=circle-plus plus-square=square-plus
    power-circle=circle-power power-square=square-power rotate-3-d=rotate-3d
    rotate-ccw-clock=history rows=rows-2 scale-3-d=scale-3d scatter-chart=chart-scatter
    school-2=university scissors-square=square-scissors
    scissors-square-dashed-bottom=square-bottom-dashed-scissors
    search-exclamation-point=search-alert send-horizonal=send-horizontal shield-close=shield-x
    shield-exclamation-point=shield-alert shield-question=shield-question-mark sidebar=panel-left
    sidebar-close=panel-left-close sidebar-open=panel-left-open sigma-square=square-sigma
    sixteenth-notes=music-4 slash-square=square-slash sliders=sliders-vertical
    sort-asc=arrow-up-narrow-wide sort-desc=arrow-down-wide-narrow
    split-square-horizontal=square-split-horizontal split-square-vertical=square-split-vertical
    square-arrow-down-left-exit=square-arrow-out-down-left
    square-arrow-down-right-exit=square-arrow-out-down-right
    square-arrow-up-left-exit=square-arrow-out-up-left
    square-arrow-up-right-exit=square-arrow-out-up-right
    square-axis-dashed-horizontal=square-centerline-dashed-vertical
    square-axis-dashed-vertical=square-centerline-dashed-horizontal square-bookmark=album
    square-gantt=square-chart-gantt square-gantt-chart=square-chart-gantt
    square-kanban-dashed=square-dashed-kanban square-letter-m=square-m
    square-letter-p=square-parking square-letter-p-off=square-parking-off stars=sparkles
    stop-circle=circle-stop subtitles=captions table-config=columns-3-cog
    terminal-square=square-terminal test-tube-2=test-tube-diagonal text=text-align-start
    text-select=square-dashed-text text-selection=square-dashed-text train=tram-front
    triangle-exclamation-point=triangle-alert
    triangles-centerline-dashed-horizontal=flip-horizontal-2
    triangles-centerline-dashed-vertical=flip-vertical-2 tv-2=tv-minimal unlock=lock-open
    unlock-keyhole=lock-keyhole-open upload-cloud=cloud-upload user-2=user-round
    user-check-2=user-round-check user-circle=circle-user user-circle-2=circle-user-round
    user-cog-2=user-round-cog user-minus-2=user-round-minus user-plus-2=user-round-plus
    user-square=square-user user-square-2=square-user-round user-x-2=user-round-x
    users-2=users-round verified=badge-check wallet-2=wallet-minimal wand-2=wand-sparkles
    waves=waves-horizontal wrap-text=text-wrap x-circle=circle-x x-octagon=octagon-x
    x-square=square-x
"""

# Names from other icon sets that the system prompt invites ("dollar", "users", "trending-up") or
# that models commonly write, mapped to the Lucide icon that draws the same thing. Keys are in the
# normalised form (lower case, words joined by "-").
_FOREIGN_ALIASES: dict[str, str] = {
    # money (Feather / Font Awesome / Material / Ionicons)
    "dollar": "dollar-sign", "usd": "dollar-sign", "attach-money": "dollar-sign",
    "money": "banknote", "money-bill": "banknote", "money-bill-alt": "banknote",
    "money-bill-wave": "banknote", "money-bill-1": "banknote", "cash": "banknote",
    "payments": "banknote", "monetization-on": "circle-dollar-sign", "paid": "circle-dollar-sign",
    "dollar-circle": "circle-dollar-sign", "circle-dollar": "circle-dollar-sign",
    "savings": "piggy-bank", "pound": "pound-sterling", "gbp": "pound-sterling",
    "sterling-sign": "pound-sterling", "yen": "japanese-yen", "rupee": "indian-rupee",
    "eur": "euro", "euro-sign": "euro", "file-invoice-dollar": "receipt",
    "credit-card-alt": "credit-card",
    # shopping
    "cart": "shopping-cart", "cart-shopping": "shopping-cart",
    "bag": "shopping-bag", "bag-shopping": "shopping-bag", "storefront": "store",
    # trends and charts
    "trend-up": "trending-up", "trend-down": "trending-down", "arrow-trend-up": "trending-up",
    "arrow-trend-down": "trending-down", "trending-flat": "move-right",
    "show-chart": "chart-line", "timeline": "chart-line", "chart-simple": "chart-no-axes-column",
    "poll": "chart-column", "stats-chart": "chart-column", "assessment": "chart-column",
    "analytics": "chart-column", "insert-chart": "chart-column", "bar-chart-o": "chart-column",
    "donut-large": "chart-pie", "donut-small": "chart-pie", "chart-donut": "chart-pie",
    "percentage": "percent",
    # people
    "user-group": "users", "people": "users", "group": "users", "user-friends": "users",
    "person": "user", "account": "user", "account-circle": "circle-user",
    "person-add": "user-plus", "user-add": "user-plus", "group-add": "user-plus",
    "person-remove": "user-minus", "user-remove": "user-minus", "user-times": "user-x",
    "user-xmark": "user-x", "user-slash": "user-x", "person-off": "user-x",
    "how-to-reg": "user-check", "verified-user": "shield-check", "verified": "badge-check",
    # views, time, refresh
    "visibility": "eye", "view": "eye", "time": "clock", "schedule": "clock",
    "access-time": "clock", "watch-later": "clock", "stopwatch": "timer", "av-timer": "timer",
    "hourglass-half": "hourglass", "hourglass-empty": "hourglass", "hourglass-start": "hourglass",
    "refresh": "refresh-cw", "sync": "refresh-cw", "sync-alt": "refresh-cw",
    "arrows-rotate": "refresh-cw", "autorenew": "refresh-cw", "cached": "refresh-cw",
    "rotate": "rotate-cw", "rotate-right": "rotate-cw", "rotate-left": "rotate-ccw",
    "replay": "rotate-ccw", "loop": "repeat", "retweet": "repeat",
    # actions
    "file-download": "download", "get-app": "download", "cloud-download-alt": "cloud-download",
    "arrow-circle-down": "circle-arrow-down", "arrow-circle-up": "circle-arrow-up",
    "cursor-click": "mouse-pointer-click", "ads-click": "mouse-pointer-click",
    "hand-pointer": "pointer", "touch-app": "pointer",
    "sign-out": "log-out", "sign-out-alt": "log-out", "right-from-bracket": "log-out",
    "logout": "log-out", "exit-to-app": "log-out", "exit": "log-out",
    "sign-in": "log-in", "sign-in-alt": "log-in", "right-to-bracket": "log-in", "login": "log-in",
    "exchange": "arrow-left-right", "exchange-alt": "arrow-left-right",
    "swap-horiz": "arrow-left-right", "magnifying-glass": "search",
    # feelings and ratings
    "face-smile": "smile", "sentiment-satisfied": "smile", "mood": "smile",
    "emoji-happy": "smile", "happy": "smile", "smile-o": "smile",
    "thumb-up": "thumbs-up", "like": "thumbs-up", "favorite": "heart",
    "heartbeat": "heart-pulse", "monitor-heart": "heart-pulse",
    # alerts
    "warning": "triangle-alert", "exclamation-triangle": "triangle-alert",
    "triangle-exclamation": "triangle-alert", "report-problem": "triangle-alert",
    "alert": "triangle-alert", "error": "circle-alert", "error-outline": "circle-alert",
    "exclamation-circle": "circle-alert", "circle-exclamation": "circle-alert",
    "times-circle": "circle-x", "circle-xmark": "circle-x", "cancel": "circle-x",
    "highlight-off": "circle-x", "task-alt": "circle-check-big",
    "info-circle": "info", "circle-info": "info", "question-circle": "circle-question-mark",
    "circle-question": "circle-question-mark", "help": "circle-question-mark",
    # support and messages
    "support-agent": "headset", "support": "life-buoy", "life-ring": "life-buoy",
    "ticket-alt": "ticket", "confirmation-number": "ticket",
    "envelope": "mail", "email": "mail", "comment": "message-circle", "chat": "message-circle",
    "chat-bubble": "message-circle", "message": "message-square", "comments": "messages-square",
    "forum": "messages-square", "rate-review": "message-square-more",
    "bullhorn": "megaphone", "campaign": "megaphone", "hashtag": "hash", "at": "at-sign",
    "share-alt": "share-2",
    # operations
    "dns": "server", "network-wired": "network", "shield-alt": "shield",
    "inventory": "package", "cubes": "boxes", "cube": "box",
    "local-shipping": "truck", "shipping-fast": "truck", "truck-fast": "truck",
    "work": "briefcase", "business-center": "briefcase", "tasks": "list-checks",
    "tool": "wrench", "tools": "wrench", "cog": "settings", "gear": "settings",
    "speed": "gauge", "tachometer": "gauge", "tachometer-alt": "gauge", "gauge-high": "gauge",
    "dashboard": "layout-dashboard", "industry": "factory",
    "precision-manufacturing": "factory", "bolt": "zap", "flash": "zap", "lightning": "zap",
    # domains
    "public": "globe", "language": "globe", "mobile": "smartphone", "mobile-alt": "smartphone",
    "mobile-screen": "smartphone", "phone-android": "smartphone", "phone-iphone": "smartphone",
    "calendar-alt": "calendar", "event": "calendar", "date-range": "calendar-range",
    "bullseye": "target", "crosshairs": "crosshair", "gps-fixed": "locate-fixed",
    "seedling": "sprout", "plant": "sprout", "eco": "leaf", "local-hospital": "hospital",
    "document": "file-text", "description": "file-text",
}  # fmt: skip

_PREFIXES = (
    "lucide-", "fa-solid-", "fa-regular-", "fa-", "fas-", "far-", "mdi-", "md-", "ion-", "bi-",
    "icon-", "heroicons-", "feather-", "tabler-",
)  # fmt: skip
_SUFFIXES = ("-icon", "-outlined", "-outline", "-rounded", "-sharp", "-filled", "-solid", "-alt")

# CamelCase / PascalCase word boundaries ("DollarSign", "BarChart3", "alertTriangle").
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])")
_CAMEL_HINT = re.compile(r"[A-Z0-9]")
# Lower-case words joined by single dashes: nothing for _normalise to change (no capitals or
# digits for _CAMEL, no separators, nothing to drop or strip).
_PLAIN_NAME = re.compile(r"[a-z]+(?:-[a-z]+)*")
_SEPARATORS = re.compile(r"[\s_./:]+|-{2,}")
_ICON_CHARS = re.compile(r"[^a-z0-9-]")


def _zip_path() -> Traversable:
    return resources.files("lucide") / "lucide.zip"


@lru_cache(maxsize=1)
def lucide_names() -> frozenset[str]:
    """Every icon name in the installed Lucide set (read once from the package's zip)."""
    with _zip_path().open("rb") as handle, zipfile.ZipFile(handle) as archive:
        return frozenset(
            entry[: -len(".svg")] for entry in archive.namelist() if entry.endswith(".svg")
        )


@lru_cache(maxsize=1)
def _legacy_renames() -> dict[str, str]:
    names = lucide_names()
    pairs = (item.split("=") for item in _LEGACY_TABLE.split())
    return {old: new for old, new in pairs if new in names and old not in names}


def _normalise(name: str) -> str:
    """'Dollar Sign', 'dollar_sign', 'DollarSign', 'fa-dollar-sign' all become 'dollar-sign'."""
    if _PLAIN_NAME.fullmatch(name) is not None:  # "trend-up": already normalised (the usual)
        return name
    text = name.strip()
    if _CAMEL_HINT.search(text) is not None:  # _CAMEL needs a capital or a digit
        text = _CAMEL.sub("-", text)
    text = _SEPARATORS.sub("-", text.lower())
    return _ICON_CHARS.sub("", text).strip("-")


def _strip_affixes(name: str) -> list[str]:
    """The name without a common icon-library prefix and/or style suffix, most specific first."""
    stems = [name]
    for _ in range(2):  # "fas fa-users" carries two prefixes
        if not stems[-1].startswith(_PREFIXES):  # one C call rules out all of them (the usual)
            break
        for prefix in _PREFIXES:
            if stems[-1].startswith(prefix) and len(stems[-1]) > len(prefix):
                stems.append(stems[-1][len(prefix) :])
                break
    for stem in list(stems):
        if not stem.endswith(_SUFFIXES):
            continue
        for suffix in _SUFFIXES:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stems.append(stem[: -len(suffix)])
                break
    return stems


def _lookup(key: str) -> tuple[str, MatchKind] | None:
    if key in lucide_names():
        return key, "variant"
    legacy = _legacy_renames().get(key)
    if legacy is not None:
        return legacy, "legacy"
    foreign = _FOREIGN_ALIASES.get(key)
    if foreign is not None and foreign in lucide_names():
        return foreign, "alias"
    return None


@lru_cache(maxsize=8192)
def icon_match(name: str) -> tuple[str | None, MatchKind]:
    """The Lucide name for an icon string, and how it was matched.

    "exact": already a Lucide name; "variant": a Lucide name in another case/separator style or
    with a library prefix ("TrendingUp", "lucide-users"); "legacy": one of Lucide's own old names
    ("alert-triangle"); "alias": another icon set's name ("dollar", "money-bill"); "unknown": none.
    """
    if not isinstance(name, str):
        return None, "unknown"
    if name in lucide_names():
        return name, "exact"
    key = _normalise(name)
    if not key:
        return None, "unknown"
    for stem in _strip_affixes(key):
        found = _lookup(stem)
        if found is not None:
            return found
    return None, "unknown"


def resolve_icon(name: str) -> str | None:
    """The Lucide icon name for `name` (exact, variant, legacy or alias), or None if unknown."""
    return icon_match(name)[0]


# Only plain drawing elements and presentation attributes survive: an SVG from the package is
# trusted, but the viewer inlines it into HTML, so nothing that could script or fetch is kept.
_SVG_NS = "{http://www.w3.org/2000/svg}"
_ALLOWED_ELEMENTS = frozenset(
    {"svg", "g", "path", "circle", "ellipse", "line", "polyline", "polygon", "rect"}
)
_ALLOWED_ATTRIBUTES = frozenset(
    {
        "xmlns", "width", "height", "viewBox", "fill", "stroke", "stroke-width",
        "stroke-linecap", "stroke-linejoin", "d", "cx", "cy", "r", "rx", "ry",
        "x", "y", "x1", "y1", "x2", "y2", "points", "class",
    }
)  # fmt: skip
_UNSAFE_VALUE = re.compile(r"javascript:|url\s*\(|[<>\"&]", re.IGNORECASE)


def _sanitise(element: ElementTree.Element) -> None:
    element.tag = element.tag.removeprefix(_SVG_NS)
    for key in list(element.attrib):
        if key not in _ALLOWED_ATTRIBUTES or _UNSAFE_VALUE.search(element.attrib[key]):
            del element.attrib[key]
    for child in list(element):
        if child.tag.removeprefix(_SVG_NS) not in _ALLOWED_ELEMENTS:
            element.remove(child)
        else:
            _sanitise(child)
    element.text = element.tail = None


@lru_cache(maxsize=512)
def _svg_markup(lucide_name: str) -> str:
    with _zip_path().open("rb") as handle, zipfile.ZipFile(handle) as archive:
        raw = archive.read(f"{lucide_name}.svg").decode("utf-8")
    root = ElementTree.fromstring(raw)
    _sanitise(root)
    root.set("class", f"lucide lucide-{lucide_name}")
    markup = ElementTree.tostring(root, encoding="unicode", short_empty_elements=True)
    # ElementTree writes the default namespace as ns0 unless we restore the plain attribute.
    markup = markup.replace(' xmlns:ns0="http://www.w3.org/2000/svg"', "").replace("ns0:", "")
    if "xmlns=" not in markup:
        markup = markup.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    return markup


def icon_svg(name: str) -> str | None:
    """SVG markup (one line, safe to inline in HTML) of the Lucide icon `name` resolves to."""
    lucide_name = resolve_icon(name)
    return None if lucide_name is None else _svg_markup(lucide_name)
