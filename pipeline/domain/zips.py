"""USPS ZIP records by ZIP: the zipcodes library's data, indexed once per process.

``zipcodes.matching`` scans all ~42,000 records on every call (about 3 ms here), and the
validate stage and the buyers' radius filters look a ZIP up per lead. A well-formed ZIP
(``#####``, ``#####-####`` or ``#########``, surrounding blanks ignored) is answered from a
dict built on first use; anything else goes to the library, which reads or refuses it as it
always did (TypeError / ValueError), except text in other scripts, refused here: the library's
parser panics on it.
"""
from __future__ import annotations

import re
import threading
from collections import defaultdict

import zipcodes

_WELL_FORMED = re.compile(r"([0-9]{5})(?:-?[0-9]{4})?")
_index: dict[str, list[dict]] | None = None
_lock = threading.Lock()


def _by_zip() -> dict[str, list[dict]]:
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                built: dict[str, list[dict]] = defaultdict(list)
                for record in zipcodes.list_all():
                    built[record["zip_code"]].append(record)
                _index = dict(built)
    return _index


def warm() -> None:
    """Load the records and build the index now rather than on the first look-up (~1 s here)."""
    _by_zip()


def matching(zipcode) -> list[dict]:
    """The records of a ZIP, as ``zipcodes.matching`` gives them."""
    found = _WELL_FORMED.fullmatch(zipcode.strip()) if isinstance(zipcode, str) else None
    if found is None:
        if isinstance(zipcode, str) and not zipcode.isascii():
            # The library's parser panics (a BaseException) on other scripts' characters.
            raise ValueError("Invalid characters, zipcode may only contain digits and \"-\".")
        return zipcodes.matching(zipcode)
    return list(_by_zip().get(found.group(1), ()))
