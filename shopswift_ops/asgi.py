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
