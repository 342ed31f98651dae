import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopswift_ops.settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from shopswift_ops.asgi_handler import get_one_hop_asgi_application  # noqa: E402

django_asgi_app = get_one_hop_asgi_application()

from rollout.fastpath import PolicyFastPath  # noqa: E402  (the polled policy read; see its docstring)
from shopswift_ops.routing import websocket_urlpatterns  # noqa: E402


def _warm_up() -> None:
    """Build at start what the first page request would otherwise build while a user waits:
    the URL resolver's reverse table (about 600 patterns to normalise), the compiled war room
    template, and the data sources its panels import on first use (together ~150 ms)."""
    import importlib

    from django.template.loader import get_template
    from django.urls import reverse

    reverse("war-room")
    get_template("incidents/war_room.html")
    for module in ("metrics.kpis", "metrics.diagnosis", "metrics.feature_health", "metrics.chargebacks",
                   "rollout.services", "incidents.selectors"):
        importlib.import_module(module)


_warm_up()

# The objects loaded so far (Django, the apps, their modules) live as long as the process: keep
# them out of the collector's way, and collect the youngest generation every 50,000 allocations
# instead of 700. An event batch allocates tens of thousands of short-lived containers; with the
# defaults the collector ran dozens of times per batch (26 of 46 ms of a batch's decode).
gc.freeze()
gc.set_threshold(50_000, 10, 10)

application = ProtocolTypeRouter(
    {
        "http": PolicyFastPath(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
