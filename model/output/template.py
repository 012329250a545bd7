"""A tiny logic-less template language (a subset of Mustache) in which every value is
HTML-escaped: templates hold the markup, code gives plain values, so text from a file (a caption,
a layer name) can never become markup.

- ``{{name}}`` or ``{{a.b}}``: the value, HTML-escaped (``None`` gives nothing); ``{{.}}`` is
  the current item;
- ``{{#name}}…{{/name}}``: the block once per item of a list (each item becomes the current
  context), once for any other true value (a mapping becomes the context), never for a false
  or empty one;
- ``{{^name}}…{{/name}}``: the block only when the value is false or empty;
- ``{{>name}}``: a trusted resource (a style sheet, a script) inserted verbatim from the
  ``partials`` given to :func:`render`; never a value.

There is no way to insert a value unescaped.
"""

from __future__ import annotations

import html
import re
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

_TAG = re.compile(r"\{\{\s*([#^/>]?)\s*([A-Za-z_][A-Za-z0-9_.]*|\.)\s*\}\}")

# A parsed template: text, ("var", name), ("section"|"inverted", name, children),
# ("partial", name).
Node = Union[str, Tuple[Any, ...]]


class TemplateError(ValueError):
    """A template that does not parse (a bug in MapScribe's resources, not people's input)."""


def parse(template: str) -> List[Node]:
    """The template as a tree; raises :class:`TemplateError` on unbalanced sections."""
    root: List[Node] = []
    stack: List[Tuple[str, str, List[Node]]] = [("", "", root)]
    position = 0
    for match in _TAG.finditer(template):
        if match.start() > position:
            stack[-1][2].append(template[position:match.start()])
        position = match.end()
        kind, name = match.group(1), match.group(2)
        if kind in ("#", "^"):
            children: List[Node] = []
            stack[-1][2].append(("section" if kind == "#" else "inverted", name, children))
            stack.append((kind, name, children))
        elif kind == "/":
            if len(stack) == 1 or stack[-1][1] != name:
                raise TemplateError(f"{{{{/{name}}}}} closes nothing open")
            stack.pop()
        elif kind == ">":
            stack[-1][2].append(("partial", name))
        else:
            stack[-1][2].append(("var", name))
    if position < len(template):
        stack[-1][2].append(template[position:])
    if len(stack) > 1:
        raise TemplateError(f"{{{{#{stack[-1][1]}}}}} is never closed")
    if "{{{" in template or "}}}" in template or "{{" in "".join(_texts(root)):
        raise TemplateError("a tag that is not one of {{name}}, {{#name}}, {{^name}}, "
                            "{{/name}}, {{>name}}")
    return root


def _texts(nodes: Sequence[Node]):
    for node in nodes:
        if isinstance(node, str):
            yield node
        elif node[0] in ("section", "inverted"):
            yield from _texts(node[2])


def render(template: str, context: Mapping[str, Any],
           partials: Optional[Mapping[str, str]] = None) -> str:
    """``template`` filled from ``context``; every value HTML-escaped."""
    out: List[str] = []
    _render(parse(template), [context], partials or {}, out)
    return "".join(out)


def _render(nodes: Sequence[Node], stack: List[Any], partials: Mapping[str, str],
            out: List[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        kind, name = node[0], node[1]
        if kind == "var":
            value = _lookup(stack, name)
            if value is not None:
                out.append(html.escape(str(value), quote=True))
        elif kind == "partial":
            if name not in partials:
                raise TemplateError(f"no partial {name!r}")
            out.append(partials[name])
        elif kind == "section":
            value = _lookup(stack, name)
            if isinstance(value, (list, tuple)):
                for item in value:
                    _render(node[2], stack + [item], partials, out)
            elif isinstance(value, Mapping):
                _render(node[2], stack + [value], partials, out)
            elif value:
                _render(node[2], stack, partials, out)
        else:  # inverted
            if not _lookup(stack, name):
                _render(node[2], stack, partials, out)


def _lookup(stack: Sequence[Any], name: str) -> Any:
    if name == ".":
        return stack[-1]
    first, *rest = name.split(".")
    for context in reversed(stack):
        found, value = _get(context, first)
        if found:
            for part in rest:
                found, value = _get(value, part)
                if not found:
                    return None
            return value
    return None


def _get(context: Any, name: str) -> Tuple[bool, Any]:
    if isinstance(context, Mapping):
        return (name in context), context.get(name)
    return False, None
