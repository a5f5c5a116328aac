"""YAML read with a budget on what its aliases expand to, and one-line errors.

PyYAML builds `&a [x, x]`, `&b [*a, *a]`, ... as shared references, so a few hundred bytes
stand for billions of values, which whatever walks them (printing a description, validating,
copying) then expands. Here the document's size as a tree (each alias counted as the node it
names, every time it is used) is counted on PyYAML's node graph, in time linear in the file,
before any value is built; past MAX_NODES, or where an alias refers to itself, the document is
refused. A long document without aliases is refused the same way, but while it is read: nodes
are counted as PyYAML composes them, so a million-entry list costs the first MAX_NODES.
"""

import yaml

from cnn_denoise.common.errors import PipelineError, first_line

MAX_NODES = 100_000  # a recipe or params.yaml holds hundreds
MAX_BYTES = 1 << 20  # a document's text: a hundred times params.yaml


class _TooLong(Exception):
    """More than MAX_NODES nodes written out in the document (aliases not expanded)."""


class _CountingLoader(yaml.SafeLoader):
    """SafeLoader that stops composing past MAX_NODES nodes, before the rest is parsed."""

    def __init__(self, stream):
        super().__init__(stream)
        self.nodes = 0

    def compose_node(self, parent, index):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooLong
        return super().compose_node(parent, index)


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def tree_size(root) -> int:
    """Nodes in the document once every alias is expanded, counted up to MAX_NODES + 1; a
    ValueError for an alias inside the node it names (a cycle). Iterative, memoised per node."""
    sizes, open_ = {}, set()
    stack = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_.discard(key)
            sizes[key] = min(MAX_NODES + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
        elif key in open_:
            raise ValueError("an alias refers to a node that holds it")
        elif key not in sizes:
            open_.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes[id(root)]


def load(text: str, where: str):
    """The YAML document in `text` (safe types only); a PipelineError naming `where` otherwise."""
    if len(text) > MAX_BYTES:
        raise PipelineError(
            f"{where} is {len(text)} characters long, more than {MAX_BYTES} a settings file may be; shorten it"
        )
    loader = _CountingLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = tree_size(node)
        if size > MAX_NODES:
            raise PipelineError(
                f"{where} expands to more than {MAX_NODES} values through its aliases (&name / *name); "
                "write the values out, without nested aliases"
            )
        return loader.construct_document(node)
    except _TooLong:
        raise PipelineError(
            f"{where} holds more than {MAX_NODES} values (a recipe or params.yaml holds hundreds); shorten it"
        ) from None
    except ValueError as exc:  # tree_size's cycle
        raise PipelineError(f"{where}: {exc}; write the values out") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{where} is not valid YAML ({_where_in_file(exc)}); fix its syntax") from None
    except RecursionError:
        raise PipelineError(f"{where} nests its values too deeply to read; flatten it") from None
    finally:
        loader.dispose()


def _where_in_file(exc: yaml.YAMLError) -> str:
    mark, problem, context = (getattr(exc, k, None) for k in ("problem_mark", "problem", "context"))
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {context + ', ' if context else ''}{problem}"
    return first_line(exc)


def read(path) -> object:
    """load() of a file's text, with a one-line error for a file that is not UTF-8."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return load(text, str(path))
