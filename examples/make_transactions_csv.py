#!/usr/bin/env python3
"""Write examples/transactions.csv, the demo input for the Meltano project.

The file contains 3,000 invented transactional records of the kind a
CustomerGauge NPS loader receives. Every name, company, e-mail address and
note is made up. Names are built from syllables, and e-mail addresses use
only the reserved example.com, example.org and example.net domains.

Awkward values are spread through the file on purpose, so that a pipeline
run shows whether they survive. They are accented Latin letters, CJK, emoji,
"&", "<" and ">", double quotes, commas and line breaks inside quoted
fields, and empty optional cells. References have leading zeros, a few
Notes are 5,000+ characters long, and order dates carry a UTC offset or "Z".

The random generator has a fixed seed, so two runs write identical bytes.
Usage: python3 examples/make_transactions_csv.py [--output PATH]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20240301
ROW_COUNT = 3000
HEADER = [
    "Email",
    "FirstName",
    "LastName",
    "Company",
    "Country",
    "Language",
    "Reference",
    "order_date",
    "Amount",
    "Segment",
    "Notes",
]

# Row numbers (0-based) whose Notes are very long, with their lengths in characters.
LONG_NOTES = {137: 5_000, 911: 5_600, 1404: 6_250, 2048: 7_300, 2777: 9_100}

# Minimum number of rows that must contain each awkward value. main() checks the
# counts before writing, so a change to the weights below cannot silently drop a case.
MIN_ROWS_PER_FEATURE = 5
REQUIRED_FEATURES = [
    "é",
    "ñ",
    "ü",
    "ø",
    "CJK",
    "emoji",
    "&",
    "<",
    ">",
    "double quote",
    "comma inside a field",
    "line break",
    "empty Company",
    "empty Segment",
    "empty Notes",
    "reference with leading zero",
    "Notes of 5,000+ characters",
    "order_date with Z",
    "order_date with offset",
]

# ISO 3166-1 country code, ISO 639-1 language code, and the UTC offsets that country
# uses in standard and summer time. A row picks one offset at random, so the offset
# need not match the season of its date.
MARKETS = [
    ("NL", "nl", ["+01:00", "+02:00"]),
    ("DE", "de", ["+01:00", "+02:00"]),
    ("FR", "fr", ["+01:00", "+02:00"]),
    ("ES", "es", ["+01:00", "+02:00"]),
    ("NO", "no", ["+01:00", "+02:00"]),
    ("GB", "en", ["+00:00", "+01:00"]),
    ("US", "en", ["-05:00", "-04:00", "-08:00", "-07:00"]),
    ("BR", "pt", ["-03:00"]),
    ("IN", "en", ["+05:30"]),
    ("JP", "ja", ["+09:00"]),
    ("CN", "zh", ["+08:00"]),
    ("KR", "ko", ["+09:00"]),
    ("AU", "en", ["+10:00", "+11:00"]),
]
CJK_LANGUAGES = {"ja", "zh", "ko"}

# Name syllables as (display form, ASCII form for the e-mail local part).
PLAIN_SYLLABLES = [
    (syllable, syllable)
    for syllable in [
        "ka", "lo", "mi", "ren", "da", "vo", "sel", "tar", "ni", "bri", "quo", "zem",
        "ael", "dor", "fen", "gra", "hul", "iv", "jor", "mar", "nox", "pel", "ros",
        "tev", "wyn",
    ]
]  # fmt: skip
ACCENTED_SYLLABLES = list(
    {
        "lé": "le",
        "ño": "no",
        "rü": "ru",
        "sø": "so",
        "zé": "ze",
        "mañ": "man",
        "bür": "bur",
        "dø": "do",
        "çi": "ci",
        "år": "ar",
    }.items()
)
CJK_FAMILY_NAMES = ["森", "川原", "葉山", "朴", "金", "林", "周", "高橋", "岩瀬", "白"]
CJK_GIVEN_NAMES = [
    "澄",
    "遥",
    "翔",
    "凛",
    "明輝",
    "美空",
    "浩宇",
    "静怡",
    "서윤",
    "지호",
]

COMPANY_STEMS = [
    "Norvale",
    "Quillon",
    "Tessaro",
    "Brimholt",
    "Okaru",
    "Velloria",
    "Dunmere",
    "Karsvik",
    "Ombrelli",
    "Lantrix",
    "Sorrel Bay",
    "Pinecrest Forge",
]
COMPANY_SUFFIXES = ["Ltd", "GmbH", "S.A.", "BV", "K.K.", "AS", "Pty Ltd", "Inc.", "SRL"]
AWKWARD_COMPANIES = [
    "Brimholt & Søn <Nordic>",
    "Okaru, Tessaro & Partners",
    'The "Blue Heron" Café',
    "Mañana Logística, S.L.",
    "森川商事株式会社",
    "Quillon Ölwerke <Süd> & Co.",
    "Velloria 🚲 Bikes",
    'Dunmere "Kitchens", Ltd',
]

SEGMENTS = ["Enterprise", "SMB", "Mid-Market", "Public Sector", "Consumer"]
AWKWARD_SEGMENTS = [
    "Retail & Wholesale",
    "B2B <Key Accounts>",
    "Café/Hospitality",
    "小売",
]

PLAIN_NOTES = [
    "Delivered on time.",
    "Asked for an invoice copy.",
    "Repeat customer.",
    "Paid by bank transfer.",
    "Order split over two shipments.",
    "Gift wrapping requested.",
]
AWKWARD_NOTES = [
    'Customer wrote: "great service, fast delivery"',
    'Said "too slow", then "fine, thanks"',
    "Très bien, livraison rapide. Merci à l'équipe!",
    "Pedido recibido, año nuevo, señal débil en la zona.",
    "Größe passt, Rückgabe nicht nötig. Grüße!",
    "Kjøpte også støvler til vinteren.",
    # Full-width punctuation is part of the CJK test text.
    "配送がとても早かったです。ありがとう！",  # noqa: RUF001
    "服务很好，下次还会购买。",  # noqa: RUF001
    "배송이 빨랐어요. 감사합니다!",
    "Loved it 😍👍🏽 will order again 🚚",
    "Works from home 👩‍💻, prefers e-mail ✉️",
    "Rated 5 ⭐⭐⭐⭐⭐",
    "Parts A & B arrived; C < D in size, E > F.",
    "Pasted markup: <b>urgent</b> & <i>fragile</i>",
    "Ansel & Brix Diner <front desk>",
    "First line of the note.\nSecond line, after a line break.",
    'Quote "inside", comma, and line break\nin one cell.',
]

# Words for the very long Notes, mixing ASCII, accented Latin, CJK and emoji so that
# the long cells also exercise multi-byte UTF-8.
LONG_NOTE_WORDS = [
    "delivery",
    "courier",
    "invoice",
    "café",
    "naïve",
    "señor",
    "smørbrød",
    "über",
    "配送",
    "顧客",
    "满意",
    "고객",
    "🙂",
    "📦",
    "&",
    "<tag>",
    '"quoted"',
    "comma,",
]


def build_name(
    rng: random.Random, syllable_count: int, accented: bool
) -> tuple[str, str]:
    """Return an invented name and its ASCII form for e-mail addresses."""
    syllables = [rng.choice(PLAIN_SYLLABLES) for _ in range(syllable_count)]
    if accented:
        syllables[rng.randrange(syllable_count)] = rng.choice(ACCENTED_SYLLABLES)
    display = "".join(part for part, _ in syllables).capitalize()
    ascii_form = "".join(part for _, part in syllables)
    return display, ascii_form


def build_person(rng: random.Random, language: str) -> tuple[str, str, str]:
    """Return first name, last name and the ASCII e-mail local part stem."""
    if language in CJK_LANGUAGES and rng.random() < 0.6:
        return rng.choice(CJK_GIVEN_NAMES), rng.choice(CJK_FAMILY_NAMES), "customer"

    accented = rng.random() < 0.2
    first, first_ascii = build_name(rng, rng.choice([2, 2, 3]), accented)
    last, last_ascii = build_name(
        rng, rng.choice([2, 3, 3]), not accented and rng.random() < 0.15
    )
    return first, last, f"{first_ascii}.{last_ascii}"


def build_email(rng: random.Random, local_stem: str, row: int) -> str:
    """Return an address that is unique because it contains the row number."""
    domain = rng.choice(["example.com", "example.org", "example.net"])
    if rng.random() < 0.03:
        return f"{local_stem}+nps{row}@{domain}"
    if rng.random() < 0.03:
        return f"{local_stem.title()}.{row}@{domain.upper()}"
    return f"{local_stem}.{row}@{domain}"


def build_company(rng: random.Random) -> str:
    """Return an invented company name, or "" for a consumer without a company."""
    roll = rng.random()
    if roll < 0.15:
        return ""
    if roll < 0.22:
        return rng.choice(AWKWARD_COMPANIES)
    return f"{rng.choice(COMPANY_STEMS)} {rng.choice(COMPANY_SUFFIXES)}"


def build_reference(rng: random.Random, number: int) -> str:
    """Return the order reference for `number`, usually 6 digits with leading zeros."""
    if rng.random() < 0.25:
        return f"INV-{number:07d}"
    return f"{number:06d}"


def build_order_date(rng: random.Random, offsets: list[str]) -> str:
    """Return an ISO 8601 date-time in 2024 with a UTC offset or "Z"."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    moment = start + timedelta(seconds=rng.randrange(366 * 24 * 3600))
    if rng.random() < 0.15:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    offset_text = rng.choice(offsets)
    sign = -1 if offset_text.startswith("-") else 1
    hours, minutes = (int(part) for part in offset_text[1:].split(":"))
    offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return moment.astimezone(offset).isoformat(timespec="seconds")


