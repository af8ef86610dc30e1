"""Bytes to UTF-8: container sniffing and encoding detection for marketplace export files.

Order of trust (format notes, section 5): a BOM decides; else strict UTF-8; else GB18030 (a
superset of GBK, so GBK files decode too). Whole files are transcoded in chunks by the C codecs,
never line by line in Python.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from pathlib import Path

from app.services.imports.export import ExportFileError

SNIFF_BYTES = 64 * 1024
CHUNK_BYTES = 4 * 1024 * 1024

XLSX_MAGIC = b"PK\x03\x04"
BINARY_MAGICS: dict[bytes, str] = {
    b"\xd0\xcf\x11\xe0": "an old binary Excel (.xls) or other OLE2 document",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive",
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
}
BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]


@dataclass(frozen=True)
class Encoding:
    name: str  # utf-8, utf-8-sig, utf-16-le, gb18030, ...
    bom: int  # bytes of BOM to skip


def read_head(path: Path, size: int = SNIFF_BYTES) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def container_of(head: bytes, name: str) -> str:
    """`xlsx` or `csv`; anything else is refused as not a table."""
    if head.startswith(XLSX_MAGIC):
        return "xlsx"
    for magic, what in BINARY_MAGICS.items():
        if head.startswith(magic):
            raise ExportFileError(
                "not_a_table", f"{name} is {what}, not a CSV or XLSX export", name
            )
    return "csv"


def detect_encoding(head: bytes, name: str, complete: bool) -> Encoding:
    """Pick the encoding from the first bytes; `complete` when `head` is the whole file."""
    for bom, enc in BOMS:
        if head.startswith(bom):
            return Encoding(enc, len(bom))
    if b"\x00" in head:
        raise ExportFileError("not_a_table", f"{name} holds binary data, not text", name)
    for enc in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(enc)("strict")
        try:
            decoder.decode(head, final=complete)
        except UnicodeDecodeError:
            continue
        return Encoding(enc, 0)
    raise ExportFileError("undecodable", f"{name} is neither UTF-8 nor GB18030/GBK text", name)


def to_utf8(path: Path, encoding: Encoding) -> bytes:
    """The whole file as UTF-8 bytes without BOM; undecodable bytes fail the file.

    UTF-8 input is returned as is: validating it here would build a Python str of the whole
    file, polars validates it for free when it becomes a column.
    """
    name = path.name
    raw = path.read_bytes()[encoding.bom :]
    if encoding.name in ("utf-8", "utf-8-sig"):
        return raw  # validated by polars when the text becomes a column (`undecodable_utf8`)
    decoder = codecs.getincrementaldecoder(encoding.name)("strict")
    out = io.BytesIO()
    pos = 0
    try:
        while pos < len(raw):
            chunk = raw[pos : pos + CHUNK_BYTES]
            out.write(decoder.decode(chunk, final=False).encode("utf-8"))
            pos += len(chunk)
        out.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _undecodable(name, raw, pos + exc.start, encoding.name) from exc
    return out.getvalue()


def _undecodable(name: str, raw: bytes, offset: int, encoding: str) -> ExportFileError:
    offset = max(0, min(offset, len(raw)))
    line = raw.count(b"\n", 0, offset) + 1
    return ExportFileError(
        "undecodable", f"{name}: bytes at line {line} are not valid {encoding} text", name
    )


def undecodable_utf8(name: str, raw: bytes) -> ExportFileError:
    """The error for UTF-8 bytes polars refused, with the line of the first bad byte."""
    try:
        codecs.decode(raw, "utf-8")
    except UnicodeDecodeError as exc:
        return _undecodable(name, raw, exc.start, "UTF-8")
    return ExportFileError("undecodable", f"{name} is not valid UTF-8 text", name)
