"""Made-up transactional records with awkward values, from a fixed seed."""

from __future__ import annotations

import datetime
import decimal
import random
import typing as t

ORDER_PROPERTIES: dict[str, t.Any] = {
    "Email": {"type": "string"},
    "FirstName": {"type": ["string", "null"]},
    "LastName": {"type": ["string", "null"]},
    "Company": {"type": ["string", "null"]},
    "Country": {"type": ["string", "null"]},
    "Reference": {"type": "string"},
    "order_date": {"type": "string", "format": "date-time"},
    "Amount": {"type": ["number", "null"]},
    "Active": {"type": ["boolean", "null"]},
    "Segment": {"type": ["string", "null"]},
    "Notes": {"type": ["string", "null"]},
}

_FIRST = [
    "Zoë",
    "Ånund",
    "Şirin",
    "Ngozi",
    "Ilse",
    "陽翔",
    "Émile",
    "Oyelaran",
    "Maëlle",
    "Tevita",
]
_LAST = [
    "Vandermolen",
    "Østergård",
    "Quispe-Ñaupa",
    "O'Dálaigh",
    "佐藤",
    "Kowalczyk",
    "Åberg",
]
_COMPANIES = [
    "Acme & Sons",
    "Blue <Fin> Ltd",
    'The "Quoted" Co',
    "Müller GmbH",
    None,
    "株式会社テスト",
]
_NOTES = [
    "Delivered on time 👍",
    "a < b && c > d",
    "line one\nline two\ttabbed",
    "",
    None,
    "émoji 🎉 and ümlauts",
]


def fake_order(index: int, rng: random.Random) -> dict[str, t.Any]:
    """Build one order record; index makes the e-mail address unique."""
    offset = datetime.timezone(
        datetime.timedelta(minutes=rng.choice([-300, 0, 60, 330]))
    )
    moment = datetime.datetime(
        2024, 1, 1, tzinfo=datetime.timezone.utc
    ) + datetime.timedelta(seconds=rng.randrange(0, 365 * 86400))
    notes = rng.choice(_NOTES)
    if index % 997 == 0:
        notes = "long note " + "x" * 5000
    return {
        "Email": f"customer{index:06d}@example.com",
        "FirstName": rng.choice(_FIRST),
        "LastName": rng.choice(_LAST),
        "Company": rng.choice(_COMPANIES),
        "Country": rng.choice(["NL", "DE", "JP", "BR", None]),
        "Reference": f"{rng.randrange(0, 10**6):06d}",
        "order_date": moment.astimezone(offset).isoformat(),
        "Amount": decimal.Decimal(rng.randrange(0, 10**6)) / 100,
        "Active": rng.choice([True, False, None]),
        "Segment": rng.choice(["Gold", "Silver", None]),
        "Notes": notes,
    }


def fake_orders(count: int, seed: int = 7) -> list[dict[str, t.Any]]:
    """Build `count` order records from a fixed seed."""
    rng = random.Random(seed)
    return [fake_order(index, rng) for index in range(1, count + 1)]
