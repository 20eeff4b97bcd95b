"""Reading rating tables (CSV/TSV/`::`/Parquet) into validated raw columns, fast (pyarrow, multi-threaded).

Every failure a user can cause becomes a one-line `DataError` naming the file, the column or line, and the fix.
Row order is the file's order.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ncf.errors import DataError

ROLES = ("user", "item", "rating", "timestamp")
REQUIRED = ("user", "item")
# Header names tried for each role when --columns does not name them (compared lower case, without _ - and
# a RecBole-style ":type" suffix).
DEFAULT_NAMES: dict[str, tuple[str, ...]] = {
    "user": ("user", "userid", "uid", "users", "customer", "customerid", "visitorid", "reviewerid"),
    "item": ("item", "itemid", "movieid", "movie", "iid", "items", "product", "productid", "asin", "songid",
             "trackid", "bookid", "isbn", "articleid"),
    "rating": ("rating", "ratings", "score", "stars", "value", "rate"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime", "unixtime", "unixreviewtime", "created", "when"),
}
SEP_CANDIDATES = (",", "\t", ";", "|", "::", " ")
SEP_NAMES = {",": "','", "\t": "tab", ";": "';'", "|": "'|'", "::": "'::'", " ": "space"}


@dataclass
class RawRatings:
    """Validated raw columns in file order: ids (int64 or str objects), ratings float64, timestamps int64."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    timestamps: np.ndarray | None
    source: str = ""

    def __len__(self) -> int:
        return len(self.users)


# ------------------------------------------------------------------------------------------- column specs
def parse_columns(spec: str | dict | None) -> dict[str, str]:
    """Parse "user=uid,item=movie,rating=stars,timestamp=ts" into {role: column} (values may be positions).

    Usable as a typer option callback. Unknown roles and empty names are refused with the fix.
    """
    if spec is None or spec == "":
        return {}
    if isinstance(spec, dict):
        pairs = list(spec.items())
    else:
        pairs = []
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise DataError(f"--columns entry '{part}' has no '='",
                                "write it as user=COL,item=COL[,rating=COL][,timestamp=COL]")
            key, value = part.split("=", 1)
            pairs.append((key, value))
    out: dict[str, str] = {}
    for key, value in pairs:
        key = str(key).strip().lower()
        value = str(value).strip()
        if key not in ROLES:
            from ncf.errors import closest

            near = closest(key, ROLES)
            raise DataError(f"--columns names unknown role '{key}'",
                            f"did you mean '{near}'?" if near else "roles are user, item, rating, timestamp")
        if not value:
            raise DataError(f"--columns gives no column for '{key}'", f"write {key}=COLUMN_NAME")
        out[key] = value
    return out


def _norm(name: str) -> str:
    name = str(name).split(":", 1)[0]
    return re.sub(r"[\s_\-]", "", name).lower()


def resolve_columns(header: list[str], columns: dict[str, str], label: str) -> dict[str, str]:
    """Map each role to a header name: the one given in `columns`, else the first common name that is present."""
    present = {_norm(h): h for h in reversed(header)}
    shown = ", ".join(repr(h) for h in header[:12]) + (" ..." if len(header) > 12 else "")
    out: dict[str, str] = {}
    for role in ROLES:
        if role in columns:
            want = columns[role]
            if want in header:
                out[role] = want
            elif _norm(want) in present:
                out[role] = present[_norm(want)]
            elif want.isdigit() and int(want) < len(header):
                out[role] = header[int(want)]
            else:
                raise DataError(f"{label} has no column '{want}' (for {role}); columns present: {shown}",
                                f"pass --columns {role}=<one of those>")
            continue
        for cand in DEFAULT_NAMES[role]:
            if cand in present:
                out[role] = present[cand]
                break
    missing = [r for r in REQUIRED if r not in out]
    if missing:
        raise DataError(f"{label} has no {' or '.join(missing)} column; columns present: {shown}",
                        "name them with --columns user=COL,item=COL[,rating=COL][,timestamp=COL]")
    if len(set(out.values())) < len(out):
        raise DataError(f"{label}: one column is used for two roles ({out})", "give each role its own column")
    return out


