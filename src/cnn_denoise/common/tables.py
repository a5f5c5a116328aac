"""Plain-text tables: the width they fit and how a value reads in a cell."""

WIDTH = 160  # columns: a terminal split in two, and what CI logs show without wrapping


def cell(value, fmt: str | None = None) -> str:
    """A value as a table shows it: `-` for none, `fmt` when given, floats to 4 digits, lists joined by commas."""
    if value is None:
        return "-"
    if fmt is not None:
        return format(value, fmt)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
