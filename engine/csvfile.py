"""Reading an import CSV: encoding and delimiter detection, header mapping, numbered records."""

from __future__ import annotations

import codecs
import csv
import difflib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ImportFileError

DELIMITERS = ",;\t"
BLOCK = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Where each canonical field sits in the file, and which columns are extra."""

    columns: dict[str, int]           # field -> column index
    names: dict[str, str]             # field -> the file's column name
    extra: dict[str, int]             # other column name -> index
    width: int


def _decode_check(path: Path) -> None:
    """Fail early, with a line number, on bytes that are not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while block := handle.read(BLOCK):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        _locate_bad_bytes(path)


def _locate_bad_bytes(path: Path) -> None:
    """Raise the error for the first line that is not UTF-8 (no byte sequence spans lines)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                    path=path, line=number,
                    hint="save the file as UTF-8 (in Excel: 'CSV UTF-8') and import again",
                ) from None


def count_lines(path: Path) -> int:
    """Newlines in the file, cheaply, for a progress total."""
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(BLOCK), b""))


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of comma, semicolon and tab in the header line."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def resolve_layout(path: Path, header: Sequence[str], known: Sequence[str],
                   required: Sequence[str], mapping: Mapping[str, str]) -> Layout:
    """Match the header to canonical fields; `mapping` says field=Column for other names."""
    for field in mapping:
        if field not in known:
            close = difflib.get_close_matches(field, known, n=1)
            raise ImportFileError(f"--map names unknown field '{field}'", path=path,
                                  hint=f"did you mean '{close[0]}'?" if close else
                                  f"fields are: {', '.join(known)}")
    by_name = {name.strip().lower(): index for index, name in enumerate(header)}
    columns: dict[str, int] = {}
    for field in known:
        wanted = mapping.get(field, field)
        index = by_name.get(wanted.strip().lower())
        if index is None and field in mapping:
            raise ImportFileError(
                f"no column '{wanted}' for --map {field}={wanted}", path=path, line=1,
                hint=f"columns in this file: {', '.join(header)}")
        if index is not None:
            columns[field] = index
    missing = [field for field in required if field not in columns]
    if missing:
        raise ImportFileError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            path=path, line=1,
            hint=f"columns in this file: {', '.join(header)}; map yours with --map "
                 f"{missing[0]}=YourColumn")
    used = set(columns.values())
    extra = {name.strip(): i for i, name in enumerate(header) if i not in used and name.strip()}
    return Layout(columns=columns, names={f: header[i].strip() for f, i in columns.items()},
                  extra=extra, width=len(header))


@contextmanager
def open_records(path: Path) -> Iterator[tuple[list[str], Iterator[tuple[int, list[str]]]]]:
    """The header and an iterator of (line number, fields) for each non-blank record."""
    if not path.is_file():
        raise ImportFileError("no such file", path=path, hint="check the path")
    _decode_check(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
        if not first.strip():
            raise ImportFileError("the file is empty; a header row is expected", path=path,
                                  line=1, hint="export the data with its column names")
        delimiter = sniff_delimiter(first)
        header = next(csv.reader([first], delimiter=delimiter))
        yield header, _records(path, csv.reader(handle, delimiter=delimiter, strict=True))


def _records(path: Path, reader) -> Iterator[tuple[int, list[str]]]:
    start = 2  # the header is line 1
    try:
        for fields in reader:
            if "".join(fields).strip():
                yield start, fields
            start = reader.line_num + 2
    except csv.Error as exc:
        raise ImportFileError(f"broken CSV: {exc}", path=path, line=start,
                              hint="check the quotes on this line") from None
