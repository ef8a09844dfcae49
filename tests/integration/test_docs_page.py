"""GET /docs: Swagger UI over /openapi.json, every asset served by the service itself, under a
Content-Security-Policy of the service's own origin; nothing outside the package's files."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

JAVASCRIPT_TYPES = ("text/javascript", "application/javascript")


class PageParts(HTMLParser):
    """The asset URLs a page loads, and whatever script or style it holds inline."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline: list[str] = []
        self._open_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            if named.get("src"):
                self.assets.append(named["src"])
            else:
                self._open_script = True
        elif tag == "link" and named.get("href"):
            self.assets.append(named["href"])
        elif tag in ("img", "iframe", "embed") and named.get("src"):
            self.assets.append(named["src"])
        if tag == "style":
            self.inline.append("<style>")
        if "style" in named or any(name.startswith("on") for name in named):
            self.inline.append(f"<{tag}> attribute")

    def handle_data(self, data: str) -> None:
        if self._open_script and data.strip():
            self.inline.append(f"<script>{data.strip()[:40]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open_script = False


def parts(client) -> PageParts:
    page = client.get("/docs")
    parsed = PageParts()
    parsed.feed(page.get_data(as_text=True))
    return parsed


def policy(response) -> dict[str, list[str]]:
    directives = response.headers["Content-Security-Policy"].split(";")
    return {name: sources for name, *sources in (d.split() for d in directives if d.strip())}


def test_the_page_is_html_under_a_policy_of_the_service_origin_alone(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    directives = policy(page)
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    for name, sources in directives.items():
        images_inline = {"data:"} if name == "img-src" else set()  # swagger-ui.css's icons
        assert set(sources) <= {"'self'", "'none'"} | images_inline, name
    assert '<div id="swagger-ui"></div>' in page.get_data(as_text=True)


def test_the_page_names_no_other_host_and_holds_no_inline_script_or_style(client):
    html = client.get("/docs").get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    found = parts(client)
    assert found.inline == []
    assert found.assets, "the page loads its UI from the service"
    assert all(url.startswith("/") and not url.startswith("//") for url in found.assets)


def test_every_asset_of_the_page_is_served_with_its_type(client):
    expected = {".css": ("text/css",), ".js": JAVASCRIPT_TYPES, ".png": ("image/png",)}
    for url in parts(client).assets:
        with client.get(url) as answer:  # closes the file it streams
            assert answer.status_code == 200, url
            media_type = answer.headers["Content-Type"].split(";")[0]
            assert media_type in expected[url[url.rindex(".") :]], (url, media_type)
            assert len(answer.get_data()) > 0, url
            assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_ui_bundle_and_the_initializer_are_loaded_in_order(client):
    scripts = [url for url in parts(client).assets if url.endswith(".js")]
    assert scripts == ["/docs/static/swagger-ui-bundle.js", "/docs/swagger-initializer.js"]
    with client.get(scripts[0]) as bundle:
        assert "SwaggerUIBundle" in bundle.get_data(as_text=True)


def test_the_initializer_points_the_ui_at_the_openapi_document(client):
    script = client.get("/docs/swagger-initializer.js").get_data(as_text=True)
    assert 'url: "/openapi.json"' in script
    assert 'dom_id: "#swagger-ui"' in script
    assert "validatorUrl: null" in script, "no badge fetched from the Swagger validator's host"
    assert '"post"' in script, "Try it out can send the API's POST"
    assert client.get("/openapi.json").status_code == 200


def test_the_openapi_document_names_the_page(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/docs"]["get"]
    assert operation["operationId"] == "docs"
    assert set(operation["responses"]["200"]["content"]) == {"text/html"}


@pytest.mark.parametrize(
    "path",
    [
        "/docs/static/../../app.py",
        "/docs/static/../flask_swagger_ui.py",  # exists beside the UI's directory
        "/docs/static/..%2fflask_swagger_ui.py",
        "/docs/static/%2e%2e/flask_swagger_ui.py",
        "/docs/static//etc/passwd",
        "/docs/static/no-such-file.js",
        "/docs/static/",
        "/docs/",
    ],
)
def test_anything_outside_the_ui_files_is_the_service_404(client, path):
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"
    body = answer.get_json()
    assert body["code"] == "not_found" and body["status"] == 404
