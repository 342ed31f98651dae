import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopswift_ops.settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from shopswift_ops.asgi_handler import get_one_hop_asgi_application  # noqa: E402

django_asgi_app = get_one_hop_asgi_application()

from rollout.fastpath import PolicyFastPath  # noqa: E402  (the polled policy read; see its docstring)
from shopswift_ops.routing import websocket_urlpatterns  # noqa: E402
from shopswift_ops.warm import prepare_process  # noqa: E402


prepare_process()


application = ProtocolTypeRouter(
    {
        "http": PolicyFastPath(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
