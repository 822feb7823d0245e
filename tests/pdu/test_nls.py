"""Structural checks on the TS 23.038 national language shift tables (modem.pdu.nls)."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest

from modem.pdu.nls import (
    NATIONAL_LOCKING_SHIFT,
    NATIONAL_SINGLE_SHIFT,
    UNASSIGNED,
    NationalLanguage,
)

LOCKING_LANGUAGES = [lang for lang in NationalLanguage if lang is not NationalLanguage.SPANISH]
INDIAN = [
    NationalLanguage.BENGALI,
    NationalLanguage.GUJARATI,
    NationalLanguage.HINDI,
    NationalLanguage.KANNADA,
    NationalLanguage.MALAYALAM,
    NationalLanguage.ORIYA,
    NationalLanguage.PUNJABI,
    NationalLanguage.TAMIL,
    NationalLanguage.TELUGU,
    NationalLanguage.URDU,
]
# First code point of each script's Unicode block (Urdu spans the 256-character Arabic block).
SCRIPT_BLOCK = {
    NationalLanguage.BENGALI: range(0x0980, 0x0A00),
    NationalLanguage.GUJARATI: range(0x0A80, 0x0B00),
    NationalLanguage.HINDI: range(0x0900, 0x0980),
    NationalLanguage.KANNADA: range(0x0C80, 0x0D00),
    NationalLanguage.MALAYALAM: range(0x0D00, 0x0D80),
    NationalLanguage.ORIYA: range(0x0B00, 0x0B80),
    NationalLanguage.PUNJABI: range(0x0A00, 0x0A80),
    NationalLanguage.TAMIL: range(0x0B80, 0x0C00),
    NationalLanguage.TELUGU: range(0x0C00, 0x0C80),
    NationalLanguage.URDU: range(0x0600, 0x0700),
}
# The default extension table (TS 23.038 6.2.1.1): every single shift table repeats it.
DEFAULT_EXTENSION = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "\u20ac",
}
DANDA = {"\u0964", "\u0965"}  # Devanagari danda / double danda, shared by the Indic tables


def test_language_ids_are_the_spec_codes() -> None:
    assert [(lang.name, lang.value) for lang in NationalLanguage] == [
        ("TURKISH", 1),
        ("SPANISH", 2),
        ("PORTUGUESE", 3),
        ("BENGALI", 4),
        ("GUJARATI", 5),
        ("HINDI", 6),
        ("KANNADA", 7),
        ("MALAYALAM", 8),
        ("ORIYA", 9),
        ("PUNJABI", 10),
        ("TAMIL", 11),
        ("TELUGU", 12),
        ("URDU", 13),
    ]


def test_every_language_has_tables_except_spanish_locking() -> None:
    assert set(NATIONAL_SINGLE_SHIFT) == set(NationalLanguage)
    assert set(NATIONAL_LOCKING_SHIFT) == set(LOCKING_LANGUAGES)
    assert NationalLanguage.SPANISH not in NATIONAL_LOCKING_SHIFT


@pytest.mark.parametrize("lang", LOCKING_LANGUAGES, ids=lambda lang: lang.name)
def test_locking_table_layout(lang: NationalLanguage) -> None:
    table = NATIONAL_LOCKING_SHIFT[lang]
    assert len(table) == 128
    assert table[0x1B] == UNASSIGNED  # escape to the single shift table, not a character
    assert table[0x0A] == "\n"
    assert table[0x0D] == "\r"
    assert table[0x20] == " "
    assert table[0x30:0x3A] == "0123456789"
    assert table[0x61:0x7B] == "abcdefghijklmnopqrstuvwxyz"
    # Every assigned position holds exactly one code point, never a control other than LF/CR.
    for septet, char in enumerate(table):
        assert len(char) == 1
        if char != UNASSIGNED:
            assert char in "\n\r" or unicodedata.category(char) != "Cc", hex(septet)


@pytest.mark.parametrize("lang", LOCKING_LANGUAGES, ids=lambda lang: lang.name)
def test_locking_table_has_no_duplicate_characters(lang: NationalLanguage) -> None:
    counts = Counter(c for c in NATIONAL_LOCKING_SHIFT[lang] if c != UNASSIGNED)
    assert [c for c, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("lang", list(NationalLanguage), ids=lambda lang: lang.name)
def test_single_shift_table_layout(lang: NationalLanguage) -> None:
    table = NATIONAL_SINGLE_SHIFT[lang]
    assert 0x1B not in table  # SS2: reserved, never a character
    assert 0x0D not in table  # CR2: reserved control
    assert all(0 <= septet < 128 for septet in table)
    assert all(len(c) == 1 and c != UNASSIGNED for c in table.values())
    for septet, char in DEFAULT_EXTENSION.items():
        assert table[septet] == char, hex(septet)


@pytest.mark.parametrize("lang", list(NationalLanguage), ids=lambda lang: lang.name)
def test_single_shift_duplicates_are_only_those_in_the_spec(lang: NationalLanguage) -> None:
    table = NATIONAL_SINGLE_SHIFT[lang]
    dupes = {c: sorted(s for s, x in table.items() if x == c) for c in set(table.values())}
    dupes = {c: s for c, s in dupes.items() if len(s) > 1}
    # The Indic/Urdu tables print '*' at 0x0B and 0x18 and '\u00a1' at 0x13 and 0x15.
    expected = {"*": [0x0B, 0x18], "\u00a1": [0x13, 0x15]} if lang in INDIAN else {}
    assert dupes == expected


@pytest.mark.parametrize("lang", INDIAN, ids=lambda lang: lang.name)
def test_indic_locking_table_stays_in_its_script(lang: NationalLanguage) -> None:
    block = SCRIPT_BLOCK[lang]
    foreign = [
        (hex(s), hex(ord(c)))
        for s, c in enumerate(NATIONAL_LOCKING_SHIFT[lang])
        if c != UNASSIGNED and ord(c) > 0x7F and ord(c) not in block
    ]
    assert foreign == []


@pytest.mark.parametrize("lang", INDIAN, ids=lambda lang: lang.name)
def test_indic_single_shift_table_layout(lang: NationalLanguage) -> None:
    table = NATIONAL_SINGLE_SHIFT[lang]
    block = SCRIPT_BLOCK[lang]
    assert [table[s] for s in range(0x41, 0x5B)] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert [table[s] for s in range(0x00, 0x04)] == ["@", "\u00a3", "$", "\u00a5"]
    foreign = [
        (hex(s), hex(ord(c)))
        for s, c in table.items()
        if ord(c) > 0xFF and ord(c) not in block and c not in DANDA and c != "\u20ac"
    ]
    assert foreign == []


@pytest.mark.parametrize(
    ("lang", "septet", "char"),
    [
        (NationalLanguage.TURKISH, 0x04, "\u20ac"),  # €
        (NationalLanguage.TURKISH, 0x07, "\u0131"),  # ı
        (NationalLanguage.TURKISH, 0x0B, "\u011e"),  # Ğ
        (NationalLanguage.TURKISH, 0x0C, "\u011f"),  # ğ
        (NationalLanguage.TURKISH, 0x1C, "\u015e"),  # Ş
        (NationalLanguage.TURKISH, 0x1D, "\u015f"),  # ş
        (NationalLanguage.TURKISH, 0x40, "\u0130"),  # İ
        (NationalLanguage.TURKISH, 0x60, "\u00e7"),  # ç
        (NationalLanguage.PORTUGUESE, 0x04, "\u00ea"),  # ê
        (NationalLanguage.PORTUGUESE, 0x0B, "\u00d4"),  # Ô
        (NationalLanguage.PORTUGUESE, 0x15, "\u221e"),  # ∞
        (NationalLanguage.PORTUGUESE, 0x18, "\u20ac"),  # €
        (NationalLanguage.PORTUGUESE, 0x24, "\u00ba"),  # º
        (NationalLanguage.PORTUGUESE, 0x5B, "\u00c3"),  # Ã
        (NationalLanguage.PORTUGUESE, 0x60, "~"),
        (NationalLanguage.PORTUGUESE, 0x7D, "`"),
        (NationalLanguage.HINDI, 0x00, "\u0901"),  # candrabindu (Devanagari, not Bengali)
        (NationalLanguage.HINDI, 0x7F, "\u097f"),
        (NationalLanguage.KANNADA, 0x24, "\u0ca1"),  # V9.1.1 misprints 0x0CAA here
        (NationalLanguage.BENGALI, 0x7C, "\u09dc"),  # precomposed RRA, not DDA + nukta
        (NationalLanguage.PUNJABI, 0x47, "\u0a33"),
        (NationalLanguage.URDU, 0x5D, "\u0650"),  # kasra before damma: spec order, not NFC
        (NationalLanguage.URDU, 0x5E, "\u064f"),
        (NationalLanguage.URDU, 0x7B, "\u0655"),
        (NationalLanguage.URDU, 0x7F, "\u0670"),
    ],
)
def test_locking_spot_characters(lang: NationalLanguage, septet: int, char: str) -> None:
    assert NATIONAL_LOCKING_SHIFT[lang][septet] == char


@pytest.mark.parametrize(
    ("lang", "septet", "char"),
    [
        (NationalLanguage.TURKISH, 0x47, "\u011e"),  # Ğ
        (NationalLanguage.TURKISH, 0x49, "\u0130"),  # İ
        (NationalLanguage.TURKISH, 0x53, "\u015e"),  # Ş
        (NationalLanguage.TURKISH, 0x63, "\u00e7"),  # ç
        (NationalLanguage.TURKISH, 0x67, "\u011f"),  # ğ
        (NationalLanguage.TURKISH, 0x69, "\u0131"),  # ı
        (NationalLanguage.TURKISH, 0x73, "\u015f"),  # ş
        (NationalLanguage.SPANISH, 0x09, "\u00e7"),  # ç
        (NationalLanguage.SPANISH, 0x41, "\u00c1"),  # Á
        (NationalLanguage.SPANISH, 0x49, "\u00cd"),  # Í
        (NationalLanguage.SPANISH, 0x4F, "\u00d3"),  # Ó
        (NationalLanguage.SPANISH, 0x55, "\u00da"),  # Ú
        (NationalLanguage.SPANISH, 0x61, "\u00e1"),  # á
        (NationalLanguage.SPANISH, 0x75, "\u00fa"),  # ú
        (NationalLanguage.PORTUGUESE, 0x05, "\u00ea"),  # ê
        (NationalLanguage.PORTUGUESE, 0x12, "\u03a6"),  # Φ
        (NationalLanguage.PORTUGUESE, 0x1F, "\u00ca"),  # Ê
        (NationalLanguage.PORTUGUESE, 0x41, "\u00c0"),  # À
        (NationalLanguage.PORTUGUESE, 0x5C, "\u00d5"),  # Õ
        (NationalLanguage.PORTUGUESE, 0x7F, "\u00e2"),  # â
        (NationalLanguage.HINDI, 0x26, "\u0951"),  # udatta before anudatta: spec order
        (NationalLanguage.HINDI, 0x27, "\u0952"),
        (NationalLanguage.TAMIL, 0x24, "\u0bee"),  # V9.1.1 misprints 0x0BEF here
        (NationalLanguage.TELUGU, 0x22, "\u0c6c"),  # V9.1.1 misprints Arabic 0x06CC here
        (NationalLanguage.TELUGU, 0x23, "\u0c6d"),
        (NationalLanguage.URDU, 0x19, "\u0600"),
    ],
)
def test_single_shift_spot_characters(lang: NationalLanguage, septet: int, char: str) -> None:
    assert NATIONAL_SINGLE_SHIFT[lang][septet] == char


def test_latin_single_shift_tables_have_the_spec_sizes() -> None:
    # Counting assigned positions catches a dropped or shifted entry in the short tables.
    sizes = {lang.name: len(NATIONAL_SINGLE_SHIFT[lang]) for lang in NationalLanguage}
    assert sizes["TURKISH"] == 17
    assert sizes["SPANISH"] == 19
    assert sizes["PORTUGUESE"] == 37
    assert all(sizes[lang.name] >= 70 for lang in INDIAN)


def test_turkish_and_portuguese_locking_keep_the_default_latin_capitals() -> None:
    for lang in (NationalLanguage.TURKISH, NationalLanguage.PORTUGUESE):
        assert NATIONAL_LOCKING_SHIFT[lang][0x41:0x5B] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