# ------------------------------------------------------------------------------------------- sniffing
def peek_lines(path: Path, n: int = 20, encoding: str = "utf-8") -> list[str]:
    """The first non-empty lines of a text file (BOM and CRLF removed)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    if len(head) == 1 << 16 and len(lines) > 1:
        lines = lines[:-1]  # possibly cut
    return [ln for ln in lines if ln.strip()][:n]


def _split(line: str, sep: str) -> list[str]:
    if sep == " ":
        return line.split()
    if sep == ",":  # quoted commas do not split
        try:
            return next(iter(csv.reader([line])), [])
        except csv.Error:
            return line.split(",")
    return line.split(sep)


def sniff_sep(lines: list[str]) -> str | None:
    """The separator that splits the sample lines into the same number (>= 2) of fields, most fields first."""
    best, best_n = None, 1
    for sep in SEP_CANDIDATES:
        counts = {len(_split(ln, sep)) for ln in lines[:20]}
        if len(counts) == 1:
            n = counts.pop()
            if n > best_n or (sep == "::" and n >= best_n and n > 1):
                best, best_n = sep, n
    return best


def looks_like_header(fields: list[str]) -> bool:
    """True when a first line holds names rather than values (some field is not a number)."""
    def numeric(s: str) -> bool:
        try:
            float(s)
            return True
        except ValueError:
            return False

    return any(f.strip() and not numeric(f.strip()) for f in fields[:2])


def choose_sep(path: Path, sep: str | None, label: str) -> str:
    """The separator to use: the one given (checked: it must split the first line), else a sniffed one."""
    lines = peek_lines(path)
    if not lines:
        raise DataError(f"{label} is empty", "check the file; it needs a header or at least one row")
    if sep is not None:
        sep = {"\\t": "\t", "tab": "\t", "space": " ", "comma": ",", "semicolon": ";", "pipe": "|"}.get(sep, sep)
        if len(_split(lines[0], sep)) < 2:
            guess = sniff_sep(lines)
            hint = f"it looks separated by {SEP_NAMES[guess]}; pass --sep '{guess}'" if guess else \
                "pass the right --sep"
            raise DataError(f"{label} parsed as one column with separator {SEP_NAMES.get(sep, repr(sep))}", hint)
        return sep
    guess = sniff_sep(lines)
    if guess is None:
        if len(lines) == 1 or len(_split(lines[0], ",")) < 2:
            raise DataError(f"{label} has one column (no separator among , tab ; | :: space splits it)",
                            "a ratings table needs user and item columns; pass --sep if it uses another one")
        guess = ","
    return guess


# ------------------------------------------------------------------------------------------- reading
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4")


def _check_text(path: Path, label: str) -> None:
    """Refuse UTF-16/UTF-32 and binary files with the fix, instead of garbled column names."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{label} is UTF-16/UTF-32 text, not UTF-8", "save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
    if b"\x00" in head and path.suffix.lower() not in _COMPRESSED:
        raise DataError(f"{label} is not a text table (it contains NUL bytes; UTF-16 or binary?)",
                        "pass a UTF-8 CSV/TSV file, a Parquet file or a MovieLens zip")


def read_delimited(path: str | Path, *, sep: str | None = None, columns: dict[str, str] | None = None,
                   header: bool | None = None, names: list[str] | None = None, encoding: str = "utf-8",
                   label: str | None = None) -> RawRatings:
    """Read a delimited ratings table.

    header=None detects a header row; without one the roles are positions ("0", "1", ...) or `names`.
    `columns` maps roles to names or positions (missing roles fall back to common names / positions 0-3).
    """
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise DataError(f"{label} does not exist", "check the path")
    if path.stat().st_size == 0:
        raise DataError(f"{label} is empty", "check the file; it needs a header or at least one row")
    _check_text(path, label)
    columns = dict(columns or {})
    sep = choose_sep(path, sep, label)
    lines = peek_lines(path, n=2, encoding=encoding)
    first = _split(lines[0], sep)
    if names is not None:
        header = False if header is None else header
    elif header is None:
        header = looks_like_header(first) and not (columns and all(v.isdigit() for v in columns.values()))
    if names is None and not header:
        names = [str(k) for k in range(len(first))]
        if not columns:
            columns = {role: str(k) for k, role in enumerate(ROLES) if k < len(first)}
    header_names = list(names) if names is not None else [f.strip().strip('"') or f"column{k}"
                                                           for k, f in enumerate(first)]
    skip = 1 if header else 0
    arrow_names = header_names
    if sep == "::":  # fast path: split on ':' and keep every other field
        arrow_names = [x for n in header_names for x in (n, f"__gap{n}")][:-1]
    roles = resolve_columns(header_names, columns, label)
    table = _read_arrow(path, sep, arrow_names, skip, roles, encoding, label)
    return _finish(table, roles, label, skip)