def build_amount(rng: random.Random) -> str:
    """Return an amount with two decimals, built from integer cents."""
    cents = (
        rng.choice([0, 99, 1000]) if rng.random() < 0.01 else rng.randint(150, 450_000)
    )
    return f"{cents // 100}.{cents % 100:02d}"


def build_segment(rng: random.Random) -> str:
    """Return a customer segment, or "" when the source system had none."""
    roll = rng.random()
    if roll < 0.2:
        return ""
    if roll < 0.27:
        return rng.choice(AWKWARD_SEGMENTS)
    return rng.choice(SEGMENTS)


def build_long_note(rng: random.Random, length: int) -> str:
    """Return free text of exactly `length` characters."""
    words: list[str] = []
    total = 0
    while total < length:
        word = rng.choice(LONG_NOTE_WORDS)
        words.append(word)
        total += len(word) + 1
    return " ".join(words)[:length]


def build_note(rng: random.Random, row: int) -> str:
    """Return the Notes cell: empty, plain, awkward or, on a few rows, very long."""
    if row in LONG_NOTES:
        return build_long_note(rng, LONG_NOTES[row])
    roll = rng.random()
    if roll < 0.35:
        return ""
    if roll < 0.55:
        return rng.choice(AWKWARD_NOTES)
    return rng.choice(PLAIN_NOTES)


