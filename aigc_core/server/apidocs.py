"""``/docs``: the API reference as one self-contained HTML page, rendered from the OpenAPI document.

FastAPI's own ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from a CDN:
offline, or on a machine that must not reach the internet, they are a blank page, and they make
every visitor's browser fetch code from a third party. This page is rendered on the server from
``app.openapi()`` with no script and no external asset, so it works anywhere the API does. For
an interactive client, feed ``/openapi.json`` to any OpenAPI tool.
"""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
.op { margin: 1.2rem 0; padding: .6rem .9rem; border-left: 4px solid #4a7; background: #f7f7f7; }
.method { font-weight: bold; text-transform: uppercase; margin-right: .5rem; }
code, pre { font-family: ui-monospace, monospace; font-size: 13px; }
pre { background: #fff; border: 1px solid #ddd; padding: .5rem; overflow-x: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _ref_name(schema: dict) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def _body_schema(op: dict) -> str:
    content = (op.get("requestBody") or {}).get("content") or {}
    for media, spec in content.items():
        schema = spec.get("schema") or {}
        name = _ref_name(schema)
        target = f'<a href="#schema-{_e(name)}">{_e(name)}</a>' if name else f"<code>{_e(json.dumps(schema))}</code>"
        return f"<p>Body ({_e(media)}): {target}</p>"
    return ""


def _parameters(op: dict) -> str:
    params = op.get("parameters") or []
    if not params:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(p.get('name'))}</code></td><td>{_e(p.get('in'))}</td>"
        f"<td>{_e((p.get('schema') or {}).get('type', ''))}</td><td>{'yes' if p.get('required') else 'no'}</td></tr>"
        for p in params
    )
    return f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th></tr>{rows}</table>"


def _responses(op: dict) -> str:
    parts = []
    for code, spec in sorted((op.get("responses") or {}).items()):
        media = ", ".join((spec.get("content") or {}).keys())
        parts.append(f"<li><code>{_e(code)}</code> {_e(spec.get('description', ''))}"
                     + (f" ({_e(media)})" if media else "") + "</li>")
    return f"<ul>{''.join(parts)}</ul>" if parts else ""


def render(openapi: dict) -> str:
    info = openapi.get("info") or {}
    ops = []
    for path, methods in (openapi.get("paths") or {}).items():
        for method, op in methods.items():
            ops.append(
                f'<div class="op"><span class="method">{_e(method)}</span><code>{_e(path)}</code>'
                f"<p>{_e(op.get('summary') or '')}</p>{_e(op.get('description') or '')}"
                f"{_parameters(op)}{_body_schema(op)}{_responses(op)}</div>"
            )
    schemas = []
    for name, schema in sorted(((openapi.get("components") or {}).get("schemas") or {}).items()):
        schemas.append(f'<h3 id="schema-{_e(name)}">{_e(name)}</h3>'
                       f"<pre>{_e(json.dumps(schema, indent=2, sort_keys=True))}</pre>")
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(info.get('title', 'API'))} {_e(info.get('version', ''))} - API reference</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{_e(info.get('title', 'API'))} <small>{_e(info.get('version', ''))}</small></h1>"
        f"<p>{_e(info.get('description', ''))}</p>"
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. The web page: <a href="/">/</a>.</p>'
        f"<h2>Endpoints</h2>{''.join(ops)}<h2>Schemas</h2>{''.join(schemas)}</body></html>"
    )
