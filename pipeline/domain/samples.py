"""Deterministic, realistic sample leads (and a catalogue of bad ones) for demo, tests and bench."""

from __future__ import annotations

import copy
import functools
import ipaddress
import random
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta

import phonenumbers
import zipcodes

from pipeline.domain import verticals
from pipeline.domain.leads import STATES, VERTICALS
from pipeline.domain.validation import US_REGIONS

# The moment the bad-lead catalogue is stamped with; parse it with this `now`.
SAMPLE_NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

FIRST_NAMES = (
    "Ana", "José", "María", "Luis", "Carmen", "Jorge", "Sofía", "Miguel", "Lucía", "Andrés",
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Chloé", "Renée", "Darnell", "Keisha", "Nguyen", "Mei", "Priya", "Omar",
)
LAST_NAMES = (
    "Lopez", "García", "Rodríguez", "Martínez", "Hernández", "Pérez", "González", "Sánchez",
    "Ramírez", "Muñoz", "Núñez", "Peña", "Smith", "Johnson", "Williams", "Brown", "Jones",
    "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "White",
    "Harris", "Clark", "Lewis", "Walker", "O'Brien", "Tran", "Patel", "Kim", "Washington",
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
                 "aol.com", "comcast.net", "att.net")
STREETS = ("Main", "Oak", "Palm", "Brickell", "Pine", "Maple", "Cedar", "Lake", "Coral",
           "Ocean", "Sunset", "Hillcrest", "Park", "Washington", "Bay", "Magnolia")
STREET_KINDS = ("St", "Ave", "Blvd", "Dr", "Ln", "Ct", "Way", "Rd")
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
)
CONSENT_TEXT = (
    "By clicking Submit, I agree that Dreamy Leads and its partners may contact me about {topic} "
    "at the phone number and email I provided, including by autodialed calls, prerecorded "
    "messages and texts, even if my number is on a Do Not Call list. Consent is not a "
    "condition of purchase. Message and data rates may apply."
)


@functools.cache
def _zip_pool() -> dict[str, list[dict]]:
    """Deliverable residential ZIPs with area codes, by state (list_all() order is stable)."""
    pool: dict[str, list[dict]] = {}
    for record in zipcodes.list_all():
        if (record["zip_code_type"] == "STANDARD" and record["active"]
                and record["state"] in STATES and record["area_codes"]):
            pool.setdefault(record["state"], []).append(record)
    return pool


def _place(rng: random.Random) -> dict:
    pool = _zip_pool()
    state = "FL" if rng.random() < 0.4 else rng.choice(sorted(pool))
    return rng.choice(pool[state])


def _phone(rng: random.Random, area_codes: list[str]) -> str | None:
    for _ in range(20):
        exchange = rng.randint(200, 999)
        if exchange == 555 or exchange % 100 == 11:   # 555 is fiction, N11 are service codes
            continue
        national = f"{rng.choice(area_codes)}{exchange}{rng.randint(0, 9999):04d}"
        number = phonenumbers.parse(national, "US")
        if (phonenumbers.is_valid_number(number)
                and phonenumbers.region_code_for_number(number) in US_REGIONS):
            return f"({national[:3]}) {national[3:6]}-{national[6:]}"
    return None  # area codes unknown to phonenumbers' metadata: the caller picks another ZIP


def _public_ip(rng: random.Random) -> str:
    while True:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if ip.is_global and not ip.is_multicast:
            return str(ip)


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


def make_lead(rng: random.Random, vertical: str | None = None, *, now: datetime) -> dict:
    """An intake payload that passes parse_lead and validation, submitted at `now`."""
    vertical = vertical or rng.choice(VERTICALS)
    phone = None
    while phone is None:
        place = _place(rng)
        phone = _phone(rng, place["area_codes"])
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 99_999)}@{rng.choice(EMAIL_DOMAINS)}"
    slug = "-".join(_ascii(word) for word in place["city"].split())
    page = f"/{vertical.replace('_', '-')}/{slug}"
    site = rng.choice(("site-01", "site-02", "site-03", "site-04", "site-05"))
    return {
        "vertical": vertical,
        "contact": {"first_name": first, "last_name": last, "email": email, "phone": phone,
                    "address": f"{rng.randint(100, 9999)} {rng.choice(STREETS)} "
                               f"{rng.choice(STREET_KINDS)}",
                    "city": place["city"], "state": place["state"], "zip": place["zip_code"]},
        "qualifiers": verticals.get(vertical).sample(rng, now),
        "consent": {
            "ip": _public_ip(rng), "timestamp": now.isoformat(),
            "text": CONSENT_TEXT.format(topic=verticals.get(vertical).topic),
            "page_url": f"https://{site}.example.com{page}",
            "user_agent": rng.choice(USER_AGENTS),
            "trustedform_cert_url": (f"https://cert.trustedform.com/{rng.getrandbits(160):040x}"
                                     if rng.random() < 0.5 else None),
            "jornaya_leadid": (str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
                               if rng.random() < 0.5 else None),
        },
        "source": {"publisher_id": site, "page": page,
                   "sub_id": rng.choice((None, "fb", "google", "tiktok"))},
        "form": {"started_at": (now - timedelta(seconds=rng.randint(20, 300))).isoformat(),
                 "submitted_at": now.isoformat()},
    }


