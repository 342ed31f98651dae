"""Websocket routes, collected from each app's `routing.websocket_urlpatterns` if it has one."""
from importlib import import_module

websocket_urlpatterns = []
for _app in ("metrics", "rollout", "incidents"):
    try:
        websocket_urlpatterns += import_module(f"{_app}.routing").websocket_urlpatterns
    except ModuleNotFoundError as exc:
        if exc.name != f"{_app}.routing":
            raise
