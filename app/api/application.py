"""The FastAPI app: its routes, error shape, body limit and the OpenAPI schema served at /openapi.json."""

from __future__ import annotations

from fastapi import FastAPI

import app as _package
from app.api.body_limit import BodyLimit
from app.api.context import ApiContext
from app.api.errors import install_error_handlers

VERSION: str = getattr(_package, "__version__", "0.1.0")

DESCRIPTION = (
    "The desk's local API for strategy scripts and stop buttons. Every call but the health checks needs an "
    "API client's bearer token (`python main.py api-client add NAME --scope read --scope trade`). Orders pass "
    "the same risk gate and rate governor as the desk's own; the kill switch can be engaged here, never re-armed."
)


def create_app(context: ApiContext) -> FastAPI:
    """The API app serving ``context``'s desk."""
    # The route modules import the models and FastAPI only; importing them here keeps `app.api` cheap to import.
    from app.api.metrics import install_metrics
    from app.api.routes import health, kill, market, metrics, orders, stream

    app = FastAPI(
        title="Bulwark local API", version=VERSION, description=DESCRIPTION,
        docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
    )
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=context.settings.max_body_bytes)
    # Added last, so outermost: the request counts see every answer, 413s included.
    install_metrics(app, context)
    for module in (health, market, orders, kill, stream, metrics):
        app.include_router(module.router)
    return app
