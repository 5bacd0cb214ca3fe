"""Evidence type checks by content (pure, no database)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partners.disputes.files import (
    JPEG,
    PDF,
    PNG,
    TEXT,
    EvidenceRefused,
    EvidenceTooLarge,
    check_file,
    safe_filename,
    sniff,
)
from tests.disputes.conftest import FAKE_EXE, tiny_pdf, tiny_png

JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def test_sniff_recognises_the_allowed_types_by_their_bytes() -> None:
    assert sniff(tiny_png()) == PNG
    assert sniff(JPEG_START) == JPEG
    assert sniff(tiny_pdf()) == PDF
    assert sniff("Reçu n° 42\r\n\tpayé\n".encode()) == TEXT
    assert sniff(FAKE_EXE) is None
    assert sniff(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + b"JUNK") is None  # a signature without its header
    assert sniff(b"caf\xe9") is None  # Latin-1, not UTF-8
    assert sniff(b"text with a NUL \x00 inside") is None


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [
        ("a.png", tiny_png(), PNG),
        ("a.JPG", JPEG_START, JPEG),
        ("a.jpeg", JPEG_START, JPEG),
        ("a.pdf", tiny_pdf(), PDF),
        ("notes.txt", b"hello\n", TEXT),
    ],
)
def test_an_allowed_file_passes(name: str, content: bytes, content_type: str) -> None:
    assert check_file(name, content, max_bytes=10_000).content_type == content_type


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("photo.png", FAKE_EXE, "photo.png: the content is not a PNG image"),
        ("photo.png", tiny_pdf(), "it is a PDF document"),
        ("scan.pdf", b"just text", "it is UTF-8 plain text"),
        ("tool.exe", FAKE_EXE, "tool.exe: this file type is not allowed"),
        ("noextension", b"text", "noextension: this file type is not allowed"),
        ("empty.txt", b"", "empty.txt: the file is empty"),
    ],
)
def test_a_refused_file_is_named(name: str, content: bytes, words: str) -> None:
    with pytest.raises(EvidenceRefused, match=re.escape(words)):
        check_file(name, content, max_bytes=10_000)


def test_the_size_limit_is_inclusive() -> None:
    assert check_file("a.txt", b"x" * 10, max_bytes=10).filename == "a.txt"
    with pytest.raises(EvidenceTooLarge, match=re.escape("a.txt: larger than the limit of 10 bytes")):
        check_file("a.txt", b"x" * 11, max_bytes=10)


def test_safe_filename_keeps_the_name_and_drops_the_path() -> None:
    assert safe_filename("C:\\Users\\me\\receipt.png") == "receipt.png"
    assert safe_filename("../../etc/passwd.txt") == "passwd.txt"
    assert safe_filename('a"b\r\n.txt') == "ab.txt"
    assert safe_filename("...") == "evidence"
    long = safe_filename("x" * 300 + ".pdf")
    assert len(long) == 255 and long.endswith(".pdf")


@given(st.text(max_size=400))
def test_safe_filename_is_always_safe(name: str) -> None:
    safe = safe_filename(name)
    assert 0 < len(safe) <= 255
    assert not any(ch in safe for ch in '/\\"') and all(ord(ch) >= 32 and ord(ch) != 127 for ch in safe)
    assert not safe.startswith(".")
