"""Bytes to UTF-8: container sniffing and encoding detection for marketplace export files.

Order of trust (format notes, section 5): a BOM decides; else strict UTF-8; else GB18030 (a
superset of GBK, so GBK files decode too). Whole files are transcoded into a temporary file
polars then reads: by the system's `iconv` (a separate process, 2.6x faster than Python's codec
on a 1M-order list, docs/benchmarks.md) where it exists, else by Python's C codecs in chunks;
never line by line in Python. When `iconv` refuses the bytes, Python's codec reads them again
to name the line of the first bad one (and decides: an encoding it accepts is not refused).
"""

from __future__ import annotations

import codecs
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


@contextmanager
def utf8_file(path: Path, encoding: Encoding) -> Iterator[Path]:
    """A UTF-8 version of the file: the file itself when it is UTF-8 (polars skips a BOM and
    validates the bytes), else a temporary transcoded copy written in chunks (constant memory),
    removed afterwards. Undecodable bytes fail the file."""
    if encoding.name in ("utf-8", "utf-8-sig"):
        yield path
        return
    fd, name = tempfile.mkstemp(prefix="kezhan-utf8-", suffix=".csv")
    target = Path(name)
    try:
        with path.open("rb") as source, os.fdopen(fd, "wb") as out:
            source.seek(encoding.bom)
            _transcode(path.name, source, out, encoding.name)
        yield target
    finally:
        target.unlink(missing_ok=True)


# Python codec names -> iconv's (glibc, musl and libiconv know these).
ICONV_NAMES = {
    "gb18030": "GB18030",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
    "utf-32-le": "UTF-32LE",
    "utf-32-be": "UTF-32BE",
}


def _transcode(name: str, source: BinaryIO, out: BinaryIO, encoding: str) -> None:
    """Source (positioned after any BOM) to UTF-8 in `out` (empty), or ExportFileError."""
    iconv = shutil.which("iconv")
    if iconv is not None and encoding in ICONV_NAMES:
        start = source.tell()
        done = subprocess.run(
            [iconv, "-f", ICONV_NAMES[encoding], "-t", "UTF-8"],
            stdin=source,
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode == 0:
            return
        source.seek(start)
        out.seek(0)
        out.truncate()
    _codec_transcode(name, source, out, encoding)


def _codec_transcode(name: str, source: BinaryIO, out: BinaryIO, encoding: str) -> None:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    line = 1
    while chunk := source.read(CHUNK_BYTES):
        try:
            text = decoder.decode(chunk, final=False)
        except UnicodeDecodeError as exc:
            line += chunk.count(b"\n", 0, max(0, exc.start))
            raise _undecodable_at(name, line, encoding) from exc
        line += text.count("\n")
        out.write(text.encode("utf-8"))
    try:
        out.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _undecodable_at(name, line, encoding) from exc


def _undecodable_at(name: str, line: int, encoding: str) -> ExportFileError:
    return ExportFileError(
        "undecodable", f"{name}: bytes at line {line} are not valid {encoding} text", name
    )


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