def _arrow_options(sep, names, skip, include, types, encoding):
    ro = pacsv.ReadOptions(column_names=names, skip_rows=skip, encoding=encoding)
    po = pacsv.ParseOptions(delimiter=":" if sep == "::" else sep, quote_char=False if sep in ("::", "\t") else '"',
                            ignore_empty_lines=True)
    co = pacsv.ConvertOptions(include_columns=include, column_types=types, strings_can_be_null=False,
                              quoted_strings_can_be_null=False, null_values=[""])
    return ro, po, co


def _read_arrow(path: Path, sep: str, names, skip: int, roles: dict[str, str], encoding: str,
                label: str) -> pa.Table:
    include = [roles[r] for r in ROLES if r in roles]
    typed = {roles["user"]: pa.int64(), roles["item"]: pa.int64()}
    if "rating" in roles:
        typed[roles["rating"]] = pa.float64()
    if "timestamp" in roles:
        typed[roles["timestamp"]] = pa.int64()
    if sep == " ":
        return _read_whitespace(path, names, skip, include, encoding, label)
    try:
        return pacsv.read_csv(path, *_arrow_options(sep, names, skip, include, typed, encoding))
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
        pass  # a value that is not of the fast type: read as text and say exactly which
    except pa.ArrowException as exc:
        raise DataError(f"{label} could not be read: {_arrow_msg(exc)}", "check the file format") from None
    strings = {c: pa.string() for c in include}
    for enc in dict.fromkeys((encoding, "latin-1")):
        try:
            return pacsv.read_csv(path, *_arrow_options(sep, names, skip, include, strings, enc))
        except (pa.ArrowInvalid, UnicodeError) as exc:
            err = exc
            if "UTF8" in str(exc) or isinstance(exc, UnicodeError):
                continue
            break
        except pa.ArrowException as exc:
            err = exc
            break
    raise DataError(f"{label} could not be parsed: {_arrow_msg(err)}",
                    "check the separator (--sep) and that every row has the same number of fields") from None


def _read_whitespace(path, names, skip, include, encoding, label) -> pa.Table:
    """Space/whitespace-separated files (rare; pandas' C engine)."""
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, names=names, skiprows=skip,
                         usecols=include, dtype=str, encoding=encoding, encoding_errors="replace",
                         keep_default_na=False, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{label} could not be parsed: {str(exc).splitlines()[0][:200]}",
                        "check the separator (--sep)") from None
    return pa.table({c: pa.array(df[c].to_numpy(dtype=object), type=pa.string()) for c in include})


def _arrow_msg(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text.replace("CSV parse error: ", "").replace("In CSV column", "in column")
    return text[:200]


def read_parquet(path: str | Path, columns: dict[str, str] | None = None, label: str | None = None) -> RawRatings:
    """Read a Parquet ratings table (roles by name as for CSV)."""
    import pyarrow.parquet as pq

    path = Path(path)
    label = label or str(path)
    try:
        schema = pq.read_schema(path)
        roles = resolve_columns(list(schema.names), dict(columns or {}), label)
        table = pq.read_table(path, columns=[roles[r] for r in ROLES if r in roles])
    except DataError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{label} is not a readable Parquet file: {_arrow_msg(exc)}",
                        "check the file, or pass a CSV/TSV instead") from None
    return _finish(table, roles, label, 0)


# ------------------------------------------------------------------------------------------- validation
def _line(row: int, first_line: int) -> int:
    return int(row) + 1 + first_line


def _finish(table: pa.Table, roles: dict[str, str], label: str, first_line: int) -> RawRatings:
    if table.num_rows == 0:
        raise DataError(f"{label} has a header but no rows", "check the file")
    users = _ids(table.column(roles["user"]), "user", roles["user"], label, first_line)
    items = _ids(table.column(roles["item"]), "item", roles["item"], label, first_line)
    ratings = None
    if "rating" in roles:
        ratings = _numbers(table.column(roles["rating"]), roles["rating"], label, first_line)
    stamps = None
    if "timestamp" in roles:
        stamps = _timestamps(table.column(roles["timestamp"]), roles["timestamp"], label, first_line)
    return RawRatings(users, items, ratings, stamps, source=label)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _ids(col: pa.ChunkedArray, role: str, name: str, label: str, first_line: int) -> np.ndarray:
    """Integer ids as int64; anything else as strings (raw ids may be strings); empty ids are an error."""
    if col.null_count:
        row = _first(col.is_null().to_numpy(zero_copy_only=False))
        raise DataError(f"{label} line {_line(row, first_line)}: empty {role} id in column '{name}'",
                        "fill or drop rows with missing ids")
    t = col.type
    if pa.types.is_integer(t):
        return col.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        vals = col.to_numpy(zero_copy_only=False).astype(np.float64)
        if np.all(np.isfinite(vals)) and np.all(vals == np.round(vals)) and np.abs(vals).max() < 2**53:
            return vals.astype(np.int64)
    if pa.types.is_dictionary(t):
        col = col.cast(pa.string())
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = col.cast(pa.string())
    stripped = pc.utf8_trim_whitespace(col)
    empty = pc.equal(pc.utf8_length(stripped), 0).to_numpy(zero_copy_only=False)
    if empty.any():
        row = _first(empty)
        raise DataError(f"{label} line {_line(row, first_line)}: empty {role} id in column '{name}'",
                        "fill or drop rows with missing ids")
    try:  # all plain integers (e.g. a file that failed the fast read for another column)
        if pc.all(pc.match_substring_regex(stripped, r"^-?[0-9]{1,18}$")).as_py():
            return pc.cast(stripped, pa.int64()).to_numpy()
    except pa.ArrowException:
        pass
    return stripped.to_numpy(zero_copy_only=False).astype(object)


