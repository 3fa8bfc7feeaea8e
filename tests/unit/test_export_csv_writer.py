"""RFC 4180 output, the formula guard, and streaming in bounded chunks."""

from __future__ import annotations

import csv
import hashlib
import io

from services.exporter.csv_writer import write_csv


class Chunks:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.chunks.append(data)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def test_quoting_line_ends_and_guard() -> None:
    sink = Chunks()
    rows = [
        ["Smith, John", 'Renée "Rae"', "Line\nBreak", "=SUM(A1)", "plain", ""],
        ["\rCR", "-Minus", "@h", "+1", "\tTab", "李小龍 🙂"],
    ]
    summary = await write_csv(["a", "b", "c", "d", "e", "f"], rows, sink)
    assert summary.rows == 2
    assert sink.body == (
        b"a,b,c,d,e,f\r\n"
        b'"Smith, John","Ren\xc3\xa9e ""Rae""","Line\nBreak",\'=SUM(A1),plain,\r\n'
        b"\"'\rCR\",'-Minus,'@h,'+1,'\tTab," + "李小龍 🙂".encode() + b"\r\n"
    )
    assert summary.bytes == len(sink.body)
    assert summary.sha256 == hashlib.sha256(sink.body).hexdigest()
    parsed = list(csv.reader(io.StringIO(sink.body.decode(), newline="")))
    assert parsed[1] == ["Smith, John", 'Renée "Rae"', "Line\nBreak", "'=SUM(A1)", "plain", ""]
    assert parsed[2][0] == "'\rCR"


async def test_streams_in_bounded_chunks() -> None:
    sink = Chunks()
    rows = ([str(index), "x" * 100] for index in range(5_000))
    summary = await write_csv(["n", "text"], rows, sink, flush_chars=4096)
    assert summary.rows == 5_000
    assert len(sink.chunks) > 100
    assert max(len(chunk) for chunk in sink.chunks) < 4096 + 200
    lines = sink.body.split(b"\r\n")
    assert lines[0] == b"n,text"
    assert lines[-2].startswith(b"4999,")
    assert summary.sha256 == hashlib.sha256(sink.body).hexdigest()