# Rows that a CustomerGauge account would refuse, so that the demo shows
# invalid records going to the rejects file: 0-based row index -> (column, value).
BAD_ROWS = {
    499: (0, ""),
    1199: (0, "not-an-email-address"),
    1899: (7, "31/02/2024 25:61"),
    2499: (0, "two words@example.com"),
}


def build_rows(rng: random.Random) -> list[list[str]]:
    """Return ROW_COUNT data rows in HEADER order."""
    # Distinct numbers below 100,000 so that every 6-digit reference starts with "0".
    reference_numbers = rng.sample(range(1, 100_000), ROW_COUNT)

    rows = []
    for row in range(ROW_COUNT):
        country, language, offsets = rng.choice(MARKETS)
        first, last, local_stem = build_person(rng, language)
        rows.append(
            [
                build_email(rng, local_stem, row + 1),
                first,
                last,
                build_company(rng),
                country,
                language,
                build_reference(rng, reference_numbers[row]),
                build_order_date(rng, offsets),
                build_amount(rng),
                build_segment(rng),
                build_note(rng, row),
            ]
        )
    for row, (column, value) in BAD_ROWS.items():
        rows[row][column] = value
    return rows


def count_features(rows: list[list[str]]) -> Counter[str]:
    """Count the rows that contain each awkward value the file promises."""
    checks = {
        "é": lambda text: "é" in text,
        "ñ": lambda text: "ñ" in text,
        "ü": lambda text: "ü" in text,
        "ø": lambda text: "ø" in text,
        "CJK": lambda text: any(
            "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text
        ),
        "emoji": lambda text: any(ord(ch) >= 0x1F300 for ch in text),
        "&": lambda text: "&" in text,
        "<": lambda text: "<" in text,
        ">": lambda text: ">" in text,
        "double quote": lambda text: '"' in text,
        "comma inside a field": lambda text: "," in text,
        "line break": lambda text: "\n" in text,
    }
    column = {name: index for index, name in enumerate(HEADER)}
    counts: Counter[str] = Counter()
    for cells in rows:
        for feature, check in checks.items():
            if any(check(cell) for cell in cells):
                counts[feature] += 1
        for name in ("Company", "Segment", "Notes"):
            if cells[column[name]] == "":
                counts[f"empty {name}"] += 1
        if cells[column["Reference"]].startswith("0"):
            counts["reference with leading zero"] += 1
        if len(cells[column["Notes"]]) >= 5000:
            counts["Notes of 5,000+ characters"] += 1
        if cells[column["order_date"]].endswith("Z"):
            counts["order_date with Z"] += 1
        else:
            counts["order_date with offset"] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).with_name("transactions.csv"),
        help="CSV file to write (default: transactions.csv beside this script)",
    )
    args = parser.parse_args()

    rows = build_rows(random.Random(SEED))

    emails = [cells[0].lower() for cells in rows]
    if len(set(emails)) != len(emails):
        print(
            "error: generated e-mail addresses are not unique."
            " build_email() must put the row number in each address.",
            file=sys.stderr,
        )
        return 1

    counts = count_features(rows)
    missing = [
        feature
        for feature in REQUIRED_FEATURES
        if counts[feature] < MIN_ROWS_PER_FEATURE
    ]
    if missing:
        print(
            f"error: fewer than {MIN_ROWS_PER_FEATURE} rows contain: "
            + ", ".join(missing)
            + ". Raise the share of awkward values in the build_* functions.",
            file=sys.stderr,
        )
        return 1

    # newline="" lets the csv module write its own line endings, including line
    # breaks inside quoted cells, without the text layer translating them.
    with args.output.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)

    print(
        f"wrote {len(rows)} rows, {args.output.stat().st_size} bytes, to {args.output}"
    )
    for feature, count in sorted(counts.items()):
        print(f"  {count:5d} rows with {feature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
