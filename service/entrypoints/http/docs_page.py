"""GET /docs: the OpenAPI document as a page for people (Swagger UI, from the
flask-swagger-ui package), every asset served by the service under a same-origin policy."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, send_from_directory

SWAGGER_UI_DIRECTORY = Path(flask_swagger_ui.__file__).with_name("dist")
STATIC_PREFIX = "/docs/static"
INITIALIZER_PATH = "/docs/swagger-initializer.js"

# Only the service's own origin; images may also be data: URIs, which swagger-ui.css draws
# its icons with. No inline script or style runs: the initializer is a file of its own, and
# the layout leaves out the topbar, whose logo carries an inline <style>.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PAGE = f"""\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Scrubs usage analytics API</title>
  <link rel="stylesheet" href="{STATIC_PREFIX}/swagger-ui.css">
  <link rel="stylesheet" href="{STATIC_PREFIX}/index.css">
  <link rel="icon" type="image/png" sizes="32x32" href="{STATIC_PREFIX}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{STATIC_PREFIX}/swagger-ui-bundle.js"></script>
  <script src="{INITIALIZER_PATH}"></script>
</body>
</html>
"""

INITIALIZER = """\
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  layout: "BaseLayout",
  validatorUrl: null,
  queryConfigEnabled: false,
  persistAuthorization: false,
  displayRequestDuration: true,
  supportedSubmitMethods: ["get", "post"],
});
"""

blueprint = Blueprint("docs_page", __name__)


@blueprint.after_request
def _same_origin_only(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/docs")
def docs() -> Response:
    return Response(PAGE, content_type="text/html; charset=utf-8")


@blueprint.get(INITIALIZER_PATH)
def swagger_initializer() -> Response:
    return Response(INITIALIZER, content_type="text/javascript; charset=utf-8")


@blueprint.get(f"{STATIC_PREFIX}/<path:filename>")
def swagger_ui_asset(filename: str) -> Response:
    """A file of the package's Swagger UI directory; any other path (a `..` included) is
    werkzeug's NotFound, which the app answers as its problem+json 404."""
    return send_from_directory(SWAGGER_UI_DIRECTORY, filename)