def make_bad_leads(now: datetime = SAMPLE_NOW) -> list[tuple[str, object, tuple[str, ...]]]:
    """(name, payload, path of the expected error) for malformed payloads, stamped at `now`."""
    base = make_lead(random.Random(7), "solar", now=now)

    def bad(name: str, path: tuple[str, ...], change) -> tuple[str, object, tuple[str, ...]]:
        payload = copy.deepcopy(base)
        change(payload)
        return name, payload, path

    return [
        ("not an object", [base], ("_schema",)),
        bad("unknown vertical", ("vertical",), lambda p: p.update(vertical="timeshare")),
        bad("unknown top-level field", ("price",), lambda p: p.update(price=10)),
        bad("unknown contact field", ("contact", "ssn"),
            lambda p: p["contact"].update(ssn="123-45-6789")),
        bad("missing phone", ("contact", "phone"), lambda p: p["contact"].pop("phone")),
        bad("phone not NANP", ("contact", "phone"),
            lambda p: p["contact"].update(phone="+44 20 7946 0958")),
        bad("email syntax", ("contact", "email"),
            lambda p: p["contact"].update(email="ana@@example")),
        bad("NUL in name", ("contact", "first_name"),
            lambda p: p["contact"].update(first_name="Ana\x00")),
        bad("control char in city", ("contact", "city"),
            lambda p: p["contact"].update(city="Mia\x1bmi")),
        bad("bad state", ("contact", "state"), lambda p: p["contact"].update(state="XX")),
        bad("bad zip", ("contact", "zip"), lambda p: p["contact"].update(zip="3313")),
        bad("missing consent text", ("consent", "text"), lambda p: p["consent"].pop("text")),
        bad("consent in the future", ("consent", "timestamp"),
            lambda p: p["consent"].update(timestamp=(now + timedelta(hours=1)).isoformat())),
        bad("consent too old", ("consent", "timestamp"),
            lambda p: p["consent"].update(timestamp=(now - timedelta(days=3)).isoformat())),
        bad("naive consent timestamp", ("consent", "timestamp"),
            lambda p: p["consent"].update(timestamp="2026-11-22T10:00:00")),
        bad("bad ip", ("consent", "ip"), lambda p: p["consent"].update(ip="300.1.2.3")),
        bad("forged text hash", ("consent", "text_sha256"),
            lambda p: p["consent"].update(text_sha256="0" * 64)),
        bad("TrustedForm on another host", ("consent", "trustedform_cert_url"),
            lambda p: p["consent"].update(
                trustedform_cert_url="https://cert.trustedform.com.evil.example/abc")),
        bad("Jornaya not a GUID", ("consent", "jornaya_leadid"),
            lambda p: p["consent"].update(jornaya_leadid="LEAD-12345")),
        bad("missing publisher", ("source", "publisher_id"),
            lambda p: p["source"].pop("publisher_id")),
        bad("submitted before started", ("form", "submitted_at"),
            lambda p: p["form"].update(started_at=(now + timedelta(seconds=30)).isoformat())),
        bad("missing qualifier", ("qualifiers", "homeowner"),
            lambda p: p["qualifiers"].pop("homeowner")),
        bad("qualifier out of range", ("qualifiers", "monthly_electric_bill"),
            lambda p: p["qualifiers"].update(monthly_electric_bill=-5)),
        bad("unknown qualifier", ("qualifiers", "pool"), lambda p: p["qualifiers"].update(pool=1)),
    ]
