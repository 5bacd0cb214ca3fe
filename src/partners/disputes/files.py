"""Evidence files: which types are allowed, recognised by their content (magic bytes), not by their name.

Pure functions, no I/O. The extension must name an allowed type AND the bytes must be that type, so an
executable renamed `.png` is refused, and so is a PDF renamed `.png` (the name would lie about the content).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PNG = "image/png"
JPEG = "image/jpeg"
PDF = "application/pdf"
TEXT = "text/plain"

TYPE_BY_EXTENSION = {".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".pdf": PDF, ".txt": TEXT}
TYPE_NAMES = {PNG: "a PNG image", JPEG: "a JPEG image", PDF: "a PDF document", TEXT: "UTF-8 plain text"}
ALLOWED_DESCRIPTION = "png, jpeg (.jpg/.jpeg), pdf, txt"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
PDF_SIGNATURE = b"%PDF-"
# Control characters other than tab, line feed, form feed and carriage return never occur in plain text.
_BINARY_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f"\\/]')
MAX_NAME_LENGTH = 255


class EvidenceRefused(ValueError):
    """Why a file is refused, in words that name the file."""


class EvidenceTooLarge(EvidenceRefused):
    pass


@dataclass(frozen=True, slots=True)
class CheckedFile:
    filename: str
    content_type: str


def sniff(content: bytes) -> str | None:
    """The allowed type these bytes are, or None."""
    if content.startswith(PNG_SIGNATURE) and content[12:16] == b"IHDR":
        return PNG
    if content.startswith(JPEG_SIGNATURE):
        return JPEG
    if content.startswith(PDF_SIGNATURE):
        return PDF
    if _is_plain_text(content):
        return TEXT
    return None


def _is_plain_text(content: bytes) -> bool:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _BINARY_CHARACTERS.search(text) is None


def safe_filename(name: str) -> str:
    """The last path component, without control characters, quotes or slashes, at most 255 characters."""
    base = re.split(r"[\\/]", name)[-1]
    base = _UNSAFE_IN_NAME.sub("", unicodedata.normalize("NFC", base)).strip().lstrip(".")
    if not base:
        return "evidence"
    if len(base) <= MAX_NAME_LENGTH:
        return base
    stem, dot, extension = base.rpartition(".")
    if not dot or len(extension) > 10:
        return base[:MAX_NAME_LENGTH]
    return f"{stem[: MAX_NAME_LENGTH - len(extension) - 1]}.{extension}"


def extension_of(filename: str) -> str:
    _stem, dot, extension = filename.rpartition(".")
    return f".{extension.lower()}" if dot else ""


def check_file(filename: str, content: bytes, *, max_bytes: int) -> CheckedFile:
    """The file's safe name and its type, or EvidenceRefused naming the file."""
    name = safe_filename(filename)
    if len(content) > max_bytes:
        raise EvidenceTooLarge(f"{name}: larger than the limit of {max_bytes} bytes")
    if not content:
        raise EvidenceRefused(f"{name}: the file is empty")
    expected = TYPE_BY_EXTENSION.get(extension_of(name))
    if expected is None:
        raise EvidenceRefused(f"{name}: this file type is not allowed (allowed: {ALLOWED_DESCRIPTION})")
    found = sniff(content)
    if found != expected:
        what = f"it is {TYPE_NAMES[found]}" if found else "its content is none of the allowed types"
        raise EvidenceRefused(f"{name}: the content is not {TYPE_NAMES[expected]} ({what})")
    return CheckedFile(filename=name, content_type=expected)
