"""The HTTP API: ``create_app(ApiSettings(...))``."""

from cell.api.app import create_app
from cell.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