_F32_MAX = float(np.finfo(np.float32).max)  # ratings are stored as float32


def _numbers(col: pa.ChunkedArray, name: str, label: str, first_line: int) -> np.ndarray:
    """A finite float64 rating column; the first bad value is named with its line."""
    numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)
    if numeric and col.null_count == 0:
        vals = col.to_numpy().astype(np.float64, copy=False)
        if np.isfinite(vals).all() and (np.abs(vals) <= _F32_MAX).all():
            return vals
    raw = col.cast(pa.string()).to_numpy(zero_copy_only=False)
    vals = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(vals) | (np.abs(np.nan_to_num(vals)) > _F32_MAX)
    if bad.any():
        row = _first(bad)
        shown = raw[row]
        if shown is None or str(shown).strip() == "":
            what = "an empty rating"
        elif _is_float(shown) and np.isfinite(float(shown)):
            what = f"'{shown}', a rating too large to store (float32)"
        elif _is_float(shown):
            what = f"'{shown}', a non-finite rating"
        else:
            what = f"'{shown}', a non-numeric rating"
        raise DataError(f"{label} line {_line(row, first_line)}: {what} in column '{name}'",
                        "ratings must be finite numbers; fix or drop that row (or load without a rating column)")
    return vals


def _is_float(s) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False


def _timestamps(col: pa.ChunkedArray, name: str, label: str, first_line: int) -> np.ndarray:
    """Timestamps as int64 seconds: integer/float seconds or date-time text."""
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        secs = pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64())
        if secs.null_count == 0:
            return secs.to_numpy()
    if pa.types.is_integer(t) and col.null_count == 0:
        return col.to_numpy().astype(np.int64, copy=False)
    raw = col.cast(pa.string()).to_numpy(zero_copy_only=False)
    s = pd.Series(raw, dtype=object)
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(num) & (np.abs(np.nan_to_num(num)) < 2.0**62)
    if ok.all():
        return num.astype(np.int64)
    if ok.any() or any(v is None or str(v).strip() == "" for v in raw[:1]):
        row = _first(~ok)
        shown = "an empty timestamp" if raw[row] is None or str(raw[row]).strip() == "" else \
            f"timestamp '{raw[row]}'"
        raise DataError(f"{label} line {_line(row, first_line)}: {shown} in column '{name}' is not a number of "
                        "seconds", "fix or drop that row, or load without a timestamp column")
    try:
        dt = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    except (ValueError, TypeError):
        dt = pd.Series(pd.NaT, index=s.index)
    bad = dt.isna().to_numpy()
    if bad.any():
        row = _first(bad)
        raise DataError(f"{label} line {_line(row, first_line)}: timestamp '{raw[row]}' in column '{name}' "
                        "is neither seconds nor a date", "fix or drop that row, or load without a timestamp column")
    return (dt.astype("datetime64[s, UTC]").astype("int64")).to_numpy()


def check_scale(ratings: np.ndarray, scale: tuple[float, float], step: float | None, label: str,
                first_line: int = 0) -> None:
    """Refuse ratings outside the declared scale (or off its step), naming the first offending line."""
    lo, hi = scale
    bad = (ratings < lo) | (ratings > hi)
    if step:
        bad |= np.abs(ratings / step - np.round(ratings / step)) > 1e-6
    if bad.any():
        row = _first(bad)
        raise DataError(f"{label} line {_line(row, first_line)}: rating {ratings[row]:g} is outside the scale "
                        f"{lo:g}..{hi:g}" + (f" in steps of {step:g}" if step else ""),
                        "fix that row, or load the file as a plain table (its scale is then taken from the data)")
